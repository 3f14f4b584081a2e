// An inspection's audit trail in the history detail: who did what, when and why, and the
// signature given with it. A signature belongs to the entry that wrote the record it signs:
// the same record, and the entry's digest of the row equal to the one the signature was bound
// to (both are `schema.formats.audit.row_digest` of the row as written).
import { useEffect, useState } from 'react';
import type { Schemas } from '../api/client';
import { useI18n } from '../i18n';
import { isMessageKey } from '../i18n/translate';
import { auditChange } from '../lib/words';
import { useApi } from '../state/app';
import { ErrorText } from './ErrorText';
import { useSignatureWords } from './SignatureDialog';
import { useSignatureLine } from './Signatures';

type Entry = Schemas['AuditEntryPublic'];
type Signature = Schemas['SignaturePublic'];

function changed(entry: Entry, say: (field: string, change: { before?: unknown; after?: unknown }) => string): string {
  if (!entry.changes) return '';
  return Object.entries(entry.changes)
    .map(([field, change]) => say(field, (change ?? {}) as { before?: unknown; after?: unknown }))
    .join(' · ');
}

export function AuditTrail({ sessionId, signatures, version }: { sessionId: string; signatures: Signature[]; version: number }) {
  const { t, lang, err, dateTime } = useI18n();
  const say = (field: string, change: { before?: unknown; after?: unknown }) => auditChange(t, lang, dateTime, field, change);
  const api = useApi();
  const words = useSignatureWords();
  const line = useSignatureLine();
  const [entries, setEntries] = useState<Entry[] | null>(null);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    let cancelled = false;
    api.get('/sessions/{session_id}/audit', { path: { session_id: sessionId } }).then(
      (found) => {
        if (cancelled) return;
        setEntries(found);
        setError(null);
      },
      (caught: unknown) => {
        if (!cancelled) setError(caught);
      },
    );
    return () => {
      cancelled = true;
    };
  }, [api, sessionId, version]);

  const word = (prefix: string, code: string) => {
    const key = `${prefix}.${code}`;
    return isMessageKey(key) ? t(key) : code;
  };
  const signedBy = (entry: Entry) =>
    signatures.find((s) => s.record_id === entry.entity_id && entry.row_digest !== null && s.record_digest === entry.row_digest);

  return (
    <section className="card" aria-labelledby="audit-title" data-testid="audit-trail">
      <h2 id="audit-title">{t('audit.title')}</h2>
      <ErrorText message={error ? err(error) : null} />
      {entries === null ? null : entries.length === 0 ? (
        <p className="hint">{t('audit.empty')}</p>
      ) : (
        <div className="table-wrap">
          <table className="table table--rows">
            <thead>
              <tr>
                <th scope="col">{t('audit.when')}</th>
                <th scope="col">{t('audit.who')}</th>
                <th scope="col">{t('audit.what')}</th>
                <th scope="col">{t('audit.why')}</th>
                <th scope="col">{t('audit.signature')}</th>
              </tr>
            </thead>
            <tbody>
              {entries.map((entry) => {
                const signature = signedBy(entry);
                return (
                  <tr key={entry.seq} data-testid="audit-entry" data-action={entry.action} data-entity={entry.entity}>
                    <td data-label={t('audit.when')}>{dateTime(entry.at)}</td>
                    <td data-label={t('audit.who')}>
                      {entry.display_name ?? entry.username ?? '—'}
                      {entry.role ? ` (${words.role(entry.role)})` : ''}
                    </td>
                    <td data-label={t('audit.what')}>
                      {word('audit.entity', entry.entity)} {word('audit.action', entry.action)}
                      {entry.changes ? <span className="muted small"> {changed(entry, say)}</span> : null}
                    </td>
                    <td data-label={t('audit.why')}>{entry.reason ?? '—'}</td>
                    <td data-label={t('audit.signature')} data-testid="audit-signature">
                      {signature ? line(signature) : '—'}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
