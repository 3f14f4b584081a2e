// The person's verdict on the item: OK / NG / PENDING, with what the sidecar says that result
// needs (defect types and a severity for an NG), notes; skip and retry when the sidecar offers them.
import { useEffect, useRef, useState } from 'react';
import { ErrorText } from '../../components/ErrorText';
import { useSigned } from '../../components/SignatureDialog';
import { useI18n } from '../../i18n';
import {
  label,
  latest,
  nextOpenItem,
  SEVERITIES,
  VERDICTS,
  verdictMissing,
  type AIResult,
  type Session,
  type SessionItem,
} from '../../lib/inspection';
import { useApi } from '../../state/app';
import { navigate } from '../../state/route';

type Verdict = (typeof VERDICTS)[number];
type Severity = (typeof SEVERITIES)[number];

interface Props {
  session: Session;
  item: SessionItem;
  ai: AIResult | null;
  closed: boolean;
  onChanged: (session: Session) => void;
  refresh: () => Promise<Session | null>;
}

function suggested(ai: AIResult | null): Verdict | null {
  return ai?.overall_result === 'OK' || ai?.overall_result === 'NG' ? ai.overall_result : null;
}

export function VerdictCard({ session, item, ai, closed, onChanged, refresh }: Props) {
  const { t, err, time } = useI18n();
  const api = useApi();
  // Overriding the AI or releasing an NG item needs the user's signature (the sidecar says when).
  const { signed, dialog } = useSigned();
  const opened = useRef(Date.now());
  const done = latest(item.verifications);
  const [result, setResult] = useState<Verdict | null>(() => suggested(ai));
  const [defects, setDefects] = useState<string[]>([]);
  const [severity, setSeverity] = useState<Severity | null>(null);
  const [notes, setNotes] = useState('');
  const [saving, setSaving] = useState(false);
  const [error, setError] = useState<string | null>(null);

  // When an AI result arrives and no choice is made yet, offer its judgment; a person's choice
  // is never overwritten. The check reads the state as it is when the update applies, not as
  // it was at the render that saw the result: an effect runs after paint, and a tap on a verdict
  // can land in between (the AI's NG then replaced the inspector's OK).
  useEffect(() => {
    setResult((chosen) => chosen ?? suggested(ai));
  }, [ai?.id]);

  const goToNext = (updated: Session | null) => {
    const next = updated ? nextOpenItem(updated.items, item.item_id) : null;
    navigate({ name: 'session', sessionId: session.id, itemId: next ? next.item_id : null });
  };

  const toggleDefect = (code: string) => {
    setError(null);
    setDefects((old) => (old.includes(code) ? old.filter((d) => d !== code) : [...old, code]));
  };

  const submit = async (chosen: Verdict | null = result) => {
    if (!chosen) {
      setError(t('item.chooseResult'));
      return;
    }
    if (verdictMissing(item.verdict_needs, chosen, { defect_types: defects, severity }).length > 0) {
      setError(t('item.ngNeeds'));
      return;
    }
    setSaving(true);
    setError(null);
    try {
      const saved = await signed((signature) =>
        api.post('/sessions/{session_id}/items/{item_id}/verification', {
          path: { session_id: session.id, item_id: item.item_id },
          json: {
            final_result: chosen,
            defect_types: defects.length ? defects : null,
            severity,
            notes: notes.trim() || null,
            verification_time: Math.min(86400, (Date.now() - opened.current) / 1000),
            ai_result_id: ai?.id ?? null,
            signature,
          },
        }),
      );
      if (saved === null) return; // not signed: nothing was recorded
      goToNext(await refresh());
    } catch (caught) {
      setError(err(caught));
    } finally {
      setSaving(false);
    }
  };

  const act = async (what: 'skip' | 'retry') => {
    setError(null);
    try {
      const path = what === 'skip' ? '/sessions/{session_id}/items/{item_id}/skip' : '/sessions/{session_id}/items/{item_id}/retry';
      const updated = await api.post(path, { path: { session_id: session.id, item_id: item.item_id } });
      onChanged(updated);
      if (what === 'skip') goToNext(updated);
    } catch (caught) {
      setError(err(caught));
    }
  };

  return (
    <section className="card item__verify" data-testid="verify-card">
      {dialog}
      <h3>{t('item.verification')}</h3>
      {/* Not while saving: the screen moves on to the next item, and the line would push the
          buttons down for a moment on the way. */}
      {done && !saving ? (
        <p className="verified" data-testid="verified-by">
          <span className={`result result--${done.final_result}`}>{label(t, 'result', done.final_result)}</span>{' '}
          {t('item.verifiedBy', {
            user: done.display_name ?? done.username ?? '?',
            time: time(done.created_at),
            result: label(t, 'result', done.final_result),
          })}
          {done.overrode_ai ? <span className="tag tag--warn">{t('item.overrode')}</span> : null}
        </p>
      ) : null}
      {!closed ? (
        <>
          <div className="segmented segmented--verdict" role="group" aria-label={t('item.verification')}>
            {VERDICTS.map((v) => (
              <button
                key={v}
                type="button"
                className={`segmented__btn verdict--${v}${result === v ? ' is-active' : ''}`}
                aria-pressed={result === v}
                onClick={() => {
                  setError(null);
                  setResult(v);
                }}
                data-testid={`verdict-${v}`}
              >
                {label(t, 'result', v)}
              </button>
            ))}
          </div>
          {result && result !== 'OK' ? (
            <>
              <fieldset className="choices">
                <legend>{t('item.defects')}</legend>
                {item.defect_types.map((code) => (
                  <button
                    key={code}
                    type="button"
                    className={`choice${defects.includes(code) ? ' is-active' : ''}`}
                    aria-pressed={defects.includes(code)}
                    onClick={() => toggleDefect(code)}
                    data-testid={`defect-${code}`}
                  >
                    {label(t, 'defect', code)}
                  </button>
                ))}
              </fieldset>
              <fieldset className="choices">
                <legend>{t('item.severity')}</legend>
                {SEVERITIES.map((code) => (
                  <button
                    key={code}
                    type="button"
                    className={`choice${severity === code ? ' is-active' : ''}`}
                    aria-pressed={severity === code}
                    onClick={() => {
                      setError(null);
                      setSeverity(severity === code ? null : code);
                    }}
                    data-testid={`severity-${code}`}
                  >
                    {label(t, 'severity', code)}
                  </button>
                ))}
              </fieldset>
            </>
          ) : null}
          <label className="field">
            <span>{t('item.notes')}</span>
            <textarea value={notes} onChange={(e) => setNotes(e.target.value)} maxLength={2000} rows={2} data-testid="notes" />
          </label>
          <ErrorText message={error} testId="verify-error" />
          <div className="actions">
            {/* An all-OK item is one tap from its photo to the next item: with the AI's OK (or
                none chosen on an item judged by eye) the one button records OK and moves on. The
                person's verdict does not wait for the AI: a stuck job never holds an item. */}
            {result === null ? (
              <button
                type="button"
                className="btn btn--primary btn--next"
                disabled={saving}
                onClick={() => void submit('OK')}
                data-testid="ok-next"
              >
                {saving ? t('item.saving') : t('item.okNext')}
              </button>
            ) : (
              <button
                type="button"
                className="btn btn--primary btn--next"
                disabled={saving}
                onClick={() => void submit()}
                data-testid="submit-verdict"
              >
                {saving ? t('item.saving') : result === 'OK' ? t('item.okNext') : t('item.submit')}
              </button>
            )}
            {item.can_skip ? (
              <button type="button" className="btn" onClick={() => void act('skip')} data-testid="skip">
                {t('item.skip')}
              </button>
            ) : null}
            {item.can_retry ? (
              <button type="button" className="btn" onClick={() => void act('retry')} data-testid="retry">
                {t('item.retry')}
              </button>
            ) : null}
          </div>
        </>
      ) : null}
    </section>
  );
}
