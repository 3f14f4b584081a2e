// The records the server stored and did not apply, with its reason in words, and for a version
// conflict the tablet's and the server's versions side by side: a supervisor keeps one, and the
// choice travels to the server as a new change with its audit entry (POST
// /sync/refusals/{op_id}/resolve). Seeing them is `set_aside`; choosing is `override`.
import { useCallback, useEffect, useState } from 'react';
import type { Schemas } from '../api/client';
import { ErrorText } from './ErrorText';
import { useI18n, type Translate } from '../i18n';
import { isMessageKey } from '../i18n/translate';
import { recordKind } from '../lib/words';
import { itemStateLabel, label, sessionStateLabel } from '../lib/inspection';
import { useApi } from '../state/app';

type Refusal = Schemas['RefusalPublic'];
type SessionState = Schemas['HistoryRowPublic']['status'];

// The fields a supervisor chooses between, in the order shown (the sidecar's CHOICES).
const FIELDS = ['status', 'result', 'completed_at', 'attempts', 'version'] as const;

function reasonWords(t: Translate, code: string): string {
  const key = `refusal.reason.${code}`;
  return isMessageKey(key) ? t(key) : t('refusal.reason.other');
}

function shown(
  t: Translate,
  dateTime: (iso: string | null | undefined) => string,
  entity: string,
  field: string,
  value: unknown,
): string {
  if (value === null || value === undefined || value === '') return '—';
  if (field === 'status' && typeof value === 'string') {
    return entity === 'inspection_session'
      ? sessionStateLabel(t, value as SessionState)
      : itemStateLabel(t, value as Parameters<typeof itemStateLabel>[1]);
  }
  if (field === 'result' && typeof value === 'string') return label(t, 'result', value);
  if (field === 'completed_at' && typeof value === 'string') return dateTime(value);
  return String(value);
}

interface Props {
  /** Changes whenever a sync status arrives, so the list follows what the server said. */
  beat: number;
  mayResolve: boolean;
  onResolved: () => void;
  /** The operations listed here, so that the set-aside list beside it does not list them again. */
  onListed?: (opIds: ReadonlySet<string>) => void;
}

export function Refusals({ beat, mayResolve, onResolved, onListed }: Props) {
  const { t, err, dateTime } = useI18n();
  const api = useApi();
  const [rows, setRows] = useState<Refusal[] | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);

  const load = useCallback(
    () =>
      api.get('/sync/refusals').then(
        (found) => {
          setRows(found);
          onListed?.(new Set(found.map((row) => row.op_id)));
        },
        (caught: unknown) => setError(caught),
      ),
    [api, onListed],
  );
  useEffect(() => {
    void load();
  }, [load, beat]);

  const resolve = async (row: Refusal, keep: 'tablet' | 'server') => {
    setBusy(row.op_id);
    setError(null);
    try {
      await api.post('/sync/refusals/{op_id}/resolve', { path: { op_id: row.op_id }, json: { keep } });
      await load();
      onResolved();
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(null);
    }
  };

  if (!rows || !rows.length) return <ErrorText message={error ? err(error) : null} />;
  return (
    <>
      <h3>{t('refusal.title')}</h3>
      <ErrorText message={error ? err(error) : null} />
      <ul className="plain refusals" data-testid="refusals">
        {rows.map((row) => {
          const kindKey = `refusal.kind.${row.kind}`;
          const fields = FIELDS.filter((f) => row.tablet && f in row.tablet);
          return (
            <li key={row.op_id} data-testid="refusal" data-kind={row.kind} data-code={row.reason_code}>
              <p>
                <strong>{isMessageKey(kindKey) ? t(kindKey) : row.kind}</strong>{' '}
                {t('refusal.item', { what: recordKind(t, row.entity_type, row.operation), when: dateTime(row.refused_at) })}{' '}
                {reasonWords(t, row.reason_code)}
              </p>
              {row.tablet && row.server ? (
                <>
                  <div className="table-wrap">
                    <table className="table refusal__sides" data-testid="refusal-sides">
                      <thead>
                        <tr>
                          <th scope="col">{t('refusal.field')}</th>
                          <th scope="col">{t('refusal.tablet')}</th>
                          <th scope="col">{t('refusal.server')}</th>
                        </tr>
                      </thead>
                      <tbody>
                        {fields.map((field) => {
                          const mine = shown(t, dateTime, row.entity_type, field, row.tablet?.[field]);
                          const theirs = shown(t, dateTime, row.entity_type, field, row.server?.[field]);
                          return (
                            <tr key={field} data-field={field} className={mine === theirs ? undefined : 'refusal__differs'}>
                              <th scope="row">{t(`refusal.field.${field}`)}</th>
                              <td data-side="tablet">{mine}</td>
                              <td data-side="server">{theirs}</td>
                            </tr>
                          );
                        })}
                      </tbody>
                    </table>
                  </div>
                  {mayResolve ? (
                    <div className="actions">
                      <button
                        type="button"
                        className="btn"
                        disabled={busy !== null}
                        onClick={() => void resolve(row, 'tablet')}
                        data-testid="keep-tablet"
                      >
                        {t('refusal.keepTablet')}
                      </button>
                      <button
                        type="button"
                        className="btn"
                        disabled={busy !== null}
                        onClick={() => void resolve(row, 'server')}
                        data-testid="keep-server"
                      >
                        {t('refusal.keepServer')}
                      </button>
                    </div>
                  ) : null}
                </>
              ) : null}
            </li>
          );
        })}
      </ul>
    </>
  );
}
