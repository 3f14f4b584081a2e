// The sync status as the status bar and the settings screen both show it: one shape (the
// sidecar's SyncSummary: the event stream's `sync` data, and part of GET /sync/status), one
// reading of it.
import type { Schemas } from '../api/client';

type Summary = Schemas['SyncSummary'];
/** The summary's fields, as both answers type them (GET /sync/status may leave unset ones out). */
export type SyncSummary = { [K in keyof Summary]?: Summary[K] | undefined };
export type BadgeState = 'unknown' | 'offline' | 'syncing' | 'synced';

/** A summary and when it arrived (ms since epoch), to age the oldest unsent record meanwhile. */
export interface Received {
  summary: SyncSummary;
  receivedAt: number;
}

export function badgeState(sync: Pick<SyncSummary, 'online' | 'pending_rows'> | null): BadgeState {
  if (!sync) return 'unknown';
  if (!sync.online) return 'offline';
  return (sync.pending_rows ?? 0) > 0 ? 'syncing' : 'synced';
}

/** Seconds the oldest unsent record has waited at `now`, or null when nothing waits. */
export function oldestAge(received: Received, now: number): number | null {
  const age = received.summary.oldest_pending_age_s;
  if (age === null || age === undefined || !received.summary.pending_rows) return null;
  return age + Math.max(0, now - received.receivedAt) / 1000;
}
