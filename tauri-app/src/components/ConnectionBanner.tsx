import { useI18n } from '../i18n';
import { useApp } from '../state/app';

/** "Connection lost" while the sidecar does not answer; the screen under it stays as it was. */
export function ConnectionBanner() {
  const { t } = useI18n();
  const { lost, recovered } = useApp();
  if (lost) {
    return (
      <div className="banner banner--lost" role="alert" data-testid="conn-banner">
        {t('conn.lost')}
      </div>
    );
  }
  if (recovered) {
    return (
      <div className="banner banner--back" role="status" data-testid="conn-back">
        {t('conn.back')}
      </div>
    );
  }
  return null;
}
