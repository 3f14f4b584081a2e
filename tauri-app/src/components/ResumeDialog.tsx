// Interrupted inspections (app closed, battery died): resume, start over or discard, with how
// many items are done and each item's state. An inspector is offered their own work
// only; a role that may act on others' (the supervisor) sees everyone's, each labelled with whose
// it is. Discarding asks first, naming what would be lost, and then asks for the signature.
import { useEffect, useRef, useState } from 'react';
import type { Schemas } from '../api/client';
import { useI18n } from '../i18n';
import type { Translate } from '../i18n/translate';
import { doneCount, itemStateLabel, nextOpenItem, sharePercent } from '../lib/inspection';
import { may } from '../lib/permissions';
import { useApi, useApp } from '../state/app';
import { useModal } from '../state/dialogs';
import { navigate } from '../state/route';
import { ErrorText } from './ErrorText';
import { ProgressBar } from './ProgressBar';
import { useSigned } from './SignatureDialog';

type Interrupted = Schemas['InterruptedPublic'];
type User = Schemas['UserPublic'];

/** The rows this user may act on, their own first. */
export function offered(rows: Interrupted[], user: User | null | undefined): Interrupted[] {
  const usable = rows.filter((row) => may(user, 'work', row.username) || may(user, 'discard', row.username));
  const own = (row: Interrupted) => (user && row.username === user.username ? 0 : 1);
  return [...usable].sort((a, b) => own(a) - own(b));
}

/** Whose an interrupted inspection is, as the dialog and the target screen name it. */
export function ownerOf(
  t: Translate,
  row: Pick<Interrupted, 'username' | 'display_name'>,
  user: Pick<User, 'username'> | null | undefined,
): string {
  if (user && row.username === user.username) return t('resume.ownerYou');
  return row.display_name ? t('resume.owner', { name: row.display_name }) : t('resume.ownerNobody');
}

