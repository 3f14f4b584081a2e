// The sync status in words: the same facts, from the same sidecar function, in the always-visible
// status bar (`compact`) and on the settings screen. Each fact carries its raw value in
// `data-value`, so a test can hold the two places to the same values (the test ids that name
// the status bar's parts are the status bar's alone).
import { useEffect, useState } from 'react';
import { useI18n } from '../i18n';
import { syncErrorText } from '../i18n/errors';
import { badgeState, oldestAge, type BadgeState, type Received } from '../lib/syncStatus';

interface Props {
  received: Received | null;
  /** The sidecar is not answering: the last values may be stale. */
  lost?: boolean;
  compact?: boolean;
}

function useNow(): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);
  return now;
}

export function SyncFacts({ received, lost = false, compact = false }: Props) {
  const { t, age, time, lang } = useI18n();
  const now = useNow();
  const sync = received?.summary ?? null;
  const state: BadgeState = lost ? 'unknown' : badgeState(sync);
  const label: Record<BadgeState, string> = {
    unknown: t('status.unknown'),
    offline: t('status.offline'),
    syncing: t('status.syncing'),
    synced: t('status.synced'),
  };
  const Item = compact ? 'span' : 'li';
  const oldest = received ? oldestAge(received, now) : null;
  const facts = sync ? (
    <>
      <Item className="statusbar__item" data-testid={compact ? 'pending' : undefined} data-fact="pending" data-value={String(sync.pending_rows ?? 0)}>
        {t('status.pending', { count: sync.pending_rows ?? 0 })}
        {oldest !== null ? ` · ${t('status.pendingAge', { age: age(oldest) })}` : ''}
      </Item>
      {sync.pending_images ? (
        <Item className="statusbar__item" data-fact="images" data-value={String(sync.pending_images)}>
          {t('status.pendingImages', { count: sync.pending_images })}
        </Item>
      ) : null}
      <Item className="statusbar__item" data-testid={compact ? 'last-sync' : undefined} data-fact="last-sync" data-value={sync.last_success_at ?? ''}>
        {sync.last_success_at ? t('status.lastSync', { time: time(sync.last_success_at) }) : t('status.neverSynced')}
      </Item>
      <Item
        className="statusbar__item"
        data-fact="inspections"
        data-value={`${sync.inspections_local ?? 0}/${sync.inspections_received ?? 0}/${sync.inspections_applied ?? 0}`}
      >
        {t('status.inspections', {
          local: sync.inspections_local ?? 0,
          received: sync.inspections_received ?? 0,
          applied: sync.inspections_applied ?? 0,
        })}
      </Item>
      {sync.inspections_attention ? (
        <Item className="statusbar__item statusbar__warn" data-fact="attention" data-value={String(sync.inspections_attention)}>
          {t('status.attention', { count: sync.inspections_attention })}
        </Item>
      ) : null}
      {sync.set_aside_count ? (
        <Item className="statusbar__item statusbar__warn" data-fact="set-aside" data-value={String(sync.set_aside_count)}>
          {t('status.setAside', { count: sync.set_aside_count })}
        </Item>
      ) : null}
      {sync.last_error ? (
        <Item className="statusbar__item statusbar__warn" title={sync.last_error} data-fact="last-error" data-value={sync.last_error}>
          {t('status.lastError', { error: syncErrorText(sync.last_error_kind, sync.last_error, lang) })}
        </Item>
      ) : null}
    </>
  ) : null;
  const badge = (
    <span className={`badge badge--${state}`} data-testid={compact ? 'sync-badge' : undefined} data-fact="state" data-value={state} data-state={state} role="status">
      <span className="badge__dot" aria-hidden="true" />
      {label[state]}
    </span>
  );
  if (compact) {
    return (
      <>
        {badge}
        {facts}
      </>
    );
  }
  return (
    <div className="sync-facts">
      {badge}
      <ul className="plain">{facts}</ul>
    </div>
  );
}
