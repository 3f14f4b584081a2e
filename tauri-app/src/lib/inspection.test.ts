import { describe, expect, it } from 'vitest';
import { translator } from '../i18n/translate';
import {
  ITEM_STATES,
  itemStateLabel,
  nextOpenItem,
  SESSION_STATES,
  sessionStateLabel,
  verdictMissing,
  type SessionItem,
} from './inspection';
import { badgeState, oldestAge, type SyncSummary } from './syncStatus';
import { prune, type Progress } from '../state/events';
import { parseRoute, routeHash } from '../state/route';

const item = (id: string, done: boolean) => ({ item_id: id, done }) as SessionItem;

describe('inspection helpers', () => {
  it('goes to the next item the sidecar says is not done, wrapping round', () => {
    const items = [item('a', false), item('b', true), item('c', false)];
    expect(nextOpenItem(items, 'a')?.item_id).toBe('c');
    expect(nextOpenItem(items, 'c')?.item_id).toBe('a');
    expect(nextOpenItem(items, null)?.item_id).toBe('a');
    expect(nextOpenItem([item('a', true)], 'a')).toBeNull();
  });

  it('names every state of the move table in both languages, each differently', () => {
    for (const lang of ['ja', 'en'] as const) {
      const t = translator(lang);
      const items = ITEM_STATES.map((s) => itemStateLabel(t, s));
      const sessions = SESSION_STATES.map((s) => sessionStateLabel(t, s));
      for (const name of [...items, ...sessions]) expect(name).not.toMatch(/^[is]status\./);
      expect(new Set(items).size).toBe(ITEM_STATES.length);
    }
    expect(ITEM_STATES).toContain('ai_running');
    expect(SESSION_STATES).toContain('human_review');
  });

  it('asks of a verdict what the sidecar says its result needs, and nothing else', () => {
    const needs = { OK: [], NG: ['defect_types', 'severity'], PENDING: [] } as SessionItem['verdict_needs'];
    expect(verdictMissing(needs, 'NG', { defect_types: [], severity: null })).toEqual(['defect_types', 'severity']);
    expect(verdictMissing(needs, 'NG', { defect_types: ['scratch'], severity: null })).toEqual(['severity']);
    expect(verdictMissing(needs, 'NG', { defect_types: [], severity: 'major' })).toEqual(['defect_types']);
    expect(verdictMissing(needs, 'NG', { defect_types: ['scratch'], severity: 'major' })).toEqual([]);
    expect(verdictMissing(needs, 'OK', { defect_types: [], severity: null })).toEqual([]);
    expect(verdictMissing(needs, 'PENDING', { defect_types: [], severity: null })).toEqual([]);
    // The rule is the sidecar's: were a PENDING to need a severity, the form would ask for one.
    const stricter = { ...needs, PENDING: ['severity'] } as SessionItem['verdict_needs'];
    expect(verdictMissing(stricter, 'PENDING', { defect_types: [], severity: null })).toEqual(['severity']);
  });

  it('drops finished progress after a moment and stale progress after a minute', () => {
    const p = (percentage: number, updated_at: number): Progress => ({ kind: 'job', id: 'x', stage: 's', percentage, eta_s: null, updated_at });
    expect(Object.keys(prune({ a: p(100, 0), b: p(50, 0), c: p(50, 9_000) }, 10_000))).toEqual(['b', 'c']);
    expect(Object.keys(prune({ b: p(50, 0) }, 70_000))).toEqual([]);
  });

  it('routes round-trip through the hash', () => {
    for (const hash of ['#/scan', '#/history', '#/session/s1', '#/session/s1/item/i2', '#/session/s1/summary', '#/history/s9', '#/settings']) {
      expect(routeHash(parseRoute(hash))).toBe(hash);
    }
    expect(parseRoute('#/nonsense').name).toBe('scan');
  });
});

describe('sync status', () => {
  it('reads the badge from online and what waits', () => {
    expect(badgeState(null)).toBe('unknown');
    expect(badgeState({ online: false, pending_rows: 0 })).toBe('offline');
    expect(badgeState({ online: true, pending_rows: 3 })).toBe('syncing');
    expect(badgeState({ online: true, pending_rows: 0 })).toBe('synced');
  });

  it('ages the oldest unsent record between updates, and not when nothing waits', () => {
    const summary = { configured: true, online: false, pending_rows: 2, oldest_pending_age_s: 10 } as SyncSummary;
    expect(oldestAge({ summary, receivedAt: 1_000 }, 6_000)).toBe(15);
    expect(oldestAge({ summary: { ...summary, pending_rows: 0 }, receivedAt: 1_000 }, 6_000)).toBeNull();
  });
});
