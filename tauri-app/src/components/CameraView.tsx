// The tablet's camera through getUserMedia. In 'scan' mode frames go to `onFrame` until it
// reports success; in 'capture' mode the inspector presses the shutter.
import { useEffect, useRef, useState } from 'react';
import { useI18n } from '../i18n';
import { ErrorText } from './ErrorText';

interface Props {
  mode: 'scan' | 'capture';
  /** Scan mode: called with a frame; resolve true when the code was read (the camera stops). */
  onFrame?: (frame: Blob) => Promise<boolean>;
  onCapture?: (photo: Blob) => void;
  onClose: () => void;
}

const SCAN_INTERVAL_MS = 700;
const SCAN_MAX_EDGE = 1280;

function grab(video: HTMLVideoElement, maxEdge: number | null, quality: number): Promise<Blob | null> {
  const vw = video.videoWidth;
  const vh = video.videoHeight;
  if (!vw || !vh) return Promise.resolve(null);
  const scale = maxEdge ? Math.min(1, maxEdge / Math.max(vw, vh)) : 1;
  const canvas = document.createElement('canvas');
  canvas.width = Math.round(vw * scale);
  canvas.height = Math.round(vh * scale);
  const ctx = canvas.getContext('2d');
  if (!ctx) return Promise.resolve(null);
  ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', quality));
}

export function CameraView({ mode, onFrame, onCapture, onClose }: Props) {
  const { t } = useI18n();
  const video = useRef<HTMLVideoElement>(null);
  const [error, setError] = useState<string | null>(null);
  const [ready, setReady] = useState(false);
  const frameHandler = useRef(onFrame);
  frameHandler.current = onFrame;

  useEffect(() => {
    let stream: MediaStream | null = null;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (!navigator.mediaDevices?.getUserMedia) {
      setError(t('camera.unsupported'));
      return;
    }
    navigator.mediaDevices
      .getUserMedia({
        audio: false,
        video: { facingMode: 'environment', width: { ideal: 1920 }, height: { ideal: 1080 } },
      })
      .then(async (s) => {
        if (stopped) {
          s.getTracks().forEach((track) => track.stop());
          return;
        }
        stream = s;
        const el = video.current;
        if (!el) return;
        el.srcObject = s;
        await el.play().catch(() => undefined);
        setReady(true);
        if (mode !== 'scan') return;
        const tick = async () => {
          if (stopped || !video.current) return;
          const frame = await grab(video.current, SCAN_MAX_EDGE, 0.85);
          let done = false;
          if (frame && frameHandler.current) done = await frameHandler.current(frame).catch(() => false);
          if (!done && !stopped) timer = setTimeout(tick, SCAN_INTERVAL_MS);
        };
        timer = setTimeout(tick, 300);
      })
      .catch((err: unknown) => {
        const name = err instanceof DOMException ? err.name : '';
        if (name === 'NotAllowedError' || name === 'SecurityError') setError(t('camera.denied'));
        else if (name === 'NotFoundError' || name === 'OverconstrainedError') setError(t('camera.notFound'));
        else setError(t('camera.failed', { error: err instanceof Error ? err.message : String(err) }));
      });
    return () => {
      stopped = true;
      clearTimeout(timer);
      stream?.getTracks().forEach((track) => track.stop());
    };
    // The camera opens once per mount; the language of an error is fixed when it happens.
  }, [mode]);

  const shoot = async () => {
    if (!video.current) return;
    const photo = await grab(video.current, null, 0.92);
    if (photo) onCapture?.(photo);
  };

  return (
    <div className="camera" data-testid="camera">
      {error ? <ErrorText message={error} testId="camera-error" /> : null}
      <div className="camera__frame">
        <video ref={video} playsInline muted className="camera__video" />
        {mode === 'scan' ? <div className="camera__target" aria-hidden="true" /> : null}
      </div>
      {mode === 'scan' && ready ? <p className="hint">{t('scan.cameraHint')}</p> : null}
      {!ready && !error ? <p className="hint">{t('camera.starting')}</p> : null}
      <div className="actions">
        {mode === 'capture' ? (
          <button type="button" className="btn btn--primary" disabled={!ready} onClick={() => void shoot()}>
            {t('camera.capture')}
          </button>
        ) : null}
        <button type="button" className="btn" onClick={onClose}>
          {t('camera.close')}
        </button>
      </div>
    </div>
  );
}
