import { describe, expect, it } from 'vitest';
import { en } from './en';
import { ja } from './ja';
import { dictionaries, formatAge, LANGS, translate } from './translate';

const placeholders = (text: string) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

describe('i18n dictionaries', () => {
  it('has every key in both languages, and no extra ones', () => {
    expect(Object.keys(en).sort()).toEqual(Object.keys(ja).sort());
  });

  it('has no empty message', () => {
    for (const lang of LANGS) {
      for (const [key, text] of Object.entries(dictionaries[lang])) {
        expect(text.trim(), `${lang} ${key}`).not.toBe('');
      }
    }
  });

  it('uses the same placeholders in both languages', () => {
    for (const key of Object.keys(ja) as (keyof typeof ja)[]) {
      expect(placeholders(en[key]), key).toEqual(placeholders(ja[key]));
    }
  });

  it('really translates: English text has no Japanese script (except the language name)', () => {
    const japanese = /[\u3040-\u30ff\u4e00-\u9fff]/;
    for (const [key, text] of Object.entries(en)) {
      if (key === 'lang.ja') continue;
      expect(japanese.test(text), `${key}: ${text}`).toBe(false);
    }
  });

  it('fills placeholders and leaves unknown ones visible', () => {
    expect(translate('ja', 'status.pending', { count: 3 })).toBe('未送信 3件');
    expect(translate('en', 'status.pending', { count: 3 })).toBe('3 unsent');
    expect(translate('en', 'status.pending')).toBe('{count} unsent');
  });

  it('formats ages in each language', () => {
    expect(formatAge('ja', 42)).toBe('42秒前');
    expect(formatAge('en', 185)).toBe('3 min ago');
    expect(formatAge('en', 7300)).toBe('2 h ago');
    expect(formatAge('ja', 90000)).toBe('1日前');
  });
});
