// A stored photo (fetched with the API token: an <img src> cannot carry it) with the AI's
// findings drawn over it: the heat map, boxes, circles and text lines, each where the sidecar
// placed it in the photo's own pixels. The drawing is laid exactly over the image as shown, at
// any size the layout gives it.
import { useEffect, useRef, useState } from 'react';
import { useI18n } from '../i18n';
import { parseOverlay, type Shape } from '../lib/overlay';
import { useApp } from '../state/app';
import './PhotoView.css';

/** The AI result's `detailed_results`, of which the photo uses `overlay`. */
export interface Overlay {
  overlay?: unknown;
}

interface Props {
  imageId: string;
  alt: string;
  overlay: Overlay | null;
  overlayLabel: string;
}

interface Placed {
  left: number;
  top: number;
  width: number;
  height: number;
}

function ShapeView({ shape, size }: { shape: Shape; size: number }) {
  switch (shape.kind) {
    case 'point': {
      // A ring with a cross, a fixed share of the photo: seen at any size, hiding nothing.
      const r = size * 0.03;
      return (
        <g className="photo__point" data-testid="overlay-point" data-source={shape.source}>
          <circle cx={shape.x} cy={shape.y} r={r} className="photo__box" vectorEffect="non-scaling-stroke" />
          <path d={`M${shape.x - 2 * r} ${shape.y}H${shape.x + 2 * r}M${shape.x} ${shape.y - 2 * r}V${shape.y + 2 * r}`} className="photo__box" vectorEffect="non-scaling-stroke" />
        </g>
      );
    }
    case 'heatmap':
      return (
        <image
          href={shape.src}
          x={shape.x}
          y={shape.y}
          width={shape.w}
          height={shape.h}
          preserveAspectRatio="none"
          className="photo__heatmap"
          data-testid="heatmap"
          data-source={shape.source}
        />
      );
    case 'box':
      return (
        <rect
          x={shape.x1}
          y={shape.y1}
          width={Math.max(0, shape.x2 - shape.x1)}
          height={Math.max(0, shape.y2 - shape.y1)}
          className="photo__box"
          vectorEffect="non-scaling-stroke"
          data-testid="overlay-box"
          data-source={shape.source}
        />
      );
    case 'circle':
      return (
        <ellipse
          cx={shape.cx}
          cy={shape.cy}
          rx={shape.rx}
          ry={shape.ry}
          className="photo__box"
          vectorEffect="non-scaling-stroke"
          data-testid="overlay-circle"
          data-source={shape.source}
        />
      );
    case 'polygon':
      return (
        <polygon
          points={shape.points.map(([x, y]) => `${x},${y}`).join(' ')}
          className="photo__box"
          vectorEffect="non-scaling-stroke"
          data-testid="overlay-polygon"
          data-source={shape.source}
        />
      );
  }
}

export function PhotoView({ imageId, alt, overlay, overlayLabel }: Props) {
  const { api } = useApp();
  const { err } = useI18n();
  const [url, setUrl] = useState<string | null>(null);
  // Why the photo cannot be shown (missing, damaged, not this tablet's key): said, not a grey
  // box that looks as if it were still loading.
  const [failed, setFailed] = useState<unknown>(null);
  const img = useRef<HTMLImageElement>(null);
  const [placed, setPlaced] = useState<Placed | null>(null);
  useEffect(() => {
    if (!api) return;
    let revoked = false;
    let objectUrl: string | null = null;
    setFailed(null);
    api.blob(`/images/${encodeURIComponent(imageId)}`).then(
      (blob) => {
        if (revoked) return;
        objectUrl = URL.createObjectURL(blob);
        setUrl(objectUrl);
      },
      (caught: unknown) => {
        if (revoked) return;
        setUrl(null);
        setFailed(caught ?? new Error('photo'));
      },
    );
    return () => {
      revoked = true;
      if (objectUrl) URL.revokeObjectURL(objectUrl);
    };
  }, [api, imageId]);

  // The drawing follows the image's box as laid out (max-width, max-height, the slot it sits
  // in), not its container's: a container can be wider than the picture it holds.
  useEffect(() => {
    const el = img.current;
    if (!el || !url) return;
    const measure = () => {
      if (!el.naturalWidth) return;
      const next = { left: el.offsetLeft, top: el.offsetTop, width: el.offsetWidth, height: el.offsetHeight };
      setPlaced((prev) =>
        prev && prev.left === next.left && prev.top === next.top && prev.width === next.width && prev.height === next.height ? prev : next,
      );
    };
    measure();
    el.addEventListener('load', measure);
    const observer = new ResizeObserver(measure);
    observer.observe(el);
    return () => {
      el.removeEventListener('load', measure);
      observer.disconnect();
    };
  }, [url]);

  const drawing = parseOverlay(overlay?.overlay);
  return (
    <div className="photo" data-testid="photo">
      {url ? (
        <img ref={img} src={url} alt={alt} className="photo__img" />
      ) : failed ? (
        <div className="photo__placeholder photo__placeholder--failed" role="alert" data-testid="photo-unreadable">
          {err(failed)}
        </div>
      ) : (
        <div className="photo__placeholder" aria-busy="true" />
      )}
      {url && placed && drawing && drawing.shapes.length > 0 ? (
        <svg
          className="photo__overlay"
          style={{ left: placed.left, top: placed.top, width: placed.width, height: placed.height }}
          viewBox={`0 0 ${drawing.width} ${drawing.height}`}
          preserveAspectRatio="none"
          role="img"
          aria-label={overlayLabel}
          data-testid="overlay"
        >
          {drawing.shapes.map((shape, i) => (
            <ShapeView key={i} shape={shape} size={Math.max(drawing.width, drawing.height)} />
          ))}
        </svg>
      ) : null}
    </div>
  );
}
