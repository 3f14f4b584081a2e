// One item: photo (camera or file), the AI's judgment with its overlay, and the person's verdict.
import { useEffect, useRef, useState, type ChangeEvent } from 'react';
import { ApiError, checkPhotoSize, photoForm } from '../api/client';
import { CameraView } from '../components/CameraView';
import { ErrorText } from '../components/ErrorText';
import { PhotoView, type Overlay } from '../components/PhotoView';
import { ProgressBar } from '../components/ProgressBar';
import { useI18n } from '../i18n';
import { AI_UNAVAILABLE_CODES } from '../i18n/errors';
import {
  criteriaText,
  DEFECT_TYPES,
  formatMeasurement,
  label,
  latest,
  nextOpenItem,
  SEVERITIES,
  VERDICTS,
  type Session,
  type SessionItem,
} from '../lib/inspection';
import { useApi, useApp } from '../state/app';
import { navigate } from '../state/route';

interface Props {
  session: Session;
  item: SessionItem;
  closed: boolean;
  onChanged: (session: Session) => void;
  refresh: () => Promise<Session | null>;
}

interface Job {
  id: string;
  status: string;
  stage?: string | null;
  percentage?: number | null;
  error_message?: string | null;
}

type Verdict = (typeof VERDICTS)[number];
const JOB_ENDS = new Set(['completed', 'failed', 'cancelled']);

