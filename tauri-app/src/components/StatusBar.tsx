// Always visible: online/offline, what is waiting to be sent and for how long, the last sync.
import { useEffect, useState } from 'react';
import { useI18n } from '../i18n';
import { useApp } from '../state/app';

export type BadgeState = 'unknown' | 'offline' | 'syncing' | 'synced';

export function badgeState(sync: { online: boolean; pending: number } | null): BadgeState {
  if (!sync) return 'unknown';
  if (!sync.online) return 'offline';
  return sync.pending > 0 ? 'syncing' : 'synced';
}

export function StatusBar() {
  const { t, age, time } = useI18n();
  const { events, lost } = useApp();
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);
  const sync = events.sync;
  const state = lost ? 'unknown' : badgeState(sync);
  const label = {
    unknown: t('status.unknown'),
    offline: t('status.offline'),
    syncing: t('status.syncing'),
    synced: t('status.synced'),
  }[state];
  const oldest =
    sync && sync.oldest_pending_age_s !== null
      ? sync.oldest_pending_age_s + (now - sync.received_at) / 1000
      : null;
  return (
    <section className="statusbar" aria-label={t('status.bar')} data-testid="statusbar">
      <span className={`badge badge--${state}`} data-testid="sync-badge" data-state={state} role="status">
        <span className="badge__dot" aria-hidden="true" />
        {label}
      </span>
      {sync ? (
        <>
          <span className="statusbar__item" data-testid="pending">
            {t('status.pending', { count: sync.pending })}
            {oldest !== null && sync.pending > 0 ? ` · ${t('status.pendingAge', { age: age(oldest) })}` : ''}
          </span>
          <span className="statusbar__item" data-testid="last-sync">
            {sync.last_success_at ? t('status.lastSync', { time: time(sync.last_success_at) }) : t('status.neverSynced')}
          </span>
          {sync.set_aside ? (
            <span className="statusbar__item statusbar__warn">{t('status.setAside', { count: sync.set_aside })}</span>
          ) : null}
          {sync.last_error ? (
            <span className="statusbar__item statusbar__warn" title={sync.last_error}>
              {t('status.lastError', { error: sync.last_error })}
            </span>
          ) : null}
        </>
      ) : null}
    </section>
  );
}
