// The tablet's camera through getUserMedia. In 'scan' mode frames go to `onFrame` until it
// reports success, each with the camera view's stream id (the sidecar lets the frames of one
// view agree before it answers a damaged read) and the aiming box in the frame's pixels; in
// 'capture' mode the inspector presses the shutter.
import { useEffect, useRef, useState } from 'react';
import { useI18n } from '../i18n';
import { aimRoi, grabScale, type Fit } from './aim';
import { ErrorText } from './ErrorText';

/** What `POST /scan` takes beside a camera frame. */
export interface FrameInfo {
  /** The same for every frame of one opening of the camera view. */
  stream: string;
  /** The aiming box `x,y,w,h` in the frame's pixels; null: search the whole frame. */
  roi: string | null;
}

interface Props {
  mode: 'scan' | 'capture';
  /** Scan mode: called with a frame; resolve true when the code was read (the camera stops). */
  onFrame?: (frame: Blob, info: FrameInfo) => Promise<boolean>;
  onCapture?: (photo: Blob) => void;
  onClose: () => void;
}

const SCAN_INTERVAL_MS = 700;
const SCAN_MAX_EDGE = 1280;

// Torch support is not in TypeScript's DOM types: Chrome on Android and WebView2 report it.
type TorchCapabilities = MediaTrackCapabilities & { torch?: boolean };
type TorchConstraints = MediaTrackConstraintSet & { torch?: boolean };

function grab(video: HTMLVideoElement, maxEdge: number | null, quality: number): Promise<Blob | null> {
  const vw = video.videoWidth;
  const vh = video.videoHeight;
  if (!vw || !vh) return Promise.resolve(null);
  const scale = grabScale(vw, vh, maxEdge);
  const canvas = document.createElement('canvas');
  canvas.width = Math.round(vw * scale);
  canvas.height = Math.round(vh * scale);
  const ctx = canvas.getContext('2d');
  if (!ctx) return Promise.resolve(null);
  ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', quality));
}

/** The aiming box as drawn now, in the pixels of a frame `grab` makes of `video`. */
function roiOf(video: HTMLVideoElement, target: HTMLElement | null): string | null {
  if (!target) return null;
  const fit = getComputedStyle(video).objectFit;
  return aimRoi(
    video.getBoundingClientRect(),
    target.getBoundingClientRect(),
    video.videoWidth,
    video.videoHeight,
    grabScale(video.videoWidth, video.videoHeight, SCAN_MAX_EDGE),
    fit === 'cover' || fit === 'fill' ? (fit as Fit) : 'contain',
  );
}

function newStreamId(): string {
  // A secure context has randomUUID; the fallback only has to differ between openings.
  return typeof crypto.randomUUID === 'function'
    ? crypto.randomUUID()
    : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
}

export function CameraView({ mode, onFrame, onCapture, onClose }: Props) {
  const { t } = useI18n();
  const video = useRef<HTMLVideoElement>(null);
  const target = useRef<HTMLDivElement>(null);
  const track = useRef<MediaStreamTrack | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [ready, setReady] = useState(false);
  const [torchable, setTorchable] = useState(false);
  const [torch, setTorch] = useState(false);
  const frameHandler = useRef(onFrame);
  frameHandler.current = onFrame;

  useEffect(() => {
    let stream: MediaStream | null = null;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const streamId = newStreamId();
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
          s.getTracks().forEach((t) => t.stop());
          return;
        }
        stream = s;
        const el = video.current;
        if (!el) return;
        el.srcObject = s;
        await el.play().catch(() => undefined);
        setReady(true);
        if (mode !== 'scan') return;
        const videoTrack = s.getVideoTracks()[0] ?? null;
        track.current = videoTrack;
        const capabilities = videoTrack?.getCapabilities?.() as TorchCapabilities | undefined;
        setTorchable(capabilities?.torch === true);
        const tick = async () => {
          if (stopped || !video.current) return;
          // Measured at the grab: the box moves with the layout (rotation, a resized window).
          const roi = roiOf(video.current, target.current);
          const frame = await grab(video.current, SCAN_MAX_EDGE, 0.85);
          let done = false;
          if (frame && frameHandler.current) {
            done = await frameHandler.current(frame, { stream: streamId, roi }).catch(() => false);
          }
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
      track.current = null;
      stream?.getTracks().forEach((t) => t.stop());
    };
    // The camera opens once per mount; the language of an error is fixed when it happens.
  }, [mode]);

  const toggleTorch = async () => {
    const on = !torch;
    const constraints: TorchConstraints = { torch: on };
    try {
      await track.current?.applyConstraints({ advanced: [constraints] });
      setTorch(on);
    } catch (err: unknown) {
      setError(t('camera.torchFailed', { error: err instanceof Error ? err.message : String(err) }));
    }
  };

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
        {mode === 'scan' ? <div ref={target} className="camera__target" aria-hidden="true" /> : null}
      </div>
      {mode === 'scan' && ready ? <p className="hint">{t('scan.cameraHint')}</p> : null}
      {!ready && !error ? <p className="hint">{t('camera.starting')}</p> : null}
      <div className="actions">
        {mode === 'capture' ? (
          <button type="button" className="btn btn--primary" disabled={!ready} onClick={() => void shoot()}>
            {t('camera.capture')}
          </button>
        ) : null}
        {mode === 'scan' && torchable ? (
          <button
            type="button"
            className={torch ? 'btn btn--primary' : 'btn'}
            aria-pressed={torch}
            onClick={() => void toggleTorch()}
            data-testid="camera-torch"
          >
            {t('camera.torch')}
          </button>
        ) : null}
        <button type="button" className="btn" onClick={onClose}>
          {t('camera.close')}
        </button>
      </div>
    </div>
  );
}
