// The AI's judgment of the item: verdict, confidence, measurements, the running job's progress,
// and the button that queues a new analysis.
import { ProgressBar } from '../../components/ProgressBar';
import { useI18n } from '../../i18n';
import { confidencePercent, formatMeasurement, label, type AIResult, type SessionItem } from '../../lib/inspection';
import type { Analysis } from '../../state/useAnalysis';

interface Props {
  item: SessionItem;
  ai: AIResult | null;
  hasPhoto: boolean;
  analysis: Analysis;
  closed: boolean;
}

export function AiCard({ item, ai, hasPhoto, analysis, closed }: Props) {
  const { t } = useI18n();
  const { job, progress } = analysis;
  const running = analysis.running || item.status === 'ai_running';
  const reason = (ai?.detailed_results as { judgment?: { reason?: unknown } } | null | undefined)?.judgment?.reason;
  const measurements = Object.entries(ai?.measurements ?? {});
  return (
    <section className="card item__ai" data-testid="ai-card">
      <h3>{t('item.aiResult')}</h3>
      {ai ? (
        <div className="ai">
          <div className="ai__verdict">
            <span className={`result result--big result--${ai.overall_result}`} data-testid="ai-result">
              {label(t, 'result', ai.overall_result)}
            </span>
            <span data-testid="ai-confidence">{t('item.confidence', { pct: confidencePercent(ai.confidence) })}</span>
          </div>
          {typeof reason === 'string' ? <p className="muted small">{reason}</p> : null}
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
      {analysis.message ? (
        <p className="notice" role="alert" data-testid="ai-message">
          {analysis.message}
        </p>
      ) : null}
      {!closed ? (
        <button type="button" className="btn" disabled={!hasPhoto || running} onClick={() => void analysis.analyse()} data-testid="analyse">
          {t('item.analyse')}
        </button>
      ) : null}
    </section>
  );
}
