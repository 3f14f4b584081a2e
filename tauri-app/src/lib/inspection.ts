// Small pure helpers over the API's inspection shapes.
import type { Schemas } from '../api/client';
import type { Translate } from '../i18n';
import { isMessageKey } from '../i18n/translate';

export type Session = Schemas['SessionPublic'];
export type SessionItem = Schemas['SessionItemPublic'];
export type AIResult = Schemas['AIResultPublic'];

export const DONE = new Set(['verified', 'skipped']);
export const SESSION_ENDS = new Set(['completed', 'failed', 'cancelled', 'product_not_found', 'qr_decode_failed']);
export const DEFECT_TYPES = [
  'scratch',
  'dent',
  'foreign_matter',
  'marking_illegible',
  'marking_mismatch',
  'bore_oversize',
  'bore_undersize',
  'piston_stuck',
  'other',
] as const;
export const SEVERITIES = ['minor', 'major', 'critical'] as const;
export const VERDICTS = ['OK', 'NG', 'PENDING'] as const;

/** How far one item (a step of the inspection) has got, for the per-step progress bars. */
export function stepPercent(status: string): number {
  switch (status) {
    case 'verified':
    case 'skipped':
      return 100;
    case 'ai_completed':
      return 75;
    case 'ai_running':
      return 60;
    case 'captured':
    case 'failed':
      return 40;
    default:
      return 0;
  }
}

export function doneCount(items: { status: string }[]): number {
  return items.filter((i) => DONE.has(i.status)).length;
}

/** Every required item verified and every optional one verified or skipped. */
export function canComplete(items: { status: string; required: boolean }[]): boolean {
  return items.every((i) => i.status === 'verified' || (i.status === 'skipped' && !i.required));
}

/** The first item after `currentId` (wrapping) that is not done, or null. */
export function nextOpenItem(items: SessionItem[], currentId: string | null): SessionItem | null {
  const start = currentId ? items.findIndex((i) => i.item_id === currentId) + 1 : 0;
  for (let k = 0; k < items.length; k++) {
    const item = items[(start + k) % items.length];
    if (item && !DONE.has(item.status)) return item;
  }
  return null;
}

export function latest<T extends { created_at: string }>(rows: T[]): T | null {
  return rows.length ? (rows[rows.length - 1] as T) : null;
}

const OPS: Record<string, string> = { LT: '<', LE: '≤', GT: '>', GE: '≥', EQ: '=', NE: '≠' };

/** One line saying how the item is judged, e.g. "defect_probability < 0.5". */
export function criteriaText(criteria: Record<string, unknown>, t: Translate): string {
  const m = String(criteria.measurement ?? '');
  const parts: string[] = [];
  switch (criteria.judgment_type) {
    case 'THRESHOLD':
      parts.push(
        t('criteria.threshold', {
          measurement: m,
          op: OPS[String(criteria.operator)] ?? String(criteria.operator ?? ''),
          threshold: String(criteria.threshold ?? ''),
        }),
      );
      break;
    case 'NUMERICAL':
      parts.push(
        t('criteria.range', {
          measurement: m,
          min: String(criteria.min ?? ''),
          max: String(criteria.max ?? ''),
          unit: String(criteria.unit ?? ''),
        }).trim(),
      );
      break;
    case 'BINARY':
      parts.push(t('criteria.binary', { measurement: m, expected: String(criteria.expected) }));
      break;
    case 'PATTERN':
      parts.push(t('criteria.pattern', { measurement: m, pattern: String(criteria.pattern ?? '') }));
      break;
    case 'CATEGORICAL':
      parts.push(
        t('criteria.categorical', {
          measurement: m,
          allowed: Array.isArray(criteria.allowed) ? criteria.allowed.join(', ') : '',
        }),
      );
      break;
    default:
      parts.push(String(criteria.judgment_type ?? ''));
  }
  const band = criteria.review_band;
  if (Array.isArray(band) && band.length === 2) {
    parts.push(t('criteria.reviewBand', { low: String(band[0]), high: String(band[1]) }));
  }
  return parts.filter(Boolean).join(' · ');
}

/** A translated label for a status or result code, falling back to the code itself. */
export function label(t: Translate, prefix: 'istatus' | 'sstatus' | 'result' | 'itype' | 'defect' | 'severity', code: string | null | undefined): string {
  if (!code) return t('result.none');
  const key = `${prefix}.${code}`;
  return isMessageKey(key) ? t(key) : code;
}

export function formatMeasurement(value: unknown): string {
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : value.toFixed(4).replace(/0+$/, '').replace(/\.$/, '');
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (value === null || value === undefined) return '—';
  if (typeof value === 'string') return value;
  return JSON.stringify(value);
}
