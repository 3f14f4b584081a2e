// Re-judging an item of a completed inspection: the supervisor's `override` (POST …/rejudge).
// Offered only where the login's grants allow it on this inspection; the new verdict is a new
// verification beside the first, and the sidecar asks for a signature where the act needs one
// (the same dialog as a first verdict's).
import { useState } from 'react';
import type { Schemas } from '../api/client';
import { useI18n } from '../i18n';
import { label, SEVERITIES } from '../lib/inspection';
import { may } from '../lib/permissions';
import { useApi, useApp } from '../state/app';
import { ErrorText } from './ErrorText';
import { useSigned } from './SignatureDialog';

type Session = Schemas['SessionPublic'];
type Item = Session['items'][number];
type Severity = (typeof SEVERITIES)[number];

export function Rejudge({ session, item, onChanged }: { session: Session; item: Item; onChanged: () => void }) {
  const { t, err } = useI18n();
  const api = useApi();
  const { login } = useApp();
  const { signed, dialog } = useSigned();
  const [open, setOpen] = useState(false);
  const [result, setResult] = useState<'OK' | 'NG' | null>(null);
  const [defects, setDefects] = useState<string[]>([]);
  const [severity, setSeverity] = useState<Severity | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  if (session.status !== 'completed' || item.status !== 'verified' || !may(login?.user, 'override', session.username)) {
    return null;
  }
  const ready = result === 'OK' || (result === 'NG' && defects.length > 0 && severity !== null);

  const submit = async () => {
    if (!ready) return;
    setBusy(true);
    setError(null);
    try {
      const saved = await signed((signature) =>
        api.post('/sessions/{session_id}/items/{item_id}/rejudge', {
          path: { session_id: session.id, item_id: item.item_id },
          json: {
            final_result: result,
            defect_types: result === 'NG' ? defects : null,
            severity: result === 'NG' ? severity : null,
            verification_time: 0,
            signature,
          },
        }),
      );
      if (saved === null) return; // not signed: nothing was recorded
      setOpen(false);
      setResult(null);
      onChanged();
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };

  if (!open) {
    return (
      <button type="button" className="btn" onClick={() => setOpen(true)} data-testid="rejudge">
        {t('rejudge.open')}
      </button>
    );
  }
  return (
    <div className="rejudge" role="group" aria-label={t('rejudge.open')} data-testid="rejudge-form">
      <div className="choices">
        {(['OK', 'NG'] as const).map((code) => (
          <button
            key={code}
            type="button"
            className={`choice${result === code ? ' is-active' : ''}`}
            aria-pressed={result === code}
            onClick={() => setResult(code)}
            data-testid={`rejudge-${code}`}
          >
            {label(t, 'result', code)}
          </button>
        ))}
      </div>
      {result === 'NG' ? (
        <>
          <fieldset className="choices">
            <legend>{t('item.defects')}</legend>
            {/* The types this item's master offers: the sidecar refuses any other. */}
            {item.defect_types.map((code) => (
              <button
                key={code}
                type="button"
                className={`choice${defects.includes(code) ? ' is-active' : ''}`}
                aria-pressed={defects.includes(code)}
                onClick={() => setDefects((old) => (old.includes(code) ? old.filter((d) => d !== code) : [...old, code]))}
                data-testid={`rejudge-defect-${code}`}
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
                onClick={() => setSeverity(code)}
                data-testid={`rejudge-severity-${code}`}
              >
                {label(t, 'severity', code)}
              </button>
            ))}
          </fieldset>
        </>
      ) : null}
      <ErrorText message={error ? err(error) : null} />
      <div className="actions">
        <button type="button" className="btn btn--primary" disabled={busy || !ready} onClick={() => void submit()} data-testid="rejudge-save">
          {t('rejudge.save')}
        </button>
        <button type="button" className="btn" disabled={busy} onClick={() => setOpen(false)}>
          {t('common.no')}
        </button>
      </div>
      {dialog}
    </div>
  );
}