export function ItemPanel({ session, item, closed, onChanged, refresh }: Props) {
  const { t, err, time } = useI18n();
  const api = useApi();
  const { events } = useApp();
  const opened = useRef(Date.now());
  const [uploading, setUploading] = useState(false);
  const [camera, setCamera] = useState(false);
  const [photoError, setPhotoError] = useState<unknown>(null);
  const [job, setJob] = useState<Job | null>(null);
  const [aiMessage, setAiMessage] = useState<string | null>(null);
  const ai = latest(item.ai_results);
  const verdictDone = latest(item.verifications);
  const [result, setResult] = useState<Verdict | null>(
    ai?.overall_result === 'OK' || ai?.overall_result === 'NG' ? ai.overall_result : null,
  );
  const [defects, setDefects] = useState<string[]>([]);
  const [severity, setSeverity] = useState<string | null>(null);
  const [notes, setNotes] = useState('');
  const [saving, setSaving] = useState(false);
  const [verifyError, setVerifyError] = useState<string | null>(null);
  const image = latest(item.images);

  // When an AI result arrives for an item with no choice made yet, offer its judgment.
  useEffect(() => {
    if (result === null && (ai?.overall_result === 'OK' || ai?.overall_result === 'NG')) setResult(ai.overall_result);
    // Only when a new result arrives.
    // (result is deliberately not a dependency: a person's choice is not overwritten.)
  }, [ai?.id]);

  // Follow a running AI job: progress comes over the event stream, the outcome from /jobs.
  useEffect(() => {
    if (!job || JOB_ENDS.has(job.status)) return;
    let stopped = false;
    const started = Date.now();
    const timer = setInterval(async () => {
      if (stopped) return;
      try {
        const now = await api.untyped<Job>('get', `/jobs/${encodeURIComponent(job.id)}`);
        if (stopped) return;
        setJob(now);
        if (JOB_ENDS.has(now.status)) {
          if (now.status === 'failed') setAiMessage(t('item.aiFailed', { message: now.error_message ?? '' }));
          await refresh();
        }
      } catch {
        // The connection banner covers an unreachable sidecar; keep polling.
      }
      if (Date.now() - started > 120_000) setJob(null);
    }, 1000);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [job?.id, job?.status, api, refresh, t]);

  const upload = async (photo: Blob) => {
    setPhotoError(null);
    setAiMessage(null);
    try {
      checkPhotoSize(photo);
      setUploading(true);
      await api.post('/sessions/{session_id}/items/{item_id}/images', {
        path: { session_id: session.id, item_id: item.item_id },
        body: photoForm(photo),
      });
      await refresh();
    } catch (caught) {
      setPhotoError(caught);
    } finally {
      setUploading(false);
    }
  };

  const fromFile = (e: ChangeEvent<HTMLInputElement>) => {
    const file = e.target.files?.[0];
    e.target.value = '';
    if (file) void upload(file);
  };

  const analyse = async () => {
    setAiMessage(null);
    try {
      const queued = await api.untyped<Job>(
        'post',
        `/sessions/${encodeURIComponent(session.id)}/items/${encodeURIComponent(item.item_id)}/analyse`,
        { json: {} },
      );
      setJob(queued);
      void refresh();
    } catch (caught) {
      if (caught instanceof ApiError && AI_UNAVAILABLE_CODES.has(caught.code)) setAiMessage(t('item.aiUnavailable'));
      else setAiMessage(err(caught));
    }
  };

  const toggleDefect = (code: string) => {
    setVerifyError(null);
    setDefects((old) => (old.includes(code) ? old.filter((d) => d !== code) : [...old, code]));
  };

  const verify = async () => {
    if (!result) {
      setVerifyError(t('item.chooseResult'));
      return;
    }
    if (result === 'NG' && (defects.length === 0 || !severity)) {
      setVerifyError(t('item.ngNeeds'));
      return;
    }
    setSaving(true);
    setVerifyError(null);
    try {
      await api.post('/sessions/{session_id}/items/{item_id}/verification', {
        path: { session_id: session.id, item_id: item.item_id },
        json: {
          final_result: result,
          defect_types: defects.length ? defects : null,
          severity: (severity as 'minor' | 'major' | 'critical' | null) ?? null,
          notes: notes.trim() || null,
          verification_time: Math.min(86400, (Date.now() - opened.current) / 1000),
          ai_result_id: ai?.id ?? null,
        },
      });
      const updated = await refresh();
      const next = updated ? nextOpenItem(updated.items, item.item_id) : null;
      navigate({ name: 'session', sessionId: session.id, itemId: next ? next.item_id : null });
    } catch (caught) {
      setVerifyError(err(caught));
    } finally {
      setSaving(false);
    }
  };

  const act = async (what: 'skip' | 'retry') => {
    setVerifyError(null);
    try {
      const path =
        what === 'skip' ? '/sessions/{session_id}/items/{item_id}/skip' : '/sessions/{session_id}/items/{item_id}/retry';
      const updated = await api.post(path, { path: { session_id: session.id, item_id: item.item_id } });
      onChanged(updated);
      if (what === 'skip') {
        const next = nextOpenItem(updated.items, item.item_id);
        navigate({ name: 'session', sessionId: session.id, itemId: next ? next.item_id : null });
      }
    } catch (caught) {
      setVerifyError(err(caught));
    }
  };

  const progress = job ? events.progress[`job:${job.id}`] : undefined;
  const running = (job && !JOB_ENDS.has(job.status)) || item.status === 'ai_running';
  const details = (ai?.detailed_results ?? null) as (Overlay & { judgment?: { reason?: unknown } }) | null;
  const overlay = ai && image && (!ai.image_id || ai.image_id === image.id) ? details : null;
  const measurements = Object.entries(ai?.measurements ?? {});

  return (
    <article className="item" data-testid="item-panel" data-code={item.item_code} data-status={item.status}>
      <header className="item__head">
        <h2>
          {item.order_sequence}. {item.item_name} <span className="muted">{item.item_code}</span>
        </h2>
        <div className="step__tags">
          <span className="tag">{label(t, 'itype', item.inspection_type)}</span>
          <span className={`tag${item.required ? ' tag--strong' : ''}`}>
            {item.required ? t('item.required') : t('item.optional')}
          </span>
          <span className={`chip chip--${item.status}`} data-testid="item-status">
            {label(t, 'istatus', item.status)}
          </span>
        </div>
        <p className="muted small">
          {t('item.criteria')}: {criteriaText(item.criteria, t)}
        </p>
      </header>

      <div className="item__grid">
        <section className="card item__photo">
          <h3>{t('item.photo')}</h3>
          {image ? (
            <PhotoView
              imageId={image.id}
              alt={t('item.photoAlt', { item: item.item_name })}
              overlay={overlay}
              overlayLabel={t('item.overlay')}
            />
          ) : (
            <p className="photo__none">{t('item.noPhoto')}</p>
          )}
          {uploading ? <ProgressBar value={null} label={t('progress.uploading')} small testId="upload-progress" /> : null}
          <ErrorText message={photoError ? err(photoError) : null} testId="photo-error" />
          {!closed ? (
            <div className="actions">
              <button type="button" className="btn" onClick={() => setCamera((c) => !c)} disabled={uploading}>
                {t('item.takePhoto')}
              </button>
              <label className={`btn file-btn${uploading ? ' is-disabled' : ''}`}>
                {t('item.uploadPhoto')}
                <input
                  type="file"
                  accept="image/*"
                  className="visually-hidden"
                  disabled={uploading}
                  onChange={fromFile}
                  data-testid="photo-file"
                />
              </label>
            </div>
          ) : null}
          {camera ? (
            <CameraView
              mode="capture"
              onCapture={(photo) => {
                setCamera(false);
                void upload(photo);
              }}
              onClose={() => setCamera(false)}
            />
          ) : null}
        </section>

        {item.ai_enabled ? (
          <section className="card item__ai" data-testid="ai-card">
            <h3>{t('item.aiResult')}</h3>
            {ai ? (
              <div className="ai">
                <div className="ai__verdict">
                  <span className={`result result--big result--${ai.overall_result}`} data-testid="ai-result">
                    {label(t, 'result', ai.overall_result)}
                  </span>
                  <span data-testid="ai-confidence">{t('item.confidence', { pct: Math.round(ai.confidence * 100) })}</span>
                </div>
                {typeof details?.judgment?.reason === 'string' ? <p className="muted small">{details.judgment.reason}</p> : null}
                {measurements.length ? (
                  <table className="kv" data-testid="ai-measurements">
                    <caption>{t('item.measurements')}</caption>
                    <tbody>
                      {measurements.map(([key, value]) => (
                        <tr key={key}>
                          <th scope="row">{key}</th>
                          <td>{formatMeasurement(value)}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                ) : null}
                <p className="muted small">
                  {t('item.processingTime', { s: ai.processing_time.toFixed(2) })}
                  {ai.pipeline_id ? ` · ${t('item.pipeline', { name: ai.pipeline_id, version: ai.pipeline_version ?? '?' })}` : ''}
                </p>
              </div>
            ) : (
              <p className="muted">{t('item.noAiResult')}</p>
            )}
            {running ? (
              <ProgressBar
                value={progress ? progress.percentage : (job?.percentage ?? null)}
                label={t('item.analysing')}
                detail={progress?.stage ?? job?.stage ?? undefined}
                testId="ai-progress"
              />
            ) : null}
            {aiMessage ? (
              <p className="notice" role="alert" data-testid="ai-message">
                {aiMessage}
              </p>
            ) : null}
            {!closed ? (
              <button
                type="button"
                className="btn"
                disabled={!image || Boolean(running)}
                onClick={() => void analyse()}
                data-testid="analyse"
              >
                {t('item.analyse')}
              </button>
            ) : null}
          </section>
        ) : null}

        <section className="card item__verify" data-testid="verify-card">
          <h3>{t('item.verification')}</h3>
          {verdictDone ? (
            <p className="verified" data-testid="verified-by">
              <span className={`result result--${verdictDone.final_result}`}>{label(t, 'result', verdictDone.final_result)}</span>{' '}
              {t('item.verifiedBy', {
                user: verdictDone.username ?? '?',
                time: time(verdictDone.created_at),
                result: label(t, 'result', verdictDone.final_result),
              })}
              {verdictDone.overrode_ai ? <span className="tag tag--warn">{t('item.overrode')}</span> : null}
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
                      setVerifyError(null);
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
                    {DEFECT_TYPES.map((code) => (
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
                          setVerifyError(null);
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
              <ErrorText message={verifyError} testId="verify-error" />
              <div className="actions">
                <button
                  type="button"
                  className="btn btn--primary"
                  disabled={saving}
                  onClick={() => void verify()}
                  data-testid="submit-verdict"
                >
                  {saving ? t('item.saving') : t('item.submit')}
                </button>
                {!item.required && item.status === 'pending' ? (
                  <button type="button" className="btn" onClick={() => void act('skip')} data-testid="skip">
                    {t('item.skip')}
                  </button>
                ) : null}
                {item.status === 'failed' || item.status === 'skipped' ? (
                  <button type="button" className="btn" onClick={() => void act('retry')} data-testid="retry">
                    {t('item.retry')}
                  </button>
                ) : null}
              </div>
            </>
          ) : null}
        </section>
      </div>
    </article>
  );
}
