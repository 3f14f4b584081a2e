// The camera's calibration (Settings, supervisors only): the scale measurements use now, and a
// calibration photo of a checkerboard or a ring gauge of known size to measure it again.
import { useEffect, useState, type ChangeEvent } from 'react';
import { type Schemas } from '../api/client';
import { ErrorText } from './ErrorText';
import { useI18n } from '../i18n';
import { useApi } from '../state/app';

type Method = 'checkerboard' | 'ring';
type Taken = Schemas['CalibrationTaken'];

const CAMERA = 'default';

/** mm per pixel to four significant figures: enough to tell 0.05 from 0.0501. */
export function scaleText(mmPerPx: number): string {
  return mmPerPx.toPrecision(4);
}

export function Calibration() {
  const { t, err } = useI18n();
  const api = useApi();
  // undefined: not known (the list could not be read, and the error says so) — never shown as
  // "not calibrated", which would send a supervisor to calibrate a camera that is.
  const [current, setCurrent] = useState<number | null | undefined>(undefined);
  const [method, setMethod] = useState<Method>('checkerboard');
  const [sizeMm, setSizeMm] = useState('5');
  const [columns, setColumns] = useState('7');
  const [rows, setRows] = useState('5');
  const [busy, setBusy] = useState(false);
  const [taken, setTaken] = useState<Taken | null>(null);
  const [error, setError] = useState<unknown>(null);

  const load = () =>
    api.get('/calibrations').then(
      (answer) => setCurrent(answer.current[CAMERA] ?? null),
      (caught: unknown) => {
        setCurrent(undefined);
        setError(caught);
      },
    );
  useEffect(() => {
    void load();
  }, [api]);

  const take = async (e: ChangeEvent<HTMLInputElement>) => {
    const photo = e.target.files?.[0];
    e.target.value = '';
    if (!photo) return;
    setBusy(true);
    setError(null);
    setTaken(null);
    try {
      const query = {
        camera_id: CAMERA,
        method,
        size_mm: Number(sizeMm),
        ...(method === 'checkerboard' ? { columns: Number(columns), rows: Number(rows) } : {}),
      };
      setTaken(await api.post('/calibrations', { query, body: photo }));
      await load();
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="card" data-testid="calibration">
      <h2>{t('calibration.title')}</h2>
      {current === undefined ? null : (
        <p data-testid="calibration-current">
          {current === null ? t('calibration.none') : t('calibration.current', { scale: scaleText(current) })}
        </p>
      )}
      <label className="field">
        <span>{t('calibration.method')}</span>
        <select value={method} onChange={(e) => setMethod(e.target.value as Method)} data-testid="calibration-method">
          <option value="checkerboard">{t('calibration.checkerboard')}</option>
          <option value="ring">{t('calibration.ring')}</option>
        </select>
      </label>
      <label className="field">
        <span>{method === 'checkerboard' ? t('calibration.squareMm') : t('calibration.ringMm')}</span>
        <input type="number" inputMode="decimal" min="0" step="any" value={sizeMm} onChange={(e) => setSizeMm(e.target.value)} data-testid="calibration-size" />
      </label>
      {method === 'checkerboard' ? (
        <>
          <label className="field">
            <span>{t('calibration.columns')}</span>
            <input type="number" inputMode="numeric" min="2" max="64" value={columns} onChange={(e) => setColumns(e.target.value)} data-testid="calibration-columns" />
          </label>
          <label className="field">
            <span>{t('calibration.rows')}</span>
            <input type="number" inputMode="numeric" min="2" max="64" value={rows} onChange={(e) => setRows(e.target.value)} data-testid="calibration-rows" />
          </label>
        </>
      ) : null}
      <label className={`btn btn--primary${busy ? ' btn--busy' : ''}`}>
        {busy ? t('calibration.measuring') : t('calibration.take')}
        <input type="file" accept="image/*" capture="environment" hidden disabled={busy} onChange={(e) => void take(e)} data-testid="calibration-photo" />
      </label>
      {taken ? (
        <p className="notice" role="status" data-testid="calibration-taken">
          {t('calibration.taken', { scale: scaleText(taken.mm_per_px) })}
        </p>
      ) : null}
      <ErrorText message={error ? err(error) : null} testId="calibration-error" />
    </section>
  );
}
