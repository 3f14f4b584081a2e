// Past inspections on this tablet, searchable by product, batch, inspector, result and date.
import { useCallback, useEffect, useState, type FormEvent } from 'react';
import type { Schemas } from '../api/client';
import { ErrorText } from '../components/ErrorText';
import { useI18n } from '../i18n';
import { label, sessionStateLabel } from '../lib/inspection';
import { may } from '../lib/permissions';
import { useApi, useApp } from '../state/app';
import { navigate } from '../state/route';

type Filters = { product: string; batch: string; inspector: string; result: '' | 'OK' | 'NG' | 'PENDING'; from: string; to: string };
const EMPTY: Filters = { product: '', batch: '', inspector: '', result: '', from: '', to: '' };
const PAGE_SIZE = 20;

function dayStart(date: string): string | undefined {
  return date ? new Date(`${date}T00:00:00`).toISOString() : undefined;
}

function dayEnd(date: string): string | undefined {
  return date ? new Date(`${date}T23:59:59.999`).toISOString() : undefined;
}

export function History() {
  const { t, err, dateTime } = useI18n();
  const { login } = useApp();
  // Naming an inspector is for a login that reads everyone's inspections: an inspector's list
  // is their own, and the sidecar refuses any other name.
  const seesEveryones = may(login?.user, 'read', null);
  const api = useApi();
  const [form, setForm] = useState<Filters>(EMPTY);
  const [applied, setApplied] = useState<Filters>(EMPTY);
  const [page, setPage] = useState(1);
  const [data, setData] = useState<Schemas['HistoryPublic'] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(false);

  const load = useCallback(async () => {
    setLoading(true);
    try {
      const found = await api.get('/history', {
        query: {
          product: applied.product || undefined,
          batch: applied.batch || undefined,
          inspector: applied.inspector || undefined,
          result: applied.result || undefined,
          started_from: dayStart(applied.from),
          started_to: dayEnd(applied.to),
          page,
          page_size: PAGE_SIZE,
        },
      });
      setData(found);
      setError(null);
    } catch (caught) {
      setError(caught);
    } finally {
      setLoading(false);
    }
  }, [api, applied, page]);

  useEffect(() => {
    void load();
  }, [load]);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    setPage(1);
    setApplied(form);
  };
  const set = (key: keyof Filters) => (e: { target: { value: string } }) => setForm({ ...form, [key]: e.target.value });
  const pages = data ? Math.max(1, Math.ceil(data.total / data.page_size)) : 1;

  return (
    <main className="screen" data-testid="history-screen">
      <h1>{t('history.title')}</h1>
      <form className="card filters" onSubmit={submit} role="search">
        <label className="field">
          <span>{t('history.product')}</span>
          <input value={form.product} onChange={set('product')} data-testid="h-product" />
        </label>
        <label className="field">
          <span>{t('history.batch')}</span>
          <input value={form.batch} onChange={set('batch')} data-testid="h-batch" />
        </label>
        {seesEveryones ? (
          <label className="field">
            <span>{t('history.inspector')}</span>
            <input value={form.inspector} onChange={set('inspector')} data-testid="h-inspector" />
          </label>
        ) : null}
        <label className="field">
          <span>{t('history.result')}</span>
          <select value={form.result} onChange={set('result')} data-testid="h-result">
            <option value="">{t('history.any')}</option>
            <option value="OK">{t('result.OK')}</option>
            <option value="NG">{t('result.NG')}</option>
            <option value="PENDING">{t('result.PENDING')}</option>
          </select>
        </label>
        <label className="field">
          <span>{t('history.from')}</span>
          <input type="date" value={form.from} onChange={set('from')} />
        </label>
        <label className="field">
          <span>{t('history.to')}</span>
          <input type="date" value={form.to} onChange={set('to')} />
        </label>
        <div className="actions filters__actions">
          <button type="submit" className="btn btn--primary" data-testid="h-search">
            {t('history.search')}
          </button>
          <button
            type="button"
            className="btn"
            onClick={() => {
              setForm(EMPTY);
              setApplied(EMPTY);
              setPage(1);
            }}
          >
            {t('history.clear')}
          </button>
        </div>
      </form>
      <ErrorText message={error ? err(error) : null} />
      {data ? (
        <>
          <p className="muted" data-testid="h-total" aria-live="polite">
            {t('history.total', { total: data.total })}
          </p>
          {data.rows.length === 0 ? (
            <p className="notice">{t('history.empty')}</p>
          ) : (
            <div className="table-wrap">
              <table className="table table--rows" data-testid="h-rows">
                <thead>
                  <tr>
                    <th scope="col">{t('history.started')}</th>
                    <th scope="col">{t('history.product')}</th>
                    <th scope="col">{t('history.batch')}</th>
                    <th scope="col">{t('history.inspector')}</th>
                    <th scope="col">{t('history.status')}</th>
                    <th scope="col">{t('history.result')}</th>
                    <th scope="col">{t('history.sync')}</th>
                    <th scope="col">
                      <span className="visually-hidden">{t('history.open')}</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {data.rows.map((row) => (
                    <tr key={row.id} data-testid="h-row" data-batch={row.batch_id}>
                      <td data-label={t('history.started')}>{dateTime(row.started_at)}</td>
                      <td data-label={t('history.product')}>{row.product_code}</td>
                      <td data-label={t('history.batch')}>{row.batch_id}</td>
                      <td data-label={t('history.inspector')}>{row.display_name ?? row.username ?? '—'}</td>
                      <td data-label={t('history.status')}>{sessionStateLabel(t, row.status)}</td>
                      <td data-label={t('history.result')}>
                        <span className={`result result--${row.result ?? 'none'}`}>{label(t, 'result', row.result)}</span>
                      </td>
                      <td data-label={t('history.sync')}>
                        <span className={`sync-state sync-state--${row.sync_state}`} data-testid="h-sync" data-state={row.sync_state}>
                          {t(`sync.state.${row.sync_state}`)}
                        </span>
                      </td>
                      <td>
                        <button
                          type="button"
                          className="btn btn--small"
                          onClick={() => navigate({ name: 'summary', sessionId: row.id, from: 'history' })}
                          data-testid="h-open"
                        >
                          {t('history.open')}
                        </button>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          {pages > 1 ? (
            <div className="actions pager">
              <button type="button" className="btn" disabled={page <= 1 || loading} onClick={() => setPage(page - 1)}>
                {t('history.prev')}
              </button>
              <span>{t('history.page', { page, pages })}</span>
              <button type="button" className="btn" disabled={page >= pages || loading} onClick={() => setPage(page + 1)}>
                {t('history.next')}
              </button>
            </div>
          ) : null}
        </>
      ) : loading ? (
        <p className="hint">{t('common.loading')}</p>
      ) : null}
    </main>
  );
}
