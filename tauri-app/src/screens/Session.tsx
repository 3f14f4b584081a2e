// One inspection: its items in order (with status), the selected item, complete / cancel.
import { useEffect, useState } from 'react';
import { ErrorText } from '../components/ErrorText';
import { ProgressBar } from '../components/ProgressBar';
import { useSigned } from '../components/SignatureDialog';
import { useI18n } from '../i18n';
import { doneCount, itemStateLabel, label, sessionStateLabel } from '../lib/inspection';
import { may } from '../lib/permissions';
import { useApi, useApp } from '../state/app';
import { navigate } from '../state/route';
import { useSession } from '../state/useSession';
import { ItemPanel } from './ItemPanel';
import { localName } from '../lib/words';

export function SessionScreen({ sessionId, itemId }: { sessionId: string; itemId: string | null }) {
  const { t, err, lang } = useI18n();
  const api = useApi();
  const { login } = useApp();
  const { session, setSession, error, refresh } = useSession(sessionId);
  const [busy, setBusy] = useState(false);
  const [actionError, setActionError] = useState<unknown>(null);
  const [confirmCancel, setConfirmCancel] = useState(false);
  // Completing with NG items and discarding need the user's signature (the sidecar says when).
  const { signed, dialog } = useSigned();

  useEffect(() => {
    if (session?.status === 'completed') navigate({ name: 'summary', sessionId, from: 'session' });
  }, [session?.status, sessionId]);

  if (!session) {
    return (
      <main className="screen" data-testid="session-screen">
        {error ? <ErrorText message={err(error)} /> : <p className="hint">{t('common.loading')}</p>}
      </main>
    );
  }

  const closed = session.closed;
  // A supervisor reads another's inspection but records nothing in it (the login's grants say so).
  const mayWork = may(login?.user, 'work', session.username);
  const mayDiscard = may(login?.user, 'discard', session.username);
  const done = doneCount(session.items);
  const item = itemId ? session.items.find((i) => i.item_id === itemId) ?? null : null;

  const act = async (what: 'complete' | 'discard') => {
    setBusy(true);
    setActionError(null);
    try {
      const updated = await signed((signature) => {
        const opts = { path: { session_id: sessionId }, json: { signature } };
        return what === 'complete'
          ? api.post('/sessions/{session_id}/complete', opts)
          : api.post('/sessions/{session_id}/discard', opts);
      });
      if (updated === null) return; // not signed: nothing changed
      setSession(updated);
      if (what === 'complete') navigate({ name: 'summary', sessionId, from: 'session' });
      else navigate({ name: 'scan' });
    } catch (caught) {
      setActionError(caught);
    } finally {
      setBusy(false);
      setConfirmCancel(false);
    }
  };

  return (
    <main className={`screen session${item ? ' session--item' : ''}`} data-testid="session-screen">
      {dialog}
      <header className="card session__head">
        <div className="session__title">
          <h1>
            {session.product_code} {localName(lang, session.product_name, session.product_name_en)}
          </h1>
          <span className="muted">
            {t('target.batch')} {session.batch_id}
            {session.serial ? ` · ${t('target.serial')} ${session.serial}` : ''}
          </span>
        </div>
        <span className={`chip chip--${session.status}`} data-testid="session-status">
          {sessionStateLabel(t, session.status)}
        </span>
        <ProgressBar
          value={(100 * done) / Math.max(1, session.items.length)}
          label={t('session.progress', { done, total: session.items.length })}
          testId="session-progress"
        />
      </header>
      {closed ? <p className="notice">{t('session.closed', { status: sessionStateLabel(t, session.status) })}</p> : null}
      <div className="session__body">
        <nav className="session__list" aria-label={t('session.items')}>
          <ol className="items" data-testid="session-items">
            {session.items.map((i) => (
              <li key={i.item_id}>
                <button
                  type="button"
                  className={`item-row${i.item_id === itemId ? ' is-current' : ''}`}
                  aria-current={i.item_id === itemId ? 'step' : undefined}
                  onClick={() => navigate({ name: 'session', sessionId, itemId: i.item_id })}
                  data-testid="item-row"
                  data-code={i.item_code}
                  data-status={i.status}
                >
                  <span className="item-row__order">{i.order_sequence}</span>
                  <span className="item-row__name">
                    {localName(lang, i.item_name, i.item_name_en)}
                    <span className="muted small">
                      {i.item_code} · {i.required ? t('item.required') : t('item.optional')}
                    </span>
                  </span>
                  <span className={`chip chip--${i.status}`}>{itemStateLabel(t, i.status)}</span>
                  {i.result ? <span className={`result result--${i.result}`}>{label(t, 'result', i.result)}</span> : null}
                </button>
              </li>
            ))}
          </ol>
          {!closed ? (
            <div className="session__actions">
              {!session.can_complete ? (
                <p className="hint" data-testid="complete-hint">
                  {t('session.completeHint')}
                  {session.missing_items.length ? ` (${session.missing_items.join(', ')})` : ''}
                </p>
              ) : null}
              <ErrorText message={actionError ? err(actionError) : null} />
              {mayWork ? (
                <button
                  type="button"
                  className="btn btn--primary btn--wide"
                  disabled={busy || !session.can_complete}
                  onClick={() => void act('complete')}
                  data-testid="complete"
                >
                  {t('session.complete')}
                </button>
              ) : null}
              {!mayDiscard ? null : confirmCancel ? (
                <div className="confirm" role="group" aria-label={t('session.cancelConfirm')}>
                  <p>{t('session.cancelConfirm')}</p>
                  <div className="actions">
                    <button type="button" className="btn btn--danger" disabled={busy} onClick={() => void act('discard')} data-testid="cancel-yes">
                      {t('common.yes')}
                    </button>
                    <button type="button" className="btn" onClick={() => setConfirmCancel(false)}>
                      {t('common.no')}
                    </button>
                  </div>
                </div>
              ) : (
                <button type="button" className="btn btn--wide" onClick={() => setConfirmCancel(true)} data-testid="cancel">
                  {t('session.cancel')}
                </button>
              )}
            </div>
          ) : null}
        </nav>
        {item ? (
          <section className="session__item">
            <button
              type="button"
              className="btn back-to-list"
              onClick={() => navigate({ name: 'session', sessionId, itemId: null })}
              data-testid="back-to-list"
            >
              ← {t('session.backToList')}
            </button>
            <ItemPanel key={item.item_id} session={session} item={item} closed={closed || !mayWork} onChanged={setSession} refresh={refresh} />
          </section>
        ) : null}
      </div>
    </main>
  );
}
