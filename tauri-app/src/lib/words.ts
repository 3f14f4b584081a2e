// What the sidecar sends as identifiers — a job's stage, a measurement's name, a judgment's
// reason (a code and its values) — in the UI's language. Nothing here shows an identifier to a
// Japanese reader where there are words for it; the English reason sentence the sidecar also
// keeps is shown only in English, and only for results judged before reasons carried codes.
import type { Lang, MessageKey, Translate } from '../i18n';
import { isMessageKey, locale } from '../i18n/translate';

/** A stage of a job, warm-up or sync as the progress bars name it ("completed" → 完了). */
export function stageLabel(t: Translate, stage: string | null | undefined): string {
  const key = `stage.${stage ?? ''}`;
  return isMessageKey(key) ? t(key) : t('stage.working');
}

/** A pipeline's measurement by name ("bore_found" → 穴の検出), or the name where there are no words. */
export function measurementName(t: Translate, name: string): string {
  const key = `measure.${name}`;
  return isMessageKey(key) ? t(key) : name;
}

/** A number as measured, to four significant digits in the language's notation. */
export function measuredNumber(lang: Lang, value: number): string {
  return new Intl.NumberFormat(locale(lang), { maximumSignificantDigits: 4 }).format(value);
}

/** The judgment's stored `detailed_results.judgment` as the sidecar writes it. */
export interface JudgmentReason {
  reason?: unknown;
  reason_code?: unknown;
  reason_params?: unknown;
}

type Rule = Partial<Record<Lang, string>>;

function asRecord(value: unknown): Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

function valueText(t: Translate, lang: Lang, value: unknown): string {
  if (typeof value === 'number') return measuredNumber(lang, value);
  if (typeof value === 'boolean') return t(value ? 'reason.yes' : 'reason.no');
  if (typeof value === 'string') return value;
  return '—';
}

function referenceName(t: Translate, reference: unknown): string {
  const key = `ref.${typeof reference === 'string' ? reference.replace(/^\$target\./, '') : ''}`;
  return isMessageKey(key) ? t(key) : t('ref.other');
}

/** Why the AI judged as it did, in the UI's language; null when there is nothing to say in it. */
export function reasonText(t: Translate, lang: Lang, judgment: JudgmentReason | null | undefined): string | null {
  if (!judgment) return null;
  const code = judgment.reason_code;
  const key = `reason.${typeof code === 'string' ? code : ''}`;
  if (typeof code !== 'string' || !isMessageKey(key)) {
    // A result judged before reasons carried codes: its sentence is English.
    return lang === 'en' && typeof judgment.reason === 'string' ? judgment.reason : null;
  }
  const p = asRecord(judgment.reason_params);
  const rule = asRecord(p.rule) as Rule;
  const result = typeof p.rule_result === 'string' ? p.rule_result : '';
  const resultKey = `result.${result}`;
  const params: Record<string, string> = {
    m: typeof p.measurement === 'string' ? measurementName(t, p.measurement) : '—',
    value: valueText(t, lang, p.value),
    unit: typeof p.unit === 'string' && p.unit ? ` ${p.unit}` : '',
    rule: rule[lang] ?? '—',
    text: typeof p.text === 'string' ? p.text : '—',
    expected: valueText(t, lang, p.expected),
    ref: referenceName(t, p.reference),
    allowed: Array.isArray(p.allowed) ? p.allowed.map(String).join(', ') : '—',
    low: typeof p.low === 'number' ? measuredNumber(lang, p.low) : '—',
    high: typeof p.high === 'number' ? measuredNumber(lang, p.high) : '—',
    confidence: typeof p.confidence === 'number' ? measuredNumber(lang, p.confidence) : '—',
    minimum: typeof p.minimum === 'number' ? measuredNumber(lang, p.minimum) : '—',
    result: isMessageKey(resultKey) ? t(resultKey) : '—',
  };
  return t(key as MessageKey, params);
}

const AUDIT_VALUE_PREFIXES: Record<string, readonly string[]> = {
  status: ['sstatus', 'istatus'],
  result: ['result'],
};

/** One field an audit entry says changed ("status: pending → verified"), in words. */
export function auditChange(
  t: Translate,
  lang: Lang,
  dateTime: (iso: string) => string,
  field: string,
  change: { before?: unknown; after?: unknown },
): string {
  const fieldKey = `audit.field.${field}`;
  const name = isMessageKey(fieldKey) ? t(fieldKey) : field;
  const show = (v: unknown): string => {
    if (v === null || v === undefined) return '—';
    if (typeof v === 'boolean') return t(v ? 'common.yes' : 'common.no');
    if (typeof v === 'number') return measuredNumber(lang, v);
    if (typeof v !== 'string') return '—';
    for (const prefix of AUDIT_VALUE_PREFIXES[field] ?? []) {
      const key = `${prefix}.${v}`;
      if (isMessageKey(key)) return t(key);
    }
    return /^\d{4}-\d\d-\d\dT\d\d:\d\d/.test(v) ? dateTime(v) : v;
  };
  return 'before' in change ? `${name}: ${show(change.before)} → ${show(change.after)}` : `${name}: ${show(change.after)}`;
}

/** A master's name in the UI's language: its English name in English where the master has
 * one, else the name (the factory's own, Japanese). */
export function localName(lang: Lang, name: string | null | undefined, nameEn: string | null | undefined): string {
  return (lang === 'en' && nameEn ? nameEn : name) ?? '';
}

/** A record the sync queue holds, as "検査 · 変更" / "Inspection · change". */
export function recordKind(t: Translate, entity: string, operation: string): string {
  const entityKey = `audit.entity.${entity}`;
  const actionKey = `audit.action.${operation.toLowerCase()}`;
  return `${isMessageKey(entityKey) ? t(entityKey) : t('audit.entity.other')} · ${isMessageKey(actionKey) ? t(actionKey) : t('audit.action.other')}`;
}

/** The server's reason for refusing a record, as its words: the message of an answer that came
 * as a JSON document, never the document. */
export function serverReason(reason: string | null | undefined): string {
  if (!reason) return '—';
  const text = reason.trim();
  if (!text.startsWith('{')) return text;
  try {
    const parsed = JSON.parse(text) as unknown;
    const doc = asRecord(parsed);
    const detail = asRecord(doc.detail);
    for (const said of [doc.message, doc.reason, detail.message, doc.detail]) {
      if (typeof said === 'string' && said.trim()) return said.trim();
    }
  } catch {
    // Not JSON after all: the text is the reason.
  }
  return text;
}

/** A classifier's class as words ("ng" → 不良品), or null for a class without words. */
export function className(t: Translate, value: string): string | null {
  const key = `class.${value.toLowerCase()}`;
  return isMessageKey(key) ? t(key) : null;
}
