// The AI's judgment of the item: verdict, confidence, measurements, the running job's progress,
// and the button that queues a new analysis.
import { useId } from 'react';
import { ProgressBar } from '../../components/ProgressBar';
import { useI18n } from '../../i18n';
import { confidencePercent, label, type AIResult, type SessionItem } from '../../lib/inspection';
import { measurementRows } from '../../lib/measurements';
import { measurementName, reasonText, stageLabel, type JudgmentReason } from '../../lib/words';
import type { Analysis } from '../../state/useAnalysis';
import './AiCard.css';

interface Props {
  item: SessionItem;
  ai: AIResult | null;
  hasPhoto: boolean;
  analysis: Analysis;
  closed: boolean;
}

export function AiCard({ item, ai, hasPhoto, analysis, closed }: Props) {
  const { t, lang } = useI18n();
  const { job, progress } = analysis;
  const heading = useId();
  const running = analysis.running || item.status === 'ai_running';
  const reason = reasonText(t, lang, (ai?.detailed_results as { judgment?: JudgmentReason } | null | undefined)?.judgment);
  const details = (ai?.detailed_results ?? null) as { units?: Record<string, unknown>; overlay?: { drawn?: unknown } } | null;
  const drawn = Array.isArray(details?.overlay?.drawn) ? (details.overlay.drawn as unknown[]).map(String) : [];
  const provider = ai?.provenance?.execution_provider ?? null;
  const measurements = measurementRows(lang, t, ai?.measurements as Record<string, unknown> | null | undefined, details?.units, drawn);
  return (
    <section className="card item__ai" data-testid="ai-card">
      <h3 id={heading}>{t('item.aiResult')}</h3>
      {ai ? (
        // A region a keyboard can reach: on a phone the card has a set height and the result
        // scrolls inside it.
        <div className="ai" role="region" aria-labelledby={heading} tabIndex={0}>
          <div className="ai__verdict">
            <span className={`result result--big result--${ai.overall_result}`} data-testid="ai-result">
              {label(t, 'result', ai.overall_result)}
            </span>
            <span data-testid="ai-confidence">{t('item.confidence', { pct: confidencePercent(ai.confidence) })}</span>
          </div>
          {reason ? (
            <p className="muted small" data-testid="ai-reason">
              {reason}
            </p>
          ) : null}
          {measurements.length ? (
            <table className="kv" data-testid="ai-measurements">
              <caption>{t('item.measurements')}</caption>
              <tbody>
                {measurements.map((row) => (
                  <tr key={row.key} data-kind={row.kind}>
                    <th scope="row">{measurementName(t, row.key)}</th>
                    <td>{row.value}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : null}
          <p className="muted small">
            {t('item.processingTime', { s: ai.processing_time.toFixed(2) })}
            {ai.pipeline_version ? ` · ${t('item.pipeline', { version: ai.pipeline_version })}` : ''}
            {provider ? (
              // The provider ONNX Runtime actually ran the models on (not the setting): ONNX
              // Runtime's own name, which is not translated.
              <>
                {` · ${t('item.ranOn')} `}
                <span className="ai__provider" lang="en" translate="no" data-testid="ai-provider">
                  {provider}
                </span>
              </>
            ) : null}
          </p>
        </div>
      ) : (
        <p className="muted">{t('item.noAiResult')}</p>
      )}
      {running ? (
        <ProgressBar
          value={progress ? progress.percentage : (job?.percentage ?? null)}
          label={t('item.analysing')}
          detail={stageLabel(t, progress?.stage ?? job?.stage)}
          testId="ai-progress"
        />
      ) : null}
      {analysis.message ? (
        <p className="notice" role="alert" data-testid="ai-message">
          {analysis.message}
        </p>
      ) : null}
      {!closed ? (
        // Disabled for want of a photo, the button says so itself: a greyed "run" explains nothing.
        <button
          type="button"
          className="btn"
          disabled={!hasPhoto || running}
          onClick={() => void analysis.analyse()}
          data-testid="analyse"
          data-needs-photo={hasPhoto ? undefined : 'true'}
        >
          {hasPhoto ? t('item.analyse') : t('item.analyseNeedsPhoto')}
        </button>
      ) : null}
    </section>
  );
}
