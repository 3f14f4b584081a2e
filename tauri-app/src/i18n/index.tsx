// The language context: Japanese by default, English on request, remembered on the tablet.
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import { errorMessage } from './errors';
import {
  DEFAULT_LANG,
  formatAge,
  formatDateTime,
  formatTime,
  isLang,
  translator,
  type Lang,
  type Translate,
} from './translate';

export type { Lang, MessageKey, Translate } from './translate';

const STORAGE_KEY = 'kensa.lang';

interface I18n {
  lang: Lang;
  setLang: (lang: Lang) => void;
  t: Translate;
  err: (error: unknown) => string;
  time: (iso: string | null | undefined) => string;
  dateTime: (iso: string | null | undefined) => string;
  age: (seconds: number) => string;
}

const I18nContext = createContext<I18n | null>(null);

function initialLang(): Lang {
  try {
    const stored = window.localStorage.getItem(STORAGE_KEY);
    if (isLang(stored)) return stored;
  } catch {
    // Storage may be unavailable (private mode); the default stands.
  }
  return DEFAULT_LANG;
}

export function I18nProvider({ children }: { children: ReactNode }) {
  const [lang, setLangState] = useState<Lang>(initialLang);
  const setLang = useCallback((next: Lang) => {
    setLangState(next);
    try {
      window.localStorage.setItem(STORAGE_KEY, next);
    } catch {
      // Not remembered, but still switched for this visit.
    }
  }, []);
  useEffect(() => {
    document.documentElement.lang = lang;
    document.title = translator(lang)('app.title');
  }, [lang]);
  const value = useMemo<I18n>(
    () => ({
      lang,
      setLang,
      t: translator(lang),
      err: (error) => errorMessage(error, lang),
      time: (iso) => formatTime(lang, iso),
      dateTime: (iso) => formatDateTime(lang, iso),
      age: (seconds) => formatAge(lang, seconds),
    }),
    [lang, setLang],
  );
  return <I18nContext.Provider value={value}>{children}</I18nContext.Provider>;
}

export function useI18n(): I18n {
  const value = useContext(I18nContext);
  if (!value) throw new Error('useI18n outside I18nProvider');
  return value;
}
