// Pure translation helpers (no React), so tests and non-UI code can use them.
import { en } from './en';
import { ja, type MessageKey } from './ja';

export type Lang = 'ja' | 'en';
export const LANGS: readonly Lang[] = ['ja', 'en'];
export const DEFAULT_LANG: Lang = 'ja';
export const dictionaries: Record<Lang, Record<MessageKey, string>> = { ja, en };

export type Params = Record<string, string | number>;
export type Translate = (key: MessageKey, params?: Params) => string;
export type { MessageKey };

export function isLang(value: unknown): value is Lang {
  return value === 'ja' || value === 'en';
}

export function isMessageKey(key: string): key is MessageKey {
  return Object.prototype.hasOwnProperty.call(ja, key);
}

export function translate(lang: Lang, key: MessageKey, params?: Params): string {
  const template = dictionaries[lang][key] ?? dictionaries[DEFAULT_LANG][key] ?? key;
  if (!params) return template;
  return template.replace(/\{(\w+)\}/g, (whole, name: string) =>
    name in params ? String(params[name]) : whole,
  );
}

export function translator(lang: Lang): Translate {
  return (key, params) => translate(lang, key, params);
}

export function locale(lang: Lang): string {
  return lang === 'ja' ? 'ja-JP' : 'en-GB';
}

/** "14:05", or "11/27 14:05" when not today (in the tablet's time zone). */
export function formatTime(lang: Lang, iso: string | null | undefined, now = new Date()): string {
  if (!iso) return '—';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const sameDay = date.toDateString() === now.toDateString();
  const options: Intl.DateTimeFormatOptions = sameDay
    ? { hour: '2-digit', minute: '2-digit' }
    : { month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit' };
  return new Intl.DateTimeFormat(locale(lang), options).format(date);
}

export function formatDateTime(lang: Lang, iso: string | null | undefined): string {
  if (!iso) return '—';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return new Intl.DateTimeFormat(locale(lang), {
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
  }).format(date);
}

/** "3 min ago" / "3分前" for an age in seconds. */
export function formatAge(lang: Lang, seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return translate(lang, 'age.seconds', { n: s });
  if (s < 3600) return translate(lang, 'age.minutes', { n: Math.floor(s / 60) });
  if (s < 86400) return translate(lang, 'age.hours', { n: Math.floor(s / 3600) });
  return translate(lang, 'age.days', { n: Math.floor(s / 86400) });
}