export function ResumeDialog() {
  const { t, err, time } = useI18n();
  const api = useApi();
  const { resumeOffered, setResumeOffered, login } = useApp();
  const [found, setFound] = useState<Interrupted[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [confirming, setConfirming] = useState<Interrupted | null>(null);
  const overlay = useRef<HTMLDivElement>(null);
  const dialog = useRef<HTMLDivElement>(null);
  const keep = useRef<HTMLButtonElement>(null);
  // Restarting and discarding discard the old inspection: that needs the user's signature.
  const { signed, dialog: signature } = useSigned();
  const user = login?.user;
  const shown = offered(found, user);
  useModal(shown.length > 0);

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
    if (shown.length) dialog.current?.focus();
  }, [shown.length]);

  useEffect(() => {
    if (confirming) keep.current?.focus();
  }, [confirming]);

  // While the dialog is up the screen behind it takes no taps, keys or scans: what it shows may be
  // the very inspection being discarded.
  useEffect(() => {
    const parent = overlay.current?.parentElement;
    if (!shown.length || !parent) return;
    const behind = Array.from(parent.children).filter((el): el is HTMLElement => el instanceof HTMLElement && el !== overlay.current);
    for (const el of behind) el.inert = true;
    return () => {
      for (const el of behind) el.inert = false;
    };
  }, [shown.length]);

  if (!shown.length) return null;

  const ownerLabel = (row: Interrupted) => ownerOf(t, row, user);

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
      if (what === 'discard') {
        // Whatever the screen behind showed may have been this inspection: start from the scan.
        navigate({ name: 'scan' });
      } else {
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

  const others = shown.some((row) => !user || row.username !== user.username);

  return (
    <div className="overlay" ref={overlay}>
      {signature}
      {confirming ? (
        <div className="overlay overlay--top">
          <div
            className="dialog dialog--narrow"
            role="alertdialog"
            aria-modal="true"
            aria-labelledby="discard-title"
            aria-describedby="discard-lost"
            data-testid="discard-confirm"
            onKeyDown={(e) => {
              if (e.key === 'Escape') setConfirming(null);
            }}
          >
            <h2 id="discard-title">{t('resume.confirmTitle')}</h2>
            <p data-testid="discard-what">
              {t('resume.confirmWhat', {
                product: confirming.product_code ?? '—',
                batch: confirming.batch_id,
                owner: ownerLabel(confirming),
              })}
            </p>
            <p className="error" id="discard-lost" data-testid="discard-lost">
              {t('resume.confirmLost', {
                done: confirming.items.filter((i) => i.done).length,
                total: confirming.items.length,
                photos: confirming.photos,
              })}
            </p>
            <div className="actions">
              <button type="button" className="btn btn--primary" ref={keep} onClick={() => setConfirming(null)} data-testid="discard-keep">
                {t('resume.confirmKeep')}
              </button>
              <button
                type="button"
                className="btn btn--danger"
                disabled={busy}
                onClick={() => {
                  const row = confirming;
                  setConfirming(null);
                  void act(row, 'discard');
                }}
                data-testid="discard-confirm-yes"
              >
                {t('resume.confirmDiscard')}
              </button>
            </div>
          </div>
        </div>
      ) : null}
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
        {others ? <p className="muted">{t('resume.othersIntro')}</p> : null}
        <ErrorText message={error ? err(error) : null} />
        <ul className="resume__list">
          {shown.map((row) => {
            const mine = !!user && row.username === user.username;
            return (
              <li key={row.id} className="card resume__item" data-testid="resume-item" data-owner={row.username ?? ''}>
                <div className="resume__head">
                  <strong>
                    {row.product_code} · {t('target.batch')} {row.batch_id}
                  </strong>
                  <span className={mine ? 'resume__owner' : 'resume__owner resume__owner--other'} data-testid="resume-owner">
                    {ownerLabel(row)}
                  </span>
                  <span className="muted small">{t('resume.lastActivity', { time: time(row.last_activity) })}</span>
                </div>
                <ProgressBar value={row.progress} label={t('resume.progress', { pct: sharePercent(doneCount(row.items), row.items.length) })} testId="resume-progress" />
                {/* Each item's state as the workflow names it: a state is a step, not a share of
                    the work, so it gets no bar of its own. */}
                <ol className="resume__steps">
                  {row.items.map((item) => (
                    <li
                      key={item.item_code}
                      className={item.done ? 'resume__step resume__step--done' : 'resume__step'}
                      data-testid="resume-step"
                      data-state={item.status}
                      data-done={item.done ? 'true' : 'false'}
                    >
                      <span className="resume__mark" aria-hidden="true">
                        {item.done ? '✓' : '○'}
                      </span>
                      <span className="resume__code">{item.item_code}</span>
                      <span className="progress__detail">{itemStateLabel(t, item.status)}</span>
                    </li>
                  ))}
                </ol>
                <div className="actions">
                  {may(user, 'work', row.username) ? (
                    <button type="button" className="btn btn--primary" disabled={busy} onClick={() => void act(row, 'resume')} data-testid="resume">
                      {t('resume.resume')}
                    </button>
                  ) : null}
                  {may(user, 'discard', row.username) ? (
                    <>
                      <button type="button" className="btn" disabled={busy} onClick={() => void act(row, 'restart')} data-testid="restart">
                        {t('resume.restart')}
                      </button>
                      <button type="button" className="btn btn--danger" disabled={busy} onClick={() => setConfirming(row)} data-testid="discard">
                        {t('resume.discard')}
                      </button>
                    </>
                  ) : null}
                </div>
              </li>
            );
          })}
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

/** On the scan screen, once the dialog was put off ("Later"): how many interrupted inspections
 * are still waiting, and a way back to them — otherwise only a new login would offer them again,
 * and a scan of the same unit would start a second inspection beside the first. */
export function InterruptedNotice() {
  const { t } = useI18n();
  const api = useApi();
  const { resumeOffered, setResumeOffered, login } = useApp();
  const [count, setCount] = useState(0);

  useEffect(() => {
    if (!resumeOffered || !login) return;
    let cancelled = false;
    api.get('/sessions/interrupted').then(
      (rows) => {
        if (!cancelled) setCount(offered(rows, login.user).length);
      },
      () => undefined, // the dialog itself says why when it is opened
    );
    return () => {
      cancelled = true;
    };
  }, [api, resumeOffered, login]);

  if (!count) return null;
  return (
    <div className="notice notice--action" data-testid="interrupted-notice">
      <span>{t('resume.waiting', { n: count })}</span>
      <button type="button" className="btn" onClick={() => setResumeOffered(false)} data-testid="interrupted-show">
        {t('resume.show')}
      </button>
    </div>
  );
}

