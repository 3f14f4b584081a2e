// Scan: a focused text field for USB keyboard-wedge scanners (they type the code and Enter),
// the camera, or a photo of the label. The field holds the focus whenever this screen shows and
// no dialog is open, but asks for no on-screen keyboard (inputmode none) unless the inspector
// chooses to type a code: a scanner needs none, and a keyboard covering half a tablet does harm.
import { useEffect, useRef, useState, type ChangeEvent, type FormEvent } from 'react';
import { ApiError, checkPhotoSize, photoForm } from '../api/client';
import { CameraView, type FrameInfo } from '../components/CameraView';
import { ErrorText } from '../components/ErrorText';
import { ProgressBar } from '../components/ProgressBar';
import { InterruptedNotice } from '../components/ResumeDialog';
import { useI18n } from '../i18n';
import { useApi, useApp, type ScanResult } from '../state/app';
import { useAnyModal } from '../state/dialogs';
import { navigate } from '../state/route';

export function Scan() {
  const { t, err } = useI18n();
  const api = useApi();
  const { setScan } = useApp();
  const [code, setCode] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [camera, setCamera] = useState(false);
  const [typing, setTyping] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  const modal = useAnyModal();

  useEffect(() => {
    if (!camera && !busy && !modal) input.current?.focus({ preventScroll: true });
  }, [camera, busy, error, modal, typing]);

  // A scan that starts while a button has the focus (after a tap on one) still lands in the
  // field: a printable key outside any text field moves the focus there before it is typed.
  useEffect(() => {
    if (camera || modal) return;
    const onKey = (e: KeyboardEvent) => {
      if (e.key.length !== 1 || e.ctrlKey || e.metaKey || e.altKey) return;
      const el = e.target instanceof HTMLElement ? e.target : null;
      if (el && (el.isContentEditable || el.closest('input, textarea, select'))) return;
      input.current?.focus({ preventScroll: true });
    };
    document.addEventListener('keydown', onKey, true);
    return () => document.removeEventListener('keydown', onKey, true);
  }, [camera, modal]);

  const toggleTyping = () => {
    // The on-screen keyboard opens on focus: leave the field so the new input mode applies.
    input.current?.blur();
    setTyping((on) => !on);
  };

  const found = (scan: ScanResult) => {
    setScan(scan);
    navigate({ name: 'target' });
  };

  const lookUp = async (e: FormEvent) => {
    e.preventDefault();
    const text = code.trim();
    if (!text) {
      setError(new Error('empty'));
      return;
    }
    setBusy(true);
    setError(null);
    try {
      found(await api.post('/scan/text', { json: { text } }));
    } catch (caught) {
      setError(caught);
      // Ready for the next scan: a wedge scanner types into whatever is focused.
      setCode('');
    } finally {
      setBusy(false);
    }
  };

  const fromFile = async (e: ChangeEvent<HTMLInputElement>) => {
    const file = e.target.files?.[0];
    e.target.value = '';
    if (!file) return;
    setBusy(true);
    setError(null);
    try {
      checkPhotoSize(file);
      found(await api.post('/scan', { body: photoForm(file, 'label.jpg') }));
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };

  const fromFrame = async (frame: Blob, { stream, roi }: FrameInfo): Promise<boolean> => {
    try {
      const scan = await api.post('/scan', { body: photoForm(frame, 'frame.jpg'), query: { stream, roi } });
      setCamera(false);
      found(scan);
      return true;
    } catch (caught) {
      // Frames without a readable code are normal while the label comes into view, and so is a
      // damaged read the next frame has yet to confirm.
      if (caught instanceof ApiError && caught.code === 'qr_decode_failed') return false;
      setError(caught);
      return caught instanceof ApiError && caught.isNetwork ? false : (setCamera(false), true);
    }
  };

  const message = error instanceof Error && !(error instanceof ApiError) ? t('scan.empty') : error ? err(error) : null;

  return (
    <main className="screen" data-testid="scan-screen">
      <h1>{t('scan.title')}</h1>
      <InterruptedNotice />
      <form className="card scan__form" onSubmit={(e) => void lookUp(e)}>
        <label className="field" htmlFor="wedge">
          <span>{t('scan.wedgeLabel')}</span>
        </label>
        <div className="inline">
          <input
            id="wedge"
            ref={input}
            className="scan__input"
            autoComplete="off"
            autoCorrect="off"
            autoCapitalize="none"
            spellCheck={false}
            inputMode={typing ? 'text' : 'none'}
            value={code}
            onChange={(e) => setCode(e.target.value)}
            data-testid="wedge"
          />
          <button type="submit" className="btn btn--primary" disabled={busy} data-testid="lookup">
            {t('scan.lookup')}
          </button>
        </div>
        <button
          type="button"
          className="btn scan__type"
          aria-pressed={typing}
          aria-controls="wedge"
          onClick={toggleTyping}
          data-testid="scan-type"
        >
          {typing ? t('scan.typeCodeOff') : t('scan.typeCode')}
        </button>
        {busy ? <ProgressBar value={null} label={t('progress.scanning')} small /> : null}
        <ErrorText message={message} testId="scan-error" />
      </form>
      <div className="actions">
        <button
          type="button"
          className="btn"
          onClick={() => setCamera((c) => !c)}
          data-testid="scan-camera"
          aria-pressed={camera}
        >
          {camera ? t('scan.cameraStop') : t('scan.camera')}
        </button>
        <label className="btn file-btn">
          {t('scan.file')}
          <input
            type="file"
            accept="image/*"
            className="visually-hidden"
            onChange={(e) => void fromFile(e)}
            data-testid="scan-file"
          />
        </label>
      </div>
      {camera ? <CameraView mode="scan" onFrame={fromFrame} onClose={() => setCamera(false)} /> : null}
    </main>
  );
}
