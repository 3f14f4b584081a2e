// The scanned unit's product and its items in order, before the inspection starts.
import { useEffect, useState } from 'react';
import type { Schemas } from '../api/client';
import { ErrorText } from '../components/ErrorText';
import { ownerOf } from '../components/ResumeDialog';
import { useI18n } from '../i18n';
import { criteriaLine, label, nextOpenItem } from '../lib/inspection';
import { may } from '../lib/permissions';
import { useApi, useApp } from '../state/app';
import { navigate } from '../state/route';
import { localName } from '../lib/words';

// The fields of a work-order label shown beside its order number, and their words.
const WORK_ORDER_FACTS: readonly (readonly [string, 'target.instruction' | 'target.machine' | 'target.productionDate'])[] = [
  ['instructionId', 'target.instruction'],
  ['machineNumber', 'target.machine'],
  ['productionDate', 'target.productionDate'],
];

export function Target() {
  const { t, err, lang, time } = useI18n();
  const api = useApi();
  const { scan, setScan, login } = useApp();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  // An inspection of this very unit left open (same product, lot and serial): offered before a
  // second one is started beside it.
  const [open, setOpen] = useState<Schemas['InterruptedPublic'] | null>(null);

  // Opened without a scan (a reload, a typed address): back to scanning.
  useEffect(() => {
    if (!scan) navigate({ name: 'scan' });
  }, [scan]);

  useEffect(() => {
    const serial = scan?.unit.serial;
    if (!scan || !serial) return; // a lot label names no one unit
    let cancelled = false;
    api.get('/sessions/interrupted').then(
      (rows) => {
        if (cancelled) return;
        const same = rows.find(
          (row) => row.serial === serial && row.product_code === scan.unit.product_code && row.batch_id === scan.unit.batch_id,
        );
        setOpen(same ?? null);
      },
      () => undefined, // only an offer: the scan itself stands
    );
    return () => {
      cancelled = true;
    };
  }, [api, scan]);

  if (!scan) return null;

  const resume = async (row: Schemas['InterruptedPublic']) => {
    setBusy(true);
    setError(null);
    try {
      const session = await api.post('/sessions/{session_id}/resume', { path: { session_id: row.id } });
      setScan(null);
      const next = nextOpenItem(session.items, null);
      navigate({ name: 'session', sessionId: session.id, itemId: next ? next.item_id : null });
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };

  const workOrder = scan.unit.format.startsWith('work_order');

  const start = async () => {
    setBusy(true);
    setError(null);
    try {
      const session = await api.post('/sessions', { json: { qr_code: scan.unit.raw } });
      setScan(null);
      const first = session.items[0];
      navigate({ name: 'session', sessionId: session.id, itemId: first ? first.item_id : null });
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="screen" data-testid="target-screen">
      <h1>{t('target.title')}</h1>
      <section className="card target__head">
        <dl className="facts">
          <div>
            <dt>{t('target.product')}</dt>
            <dd data-testid="target-product">
              {scan.target.product_code} {localName(lang, scan.target.product_name, scan.target.product_name_en)}
            </dd>
          </div>
          <div>
            <dt>{t('target.version')}</dt>
            <dd>{scan.target.version}</dd>
          </div>
          {/* A work-order label names its order, machine and production day; it has no lot. */}
          {workOrder ? (
            <>
              <div>
                <dt data-testid="target-batch-label">{t('target.workOrder')}</dt>
                <dd data-testid="target-batch">{scan.unit.batch_id}</dd>
              </div>
              {WORK_ORDER_FACTS.map(([field, key]) =>
                typeof scan.unit.fields[field] === 'string' || typeof scan.unit.fields[field] === 'number' ? (
                  <div key={field}>
                    <dt>{t(key)}</dt>
                    <dd data-testid={`target-${field}`}>{String(scan.unit.fields[field])}</dd>
                  </div>
                ) : null,
              )}
            </>
          ) : (
            <div>
              <dt data-testid="target-batch-label">{t('target.batch')}</dt>
              <dd data-testid="target-batch">{scan.unit.batch_id}</dd>
            </div>
          )}
          {scan.unit.serial ? (
            <div>
              <dt>{t('target.serial')}</dt>
              <dd>{scan.unit.serial}</dd>
            </div>
          ) : null}
        </dl>
      </section>
      {open ? (
        <div className="notice notice--action" data-testid="target-open">
          <span>
            {t('target.openAlready', {
              time: time(open.started_at),
              owner: ownerOf(t, open, login?.user),
            })}
          </span>
          {may(login?.user, 'work', open.username) ? (
            <button type="button" className="btn btn--primary" disabled={busy} onClick={() => void resume(open)} data-testid="target-resume">
              {t('resume.resume')}
            </button>
          ) : null}
        </div>
      ) : null}
      <h2>{t('target.items', { count: scan.items.length })}</h2>
      <ol className="steps" data-testid="target-items">
        {scan.items.map((item) => (
          <li key={item.id} className="step card" data-testid="target-item" data-code={item.item_code}>
            <span className="step__order">{item.order_sequence}</span>
            <span className="step__body">
              <strong>{localName(lang, item.item_name, item.item_name_en)}</strong> <span className="muted">{item.item_code}</span>
              <span className="step__tags">
                <span className="tag">{label(t, 'itype', item.inspection_type)}</span>
                <span className="tag">{item.ai_enabled ? t('item.ai') : t('item.byEye')}</span>
                <span className={`tag${item.required ? ' tag--strong' : ''}`}>
                  {item.required ? t('item.required') : t('item.optional')}
                </span>
              </span>
              <span className="muted small">{criteriaLine(item, lang)}</span>
            </span>
          </li>
        ))}
      </ol>
      <ErrorText message={error ? err(error) : null} />
      <div className="actions actions--sticky">
        <button type="button" className="btn" onClick={() => navigate({ name: 'scan' })}>
          {t('target.rescan')}
        </button>
        <button type="button" className="btn btn--primary" disabled={busy} onClick={() => void start()} data-testid="start">
          {t('target.start')}
        </button>
      </div>
    </main>
  );
}
