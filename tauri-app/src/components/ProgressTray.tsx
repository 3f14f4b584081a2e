// Long work the sidecar reports over its event stream: AI jobs, model warm-up, initial sync.
import { useI18n } from '../i18n';
import { stageLabel } from '../lib/words';
import { useApp } from '../state/app';
import { ProgressBar } from './ProgressBar';

export function ProgressTray() {
  const { t } = useI18n();
  const { events } = useApp();
  const entries = Object.entries(events.progress);
  if (entries.length === 0) return null;
  return (
    <section className="tray" aria-label={t('progress.title')} data-testid="progress-tray">
      {entries.map(([key, p]) => (
        <ProgressBar
          key={key}
          small
          value={p.percentage}
          label={`${t(`progress.${p.kind}`)} · ${stageLabel(t, p.stage)}`}
          detail={p.eta_s !== null && p.percentage < 100 ? t('progress.eta', { s: Math.ceil(p.eta_s) }) : `${Math.round(p.percentage)}%`}
          testId={`progress-${p.kind}`}
        />
      ))}
    </section>
  );
}
