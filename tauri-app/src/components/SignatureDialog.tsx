// The electronic signature: the user's own password entered again for an act that needs it
// (overriding the AI, releasing an NG item, completing with NG items, discarding). Which acts
// need one, and with which meaning, is the sidecar's rule: the UI asks only when the sidecar
// answers `signature_required`, and shows the meaning it names. Big field and buttons for gloves.
import { useCallback, useEffect, useRef, useState, type FormEvent } from 'react';
import { isApiError, type Schemas } from '../api/client';
import { errorCode } from '../i18n/errors';
import { useI18n } from '../i18n';
import { isMessageKey } from '../i18n/translate';
import { useApp } from '../state/app';
import { useModal } from '../state/dialogs';
import { ErrorText } from './ErrorText';

export type Meaning = Schemas['SignatureCreate']['meaning'];
export type Signature = Schemas['SignatureCreate'];

/** The words for a meaning, a role: the sidecar's codes, in the user's language. */
export function useSignatureWords() {
  const { t } = useI18n();
  return {
    meaning: (m: string) => {
      const key = `sig.meaning.${m}`;
      return isMessageKey(key) ? t(key) : m;
    },
    role: (r: string) => {
      const key = `sig.role.${r}`;
      return isMessageKey(key) ? t(key) : r;
    },
  };
}

interface Props {
  meaning: Meaning;
  /** Sign: resolves when the act went through; rejects with the sidecar's error otherwise. */
  onSign: (signature: Signature) => Promise<void>;
  onCancel: () => void;
}

// Errors that leave the dialog open (try the password again, or read why it cannot be signed).
const STAY_OPEN = new Set(['signature_invalid', 'account_locked', 'validation_error']);

export function SignatureDialog({ meaning, onSign, onCancel }: Props) {
  const { t, err } = useI18n();
  const { login } = useApp();
  const words = useSignatureWords();
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const field = useRef<HTMLInputElement>(null);
  useModal();

  useEffect(() => {
    field.current?.focus();
  }, []);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!password) {
      field.current?.focus();
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await onSign({ password, meaning });
    } catch (caught) {
      if (!STAY_OPEN.has(errorCode(caught))) throw caught;
      setError(err(caught));
      setPassword('');
      field.current?.focus();
    } finally {
      setBusy(false);
    }
  };

  const user = login?.user;
  return (
    <div className="overlay">
      {/* The dialog holds the form rather than being one: a form may not take the dialog role. */}
      <div
        className="dialog signature"
        role="dialog"
        aria-modal="true"
        aria-labelledby="signature-title"
        onKeyDown={(e) => {
          if (e.key === 'Escape' && !busy) onCancel();
        }}
        data-testid="signature-dialog"
        data-meaning={meaning}
      >
        <form onSubmit={(e) => void submit(e)}>
          <h2 id="signature-title">{t('sig.title')}</h2>
          <p>{t('sig.intro')}</p>
          <dl className="facts">
            <div>
              <dt>{t('sig.signer')}</dt>
              <dd data-testid="signature-signer">
                {user ? `${user.full_name ?? user.username} (${words.role(user.role)})` : '—'}
              </dd>
            </div>
            <div>
              <dt>{t('sig.meaningLabel')}</dt>
              <dd data-testid="signature-meaning">{words.meaning(meaning)}</dd>
            </div>
          </dl>
          <label className="field">
            <span>{t('sig.password')}</span>
            <input
              ref={field}
              type="password"
              className="signature__password"
              autoComplete="current-password"
              value={password}
              onChange={(e) => setPassword(e.target.value)}
              maxLength={1024}
              data-testid="signature-password"
            />
          </label>
          <p className="muted small">{t('sig.binding')}</p>
          <ErrorText message={error} testId="signature-error" />
          <div className="actions">
            <button type="submit" className="btn btn--primary signature__btn" disabled={busy || !password} data-testid="signature-sign">
              {busy ? t('sig.signing') : t('sig.sign')}
            </button>
            <button type="button" className="btn signature__btn" disabled={busy} onClick={onCancel} data-testid="signature-cancel">
              {t('sig.cancel')}
            </button>
          </div>
        </form>
      </div>
    </div>
  );
}

interface Asked {
  meaning: Meaning;
  sign: (signature: Signature) => Promise<void>;
  cancel: () => void;
}

const MEANINGS: readonly Meaning[] = ['approved', 'overridden', 'released', 'discarded'];

function meaningAsked(caught: unknown): Meaning | null {
  if (errorCode(caught) !== 'signature_required' || !isApiError(caught)) return null;
  const detail = caught.detail;
  const meaning = detail && typeof detail === 'object' ? (detail as { meaning?: unknown }).meaning : undefined;
  return MEANINGS.find((m) => m === meaning) ?? null;
}

/**
 * Run an act that may need a signature: `signed(run)` calls `run(null)`; when the sidecar
 * answers `signature_required`, the dialog (`dialog`, to be rendered) asks for the password and
 * runs `run(signature)`. Resolves with the act's result, or null when the user cancels; rejects
 * with any other error of the act.
 */
export function useSigned() {
  const [asked, setAsked] = useState<Asked | null>(null);
  const signed = useCallback(
    <T,>(run: (signature: Signature | null) => Promise<T>): Promise<T | null> =>
      run(null).catch((caught: unknown) => {
        const meaning = meaningAsked(caught);
        if (!meaning) throw caught;
        return new Promise<T | null>((resolve, reject) => {
          setAsked({
            meaning,
            sign: async (signature) => {
              let result: T;
              try {
                result = await run(signature);
              } catch (failed) {
                if (STAY_OPEN.has(errorCode(failed))) throw failed;
                setAsked(null);
                reject(failed);
                return;
              }
              setAsked(null);
              resolve(result);
            },
            cancel: () => {
              setAsked(null);
              resolve(null);
            },
          });
        });
      }),
    [],
  );
  const dialog = asked ? <SignatureDialog meaning={asked.meaning} onSign={asked.sign} onCancel={asked.cancel} /> : null;
  return { signed, dialog };
}
