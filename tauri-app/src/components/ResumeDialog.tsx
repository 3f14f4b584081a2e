// Interrupted inspections (app closed, battery died): resume, start over or discard, with the
// progress of each step (item) shown as its own bar.
import { useEffect, useRef, useState } from 'react';
import type { Schemas } from '../api/client';
import { useI18n } from '../i18n';
import { itemStateLabel, nextOpenItem, stepPercent } from '../lib/inspection';
import { may } from '../lib/permissions';
import { useApi, useApp } from '../state/app';
import { navigate } from '../state/route';
import { ErrorText } from './ErrorText';
import { ProgressBar } from './ProgressBar';
import { useSigned } from './SignatureDialog';

type Interrupted = Schemas['InterruptedPublic'];

export function ResumeDialog() {
  const { t, err, time } = useI18n();
  const api = useApi();
  const { resumeOffered, setResumeOffered, login } = useApp();
  const [found, setFound] = useState<Interrupted[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const dialog = useRef<HTMLDivElement>(null);
  // Restarting and discarding discard the old inspection: that needs the user's signature.
  const { signed, dialog: signature } = useSigned();

  useEffect(() => {
    if (resumeOffered || !login) return;
    let cancelled = false;
    api.get('/sessions/interrupted').then(
      (rows) => {
        if (cancelled) return;
        setFound(rows);
        setResumeOffered(true);
      },
      () => undefined,
    );
    return () => {
      cancelled = true;
    };
  }, [api, resumeOffered, setResumeOffered, login]);

  useEffect(() => {
    if (found.length) dialog.current?.focus();
  }, [found.length]);

  if (!found.length) return null;

  const act = async (row: Interrupted, what: 'resume' | 'restart' | 'discard') => {
    setBusy(true);
    setError(null);
    try {
      const params = { path: { session_id: row.id } };
      const session =
        what === 'resume'
          ? await api.post('/sessions/{session_id}/resume', params)
          : await signed((sig) => {
              const opts = { ...params, json: { signature: sig } };
              return what === 'restart'
                ? api.post('/sessions/{session_id}/restart', opts)
                : api.post('/sessions/{session_id}/discard', opts);
            });
      if (session === null) return; // not signed: nothing changed
      const rest = found.filter((f) => f.id !== row.id);
      setFound(rest);
      if (what !== 'discard') {
        setFound([]);
        const open = nextOpenItem(session.items, null);
        navigate({ name: 'session', sessionId: session.id, itemId: open ? open.item_id : null });
      }
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="overlay">
      {signature}
      <div
        className="dialog"
        role="dialog"
        aria-modal="true"
        aria-labelledby="resume-title"
        tabIndex={-1}
        ref={dialog}
        data-testid="resume-dialog"
      >
        <h2 id="resume-title">{t('resume.title')}</h2>
        <p>{t('resume.intro')}</p>
        <ErrorText message={error ? err(error) : null} />
        <ul className="resume__list">
          {found.map((row) => (
            <li key={row.id} className="card resume__item" data-testid="resume-item">
              <div className="resume__head">
                <strong>
                  {row.product_code} · {t('target.batch')} {row.batch_id}
                </strong>
                <span className="muted small">
                  {row.username ?? '—'} · {t('resume.lastActivity', { time: time(row.last_activity) })}
                </span>
              </div>
              <ProgressBar value={row.progress} label={t('resume.progress', { pct: Math.round(row.progress) })} testId="resume-progress" />
              <ol className="resume__steps">
                {row.items.map((item) => (
                  <li key={item.item_code}>
                    <ProgressBar
                      small
                      value={stepPercent(item.status)}
                      label={item.item_code}
                      detail={itemStateLabel(t, item.status)}
                      testId="resume-step"
                    />
                  </li>
                ))}
              </ol>
              <div className="actions">
                {may(login?.user, 'work', row.username) ? (
                  <button type="button" className="btn btn--primary" disabled={busy} onClick={() => void act(row, 'resume')} data-testid="resume">
                    {t('resume.resume')}
                  </button>
                ) : null}
                {may(login?.user, 'discard', row.username) ? (
                  <>
                    <button type="button" className="btn" disabled={busy} onClick={() => void act(row, 'restart')} data-testid="restart">
                      {t('resume.restart')}
                    </button>
                    <button type="button" className="btn btn--danger" disabled={busy} onClick={() => void act(row, 'discard')} data-testid="discard">
                      {t('resume.discard')}
                    </button>
                  </>
                ) : null}
              </div>
            </li>
          ))}
        </ul>
        <div className="actions">
          <button type="button" className="btn" onClick={() => setFound([])} data-testid="resume-later">
            {t('resume.later')}
          </button>
        </div>
      </div>
    </div>
  );
}
