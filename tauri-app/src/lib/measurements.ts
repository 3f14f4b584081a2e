// An AI result's measurements typed for a person: a number with its unit and a precision that
// suits its size, a yes/no in words, a position as "shown on the photo" (drawn there, never
// printed as a list of fractions), a long series as a count. Every cell is short or wraps:
// nothing here can widen the card it sits in.
import { locale, type Lang, type Translate } from '../i18n/translate';
import { className } from './words';

/** Longest text shown as it is; beyond it the rest is cut (the full value stays on file). */
export const MAX_TEXT = 120;
/** A series up to this long is listed; a longer one is counted. */
export const MAX_LISTED = 4;

export interface MeasurementRow {
  key: string;
  value: string;
  /** What the value is, for tests and styles: number, bool, text, drawn, list, none. */
  kind: 'number' | 'bool' | 'text' | 'drawn' | 'list' | 'none';
}

function decimals(abs: number): { min: number; max: number } | null {
  if (abs >= 1000) return { min: 0, max: 0 };
  if (abs >= 100) return { min: 1, max: 1 };
  if (abs >= 10) return { min: 2, max: 2 };
  if (abs >= 1) return { min: 3, max: 3 };
  return null; // under 1: significant digits, so 0.00012 is not "0.000"
}

/** A finite number at a precision that suits its size ("12.00", "9.789", "0.9977", "1,234"). */
export function formatNumber(lang: Lang, value: number): string {
  if (!Number.isFinite(value)) return '—';
  if (Number.isInteger(value)) return new Intl.NumberFormat(locale(lang)).format(value);
  const abs = Math.abs(value);
  const fixed = decimals(abs);
  const options: Intl.NumberFormatOptions = fixed
    ? { minimumFractionDigits: fixed.min, maximumFractionDigits: fixed.max }
    : { maximumSignificantDigits: 4 };
  if (abs !== 0 && abs < 1e-4) return value.toExponential(2);
  return new Intl.NumberFormat(locale(lang), options).format(value);
}

function short(text: string): string {
  return text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT)}…` : text;
}

export function formatMeasurementValue(
  lang: Lang,
  t: Translate,
  value: unknown,
  unit: string | undefined,
  drawn: boolean,
): Omit<MeasurementRow, 'key'> {
  if (drawn && value !== null && value !== undefined) return { value: t('item.onPhoto'), kind: 'drawn' };
  if (value === null || value === undefined) return { value: '—', kind: 'none' };
  if (typeof value === 'boolean') return { value: t(value ? 'item.yes' : 'item.no'), kind: 'bool' };
  if (typeof value === 'number') {
    const text = formatNumber(lang, value);
    return { value: unit && text !== '—' ? `${text} ${unit}` : text, kind: 'number' };
  }
  if (typeof value === 'string') return { value: short(value), kind: 'text' };
  if (Array.isArray(value)) {
    if (value.length === 0) return { value: '—', kind: 'none' };
    if (value.length <= MAX_LISTED && value.every((v) => typeof v === 'number')) {
      const unitText = unit ? ` ${unit}` : '';
      return { value: (value as number[]).map((v) => formatNumber(lang, v) + unitText).join(', '), kind: 'list' };
    }
    return { value: t('item.values', { n: countValues(value) }), kind: 'list' };
  }
  if (typeof value === 'object') return { value: t('item.values', { n: countValues(value) }), kind: 'list' };
  return { value: short(String(value)), kind: 'text' };
}

/** How many plain values a nested list or record holds (a 224×224 map: 50,176). */
function countValues(value: unknown, limit = 1_000_000): number {
  let count = 0;
  const stack: unknown[] = [value];
  while (stack.length && count < limit) {
    const v = stack.pop();
    // One by one: spreading a long series into push() overruns the argument limit.
    if (Array.isArray(v)) for (const x of v) stack.push(x);
    else if (v !== null && typeof v === 'object') for (const x of Object.values(v as Record<string, unknown>)) stack.push(x);
    else count++;
  }
  return count;
}

export function measurementRows(
  lang: Lang,
  t: Translate,
  measurements: Record<string, unknown> | null | undefined,
  units: Record<string, unknown> | null | undefined,
  drawn: readonly string[],
): MeasurementRow[] {
  return Object.entries(measurements ?? {}).map(([key, value]) => {
    const unit = units?.[key];
    const row = { key, ...formatMeasurementValue(lang, t, value, typeof unit === 'string' ? unit : undefined, drawn.includes(key)) };
    // A classifier's class is a word of the model's ("ng"): the reader gets it in theirs.
    const named = key === 'label' && typeof value === 'string' ? className(t, value) : null;
    return named ? { ...row, value: named } : row;
  });
}
