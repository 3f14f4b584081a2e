// Always visible: online/offline, what is waiting to be sent and for how long, the last sync —
// the event stream's sync summary, worded as the settings screen words it (SyncFacts).
import { useI18n } from '../i18n';
import { useApp } from '../state/app';
import { SyncFacts } from './SyncFacts';

export function StatusBar() {
  const { t } = useI18n();
  const { events, lost } = useApp();
  return (
    // Focusable: on a phone the facts scroll sideways, and a keyboard must reach what is hidden.
    <section className="statusbar" aria-label={t('status.bar')} tabIndex={0} data-testid="statusbar">
      <SyncFacts received={events.sync} lost={lost} compact />
    </section>
  );
}
