// Long work the sidecar reports over its event stream: AI jobs, model warm-up, initial sync.
import { useI18n } from '../i18n';
import type { Translate } from '../i18n/translate';
import { stageLabel } from '../lib/words';
import { useApp } from '../state/app';
import { ProgressBar } from './ProgressBar';

/** Time left, else the percentage, else nothing: no number the sidecar did not measure. */
export function progressDetail(
  t: Translate,
  percentage: number | null,
  eta_s: number | null,
): string | undefined {
  if (eta_s !== null && (percentage === null || percentage < 100)) return t('progress.eta', { s: Math.ceil(eta_s) });
  // Whole percents, rounded down: work 99.6 % done is not shown as done.
  return percentage === null ? undefined : `${Math.floor(percentage)}%`;
}

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
          detail={progressDetail(t, p.percentage, p.eta_s)}
          testId={`progress-${p.kind}`}
        />
      ))}
    </section>
  );
}
