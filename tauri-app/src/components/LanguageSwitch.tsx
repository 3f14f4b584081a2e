import { useI18n, type Lang } from '../i18n';
import { LANGS } from '../i18n/translate';

export function LanguageSwitch() {
  const { lang, setLang, t } = useI18n();
  return (
    <div className="segmented" role="group" aria-label={t('lang.label')} data-testid="lang-switch">
      {LANGS.map((code: Lang) => (
        <button
          key={code}
          type="button"
          className={`segmented__btn${lang === code ? ' is-active' : ''}`}
          aria-pressed={lang === code}
          lang={code}
          data-testid={`lang-${code}`}
          onClick={() => setLang(code)}
        >
          {t(`lang.${code}`)}
        </button>
      ))}
    </div>
  );
}
