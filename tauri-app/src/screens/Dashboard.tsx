// Quality dashboard: OK / NG / pending per day, week or month, as a chart and a table.
import { useEffect, useState } from 'react';
import type { Schemas } from '../api/client';
import { BarChart } from '../components/BarChart';
import { ErrorText } from '../components/ErrorText';
import { useI18n } from '../i18n';
import { useApi } from '../state/app';
import { sharePercent } from '../lib/inspection';
import { localName } from '../lib/words';

type Period = 'day' | 'week' | 'month';
const PERIODS: Period[] = ['day', 'week', 'month'];

export function Dashboard() {
  const { t, err, lang } = useI18n();
  const api = useApi();
  const [period, setPeriod] = useState<Period>('day');
  const [product, setProduct] = useState('');
  const [targets, setTargets] = useState<Schemas['TargetMasterPublic'][]>([]);
  const [stats, setStats] = useState<Schemas['StatsPublic'] | null>(null);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    api.get('/masters/targets').then(setTargets, () => setTargets([]));
  }, [api]);

  useEffect(() => {
    let cancelled = false;
    // Days, weeks and months of this tablet's calendar: the sidecar stores UTC.
    const tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
    api.get('/stats', { query: { period, product: product || undefined, tz } }).then(
      (found) => {
        if (cancelled) return;
        setStats(found);
        setError(null);
      },
      (caught: unknown) => !cancelled && setError(caught),
    );
    return () => {
      cancelled = true;
    };
  }, [api, period, product]);

  const buckets = stats?.buckets ?? [];
  const total = buckets.reduce((n, b) => n + b.total, 0);
  const ok = buckets.reduce((n, b) => n + b.ok, 0);
  const judged = buckets.reduce((n, b) => n + b.ok + b.ng, 0);

  return (
    <main className="screen" data-testid="dashboard-screen">
      <h1>{t('dash.title')}</h1>
      <div className="card filters filters--inline">
        <div className="segmented" role="group" aria-label={t('dash.period')}>
          {PERIODS.map((p) => (
            <button
              key={p}
              type="button"
              className={`segmented__btn${period === p ? ' is-active' : ''}`}
              aria-pressed={period === p}
              onClick={() => setPeriod(p)}
              data-testid={`period-${p}`}
            >
              {t(`dash.${p}`)}
            </button>
          ))}
        </div>
        <label className="field">
          <span>{t('dash.product')}</span>
          <select value={product} onChange={(e) => setProduct(e.target.value)} data-testid="dash-product">
            <option value="">{t('dash.allProducts')}</option>
            {targets.map((target) => (
              <option key={target.id} value={target.product_code}>
                {target.product_code} {localName(lang, target.product_name, target.product_name_en)}
              </option>
            ))}
          </select>
        </label>
      </div>
      <ErrorText message={error ? err(error) : null} />
      <div className="kpis">
        <div className="card kpi">
          <span className="muted">{t('dash.total')}</span>
          <strong data-testid="kpi-total">{total}</strong>
        </div>
        <div className="card kpi">
          <span className="muted">{t('dash.passRate')}</span>
          <strong data-testid="kpi-pass">{sharePercent(ok, judged)}</strong>
        </div>
      </div>
      {stats && buckets.length === 0 ? <p className="notice">{t('dash.empty')}</p> : null}
      {buckets.length ? (
        <section className="card">
          <h2>{t('dash.chart')}</h2>
          <BarChart
            buckets={buckets}
            title={t('dash.chart')}
            labels={{ ok: t('result.OK'), ng: t('result.NG'), pending: t('result.PENDING') }}
            describe={(b) => t('dash.bucket', { period: b.period, ok: b.ok, ng: b.ng, pending: b.pending })}
          />
          <div className="table-wrap">
            <table className="table table--compact" data-testid="dash-table">
              <thead>
                <tr>
                  <th scope="col">{t(`dash.${period}`)}</th>
                  <th scope="col">{t('result.OK')}</th>
                  <th scope="col">{t('result.NG')}</th>
                  <th scope="col">{t('result.PENDING')}</th>
                  <th scope="col">{t('dash.total')}</th>
                </tr>
              </thead>
              <tbody>
                {buckets.map((b) => (
                  <tr key={b.period} data-testid="dash-row" data-period={b.period}>
                    <td>{b.period}</td>
                    <td>{b.ok}</td>
                    <td>{b.ng}</td>
                    <td>{b.pending}</td>
                    <td>{b.total}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </section>
      ) : null}
    </main>
  );
}
