// The signatures given in an inspection, as the history detail shows them:
// "署名: 鈴木 (監督者) 2026-11-30 10:12 — 上書き承認". Names, roles and meanings are the sidecar's
// record of the signer as they were when they signed.
import type { Schemas } from '../api/client';
import { useI18n } from '../i18n';
import { useSignatureWords } from './SignatureDialog';

type Signature = Schemas['SignaturePublic'];

/** One signature in words, in the user's language. */
export function useSignatureLine() {
  const { t, dateTime } = useI18n();
  const words = useSignatureWords();
  return (s: Signature) =>
    t('sig.line', {
      name: s.full_name ?? s.username,
      role: words.role(s.role),
      time: dateTime(s.signed_at),
      meaning: words.meaning(s.meaning),
    });
}

export function Signatures({ signatures }: { signatures: Signature[] }) {
  const { t } = useI18n();
  const line = useSignatureLine();
  if (!signatures.length) return null;
  return (
    <section className="card" aria-labelledby="signatures-title" data-testid="signatures">
      <h2 id="signatures-title">{t('sig.list')}</h2>
      <ul className="signatures">
        {signatures.map((s) => (
          <li key={s.id} data-testid="signature-line" data-meaning={s.meaning} data-record={s.record_id}>
            {line(s)}
          </li>
        ))}
      </ul>
    </section>
  );
}
