import { describe, expect, it } from 'vitest';
import { translator } from '../i18n/translate';
import { canComplete, criteriaText, nextOpenItem, stepPercent, type SessionItem } from './inspection';
import { prune, type Progress } from '../state/events';
import { parseRoute, routeHash } from '../state/route';

const item = (id: string, status: string, required = true) => ({ item_id: id, status, required }) as SessionItem;

describe('inspection helpers', () => {
  it('completes only when required items are verified and optional ones verified or skipped', () => {
    expect(canComplete([item('a', 'verified'), item('b', 'skipped', false)])).toBe(true);
    expect(canComplete([item('a', 'verified'), item('b', 'skipped', true)])).toBe(false);
    expect(canComplete([item('a', 'ai_completed')])).toBe(false);
  });

  it('goes to the next open item, wrapping round', () => {
    const items = [item('a', 'pending'), item('b', 'verified'), item('c', 'captured')];
    expect(nextOpenItem(items, 'a')?.item_id).toBe('c');
    expect(nextOpenItem(items, 'c')?.item_id).toBe('a');
    expect(nextOpenItem([item('a', 'verified')], 'a')).toBeNull();
  });

  it('gives each step a progress', () => {
    expect(['pending', 'captured', 'ai_running', 'ai_completed', 'verified', 'skipped'].map(stepPercent)).toEqual([0, 40, 60, 75, 100, 100]);
  });

  it('says the criteria in words', () => {
    const t = translator('en');
    expect(criteriaText({ judgment_type: 'THRESHOLD', measurement: 'p', operator: 'LT', threshold: 0.5, review_band: [0.3, 0.7] }, t)).toBe(
      'p < 0.5 · review band 0.3–0.7',
    );
    expect(criteriaText({ judgment_type: 'NUMERICAL', measurement: 'bore_mm', min: 11.95, max: 12.05, unit: 'mm' }, translator('ja'))).toBe(
      'bore_mm 11.95〜12.05 mm',
    );
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
