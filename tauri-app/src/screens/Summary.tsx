// The completed inspection (or any from history): overall result and every item's outcome.
import { AuditTrail } from '../components/AuditTrail';
import { ErrorText } from '../components/ErrorText';
import { Rejudge } from '../components/Rejudge';
import { Signatures } from '../components/Signatures';
import { useI18n } from '../i18n';
import { confidencePercent, itemStateLabel, label, latest, sessionStateLabel } from '../lib/inspection';
import { navigate } from '../state/route';
import { useSession } from '../state/useSession';
import { localName } from '../lib/words';

export function Summary({ sessionId, from }: { sessionId: string; from: 'session' | 'history' }) {
  const { t, err, dateTime, lang } = useI18n();
  const { session, error, refresh } = useSession(sessionId);
  if (!session) {
    return (
      <main className="screen" data-testid="summary-screen">
        <h1>{t('summary.title')}</h1>
        {error ? <ErrorText message={err(error)} /> : <p className="hint">{t('common.loading')}</p>}
      </main>
    );
  }
  return (
    <main className="screen" data-testid="summary-screen">
      <h1>{t('summary.title')}</h1>
      <section className="card summary__head">
        <div className="summary__result">
          <span className="muted">{t('summary.result')}</span>
          <span className={`result result--huge result--${session.result ?? 'none'}`} data-testid="summary-result">
            {session.result ? label(t, 'result', session.result) : sessionStateLabel(t, session.status)}
          </span>
        </div>
        <dl className="facts">
          <div>
            <dt>{t('target.product')}</dt>
            <dd>
              {session.product_code} {localName(lang, session.product_name, session.product_name_en)}
            </dd>
          </div>
          <div>
            <dt>{t('target.batch')}</dt>
            <dd data-testid="summary-batch">{session.batch_id}</dd>
          </div>
          {session.serial ? (
            <div>
              <dt>{t('target.serial')}</dt>
              <dd>{session.serial}</dd>
            </div>
          ) : null}
          <div>
            <dt>{t('summary.inspector')}</dt>
            <dd data-testid="summary-inspector">{session.display_name ?? session.username ?? '—'}</dd>
          </div>
          <div>
            <dt>{t('summary.status')}</dt>
            <dd>{sessionStateLabel(t, session.status)}</dd>
          </div>
          <div>
            <dt>{t('summary.started')}</dt>
            <dd>{dateTime(session.started_at)}</dd>
          </div>
          <div>
            <dt>{t('summary.completed')}</dt>
            <dd>{dateTime(session.completed_at)}</dd>
          </div>
        </dl>
      </section>
      <div className="table-wrap">
        <table className="table" data-testid="summary-items">
          <thead>
            <tr>
              <th scope="col">#</th>
              <th scope="col">{t('summary.item')}</th>
              <th scope="col">{t('summary.ai')}</th>
              <th scope="col">{t('summary.final')}</th>
              <th scope="col">{t('summary.defects')}</th>
              <th scope="col">{t('summary.notes')}</th>
            </tr>
          </thead>
          <tbody>
            {session.items.map((item) => {
              const ai = latest(item.ai_results);
              const v = latest(item.verifications);
              return (
                <tr key={item.item_id} data-code={item.item_code}>
                  <td data-label="#">{item.order_sequence}</td>
                  <td data-label={t('summary.item')}>
                    {localName(lang, item.item_name, item.item_name_en)} <span className="muted small">{item.item_code}</span>
                  </td>
                  <td data-label={t('summary.ai')}>
                    {ai ? `${label(t, 'result', ai.overall_result)} (${confidencePercent(ai.confidence)})` : '—'}
                  </td>
                  <td data-label={t('summary.final')}>
                    {item.status === 'skipped' ? (
                      itemStateLabel(t, 'skipped')
                    ) : (
                      <span className={`result result--${item.result ?? 'none'}`}>{label(t, 'result', item.result)}</span>
                    )}
                    <Rejudge session={session} item={item} onChanged={() => void refresh()} />
                  </td>
                  <td data-label={t('summary.defects')}>
                    {v?.defect_types?.length
                      ? `${v.defect_types.map((d) => label(t, 'defect', d)).join(', ')}${v.severity ? ` (${label(t, 'severity', v.severity)})` : ''}`
                      : '—'}
                  </td>
                  <td data-label={t('summary.notes')}>{v?.notes ?? '—'}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      <Signatures signatures={session.signatures ?? []} />
      <AuditTrail sessionId={session.id} signatures={session.signatures ?? []} version={session.version} />
      <div className="actions">
        {from === 'session' ? (
          <button type="button" className="btn btn--primary" onClick={() => navigate({ name: 'scan' })} data-testid="next-inspection">
            {t('summary.next')}
          </button>
        ) : null}
        <button type="button" className="btn" onClick={() => navigate({ name: 'history' })} data-testid="to-history">
          {from === 'session' ? t('summary.history') : t('summary.back')}
        </button>
      </div>
    </main>
  );
}
