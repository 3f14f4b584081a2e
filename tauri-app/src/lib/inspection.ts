// Small pure helpers over the API's inspection shapes. Which moves are legal, when an inspection
// may complete and how an item is judged are the sidecar's to say (its answers carry `closed`,
// `done`, `can_complete`, `missing_items`, `can_skip`, `can_retry`, `verdict_needs`,
// `criteria_text`): nothing here re-decides them.
import type { Schemas } from '../api/client';
import type { Lang, MessageKey, Translate } from '../i18n';
import { isMessageKey } from '../i18n/translate';

export type Session = Schemas['SessionPublic'];
export type SessionItem = Schemas['SessionItemPublic'];
export type AIResult = Schemas['AIResultPublic'];
/** The states of the sidecar's move table, as its OpenAPI document lists them. */
export type SessionState = Session['status'];
export type ItemState = SessionItem['status'];

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

// A name for every state, and no name for a state the table does not have: the compiler holds
// these records to the generated types, so a state added to the table fails the build here
// until it has its words.
const SESSION_STATE_KEYS: Record<SessionState, MessageKey> = {
  scanning: 'sstatus.scanning',
  identified: 'sstatus.identified',
  in_progress: 'sstatus.in_progress',
  ai_completed: 'sstatus.ai_completed',
  human_review: 'sstatus.human_review',
  completed: 'sstatus.completed',
  cancelled: 'sstatus.cancelled',
  failed: 'sstatus.failed',
  product_not_found: 'sstatus.product_not_found',
  qr_decode_failed: 'sstatus.qr_decode_failed',
};

const ITEM_STATE_KEYS: Record<ItemState, MessageKey> = {
  pending: 'istatus.pending',
  captured: 'istatus.captured',
  ai_running: 'istatus.ai_running',
  ai_completed: 'istatus.ai_completed',
  verified: 'istatus.verified',
  skipped: 'istatus.skipped',
  failed: 'istatus.failed',
};

export const SESSION_STATES = Object.keys(SESSION_STATE_KEYS) as SessionState[];
export const ITEM_STATES = Object.keys(ITEM_STATE_KEYS) as ItemState[];

export function sessionStateLabel(t: Translate, status: SessionState): string {
  return t(SESSION_STATE_KEYS[status]);
}

export function itemStateLabel(t: Translate, status: ItemState): string {
  return t(ITEM_STATE_KEYS[status]);
}

export function doneCount(items: { done: boolean }[]): number {
  return items.filter((i) => i.done).length;
}

/** The first item after `currentId` (wrapping) that is not done, or null. */
export function nextOpenItem<T extends { item_id: string; done: boolean }>(items: T[], currentId: string | null): T | null {
  const start = currentId ? items.findIndex((i) => i.item_id === currentId) + 1 : 0;
  for (let k = 0; k < items.length; k++) {
    const item = items[(start + k) % items.length];
    if (item && !item.done) return item;
  }
  return null;
}

/** The line under an item saying how it is judged, as the sidecar words it. */
export function criteriaLine(item: { criteria_text: Schemas['CriteriaTextPublic'] }, lang: Lang): string {
  return item.criteria_text[lang];
}

export type VerdictField = Schemas['VerdictNeedsPublic']['NG'][number];

/** What the verdict form still lacks for `result`, by the rule the sidecar sent with the item
 * (`verdict_needs`: e.g. an NG names its defect types and a severity); empty when it may post. */
export function verdictMissing(
  needs: Schemas['VerdictNeedsPublic'],
  result: (typeof VERDICTS)[number],
  given: { defect_types: readonly string[]; severity: string | null },
): VerdictField[] {
  return needs[result].filter((field) => (field === 'defect_types' ? given.defect_types.length === 0 : !given.severity));
}

export function latest<T extends { created_at: string }>(rows: T[]): T | null {
  return rows.length ? (rows[rows.length - 1] as T) : null;
}

/** A translated label for a result, inspection type, defect or severity code, or the code itself. */
export function label(t: Translate, prefix: 'result' | 'itype' | 'defect' | 'severity', code: string | null | undefined): string {
  if (!code) return t('result.none');
  const key = `${prefix}.${code}`;
  return isMessageKey(key) ? t(key) : code;
}

/** The model's own confidence as a percentage, or "—" when it gave none (a measurement, a score
 * that is no probability): never a number no model produced. Shown to one decimal, and to as
 * many more as it takes for a value short of certainty never to read "100%" (0.9977 is
 * "99.8%", 0.99996 "99.996%"), nor one above nothing "0%". */
export function confidencePercent(confidence: number | null | undefined): string {
  if (confidence === null || confidence === undefined || !Number.isFinite(confidence)) return '—';
  if (confidence < 0 || confidence > 1) return '—';
  if (confidence === 0 || confidence === 1) return `${confidence * 100}%`;
  const pct = confidence * 100;
  for (let digits = 1; digits <= 4; digits++) {
    const step = 10 ** digits;
    // The last try leans away from the ends, so it can only land inside them.
    const shown = digits < 4 ? Math.round(pct * step) / step : (pct > 50 ? Math.floor(pct * step) : Math.ceil(pct * step)) / step;
    if (shown > 0 && shown < 100) return `${shown.toFixed(digits).replace(/\.?0+$/, '')}%`;
  }
  return pct > 50 ? '> 99.9999%' : '< 0.0001%';
}

/** A share of a count as a percentage, by the rule a confidence follows: a share short of all
 * never reads 100 %, nor one above none 0 % (199 passed of 200 is 99.5 %, not 100 %); "—" for a
 * share of nothing. */
export function sharePercent(part: number, whole: number): string {
  return whole > 0 ? confidencePercent(part / whole) : '—';
}
