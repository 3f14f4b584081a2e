// A stored photo (fetched with the API token: an <img src> cannot carry it) with the AI's
// overlay on top: boxes [[x1, y1, x2, y2, score, label], ...] and/or a heat map PNG.
import { useEffect, useState } from 'react';
import { useApp } from '../state/app';

export type Box = [number, number, number, number, number?, string?];

export interface Overlay {
  boxes?: unknown;
  heatmap?: unknown;
}

export function parseBoxes(raw: unknown): Box[] {
  if (!Array.isArray(raw)) return [];
  const boxes: Box[] = [];
  for (const entry of raw) {
    if (!Array.isArray(entry) || entry.length < 4) continue;
    const [x1, y1, x2, y2, score, label] = entry as unknown[];
    if ([x1, y1, x2, y2].every((v) => typeof v === 'number' && Number.isFinite(v))) {
      boxes.push([
        x1 as number,
        y1 as number,
        x2 as number,
        y2 as number,
        typeof score === 'number' ? score : undefined,
        label === undefined || label === null ? undefined : String(label),
      ]);
    }
  }
  return boxes;
}

export function heatmapSrc(raw: unknown): string | null {
  if (typeof raw !== 'string' || !raw) return null;
  return raw.startsWith('data:') ? raw : `data:image/png;base64,${raw}`;
}

interface Props {
  imageId: string;
  alt: string;
  overlay: Overlay | null;
  overlayLabel: string;
}

export function PhotoView({ imageId, alt, overlay, overlayLabel }: Props) {
  const { api } = useApp();
  const [url, setUrl] = useState<string | null>(null);
  const [size, setSize] = useState<{ w: number; h: number } | null>(null);
  useEffect(() => {
    if (!api) return;
    let revoked = false;
    let objectUrl: string | null = null;
    api.blob(`/images/${encodeURIComponent(imageId)}`).then(
      (blob) => {
        if (revoked) return;
        objectUrl = URL.createObjectURL(blob);
        setUrl(objectUrl);
      },
      () => setUrl(null),
    );
    return () => {
      revoked = true;
      if (objectUrl) URL.revokeObjectURL(objectUrl);
    };
  }, [api, imageId]);

  const boxes = parseBoxes(overlay?.boxes);
  const heat = heatmapSrc(overlay?.heatmap);
  // Boxes in 0..1 are relative to the image; larger values are pixels.
  const relative = boxes.length > 0 && boxes.every((b) => b.slice(0, 4).every((v) => (v as number) <= 1));
  const w = relative ? 1 : (size?.w ?? 1);
  const h = relative ? 1 : (size?.h ?? 1);
  return (
    <div className="photo" data-testid="photo">
      {url ? (
        <img
          src={url}
          alt={alt}
          className="photo__img"
          onLoad={(e) => setSize({ w: e.currentTarget.naturalWidth, h: e.currentTarget.naturalHeight })}
        />
      ) : (
        <div className="photo__placeholder" aria-busy="true" />
      )}
      {url && heat ? <img src={heat} alt="" className="photo__heatmap" data-testid="heatmap" /> : null}
      {url && boxes.length > 0 && (relative || size) ? (
        <svg
          className="photo__boxes"
          viewBox={`0 0 ${w} ${h}`}
          preserveAspectRatio="none"
          role="img"
          aria-label={overlayLabel}
          data-testid="boxes"
        >
          {boxes.map((b, i) => (
            <g key={i}>
              <rect
                x={b[0]}
                y={b[1]}
                width={Math.max(0, b[2] - b[0])}
                height={Math.max(0, b[3] - b[1])}
                className="photo__box"
                vectorEffect="non-scaling-stroke"
              />
            </g>
          ))}
        </svg>
      ) : null}
      {url && boxes.length > 0 ? (
        <ul className="photo__legend">
          {boxes.map((b, i) => (
            <li key={i}>
              {b[5] ?? '#'}
              {b[4] !== undefined ? ` ${(b[4] * 100).toFixed(0)}%` : ''}
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}
