// The AI's findings as the sidecar places them on the judged photo (`detailed_results.overlay`):
// shapes in the photo's own pixels, upright (EXIF orientation applied, as the browser shows it).
// Anything malformed is left out rather than drawn somewhere.

export type Shape =
  | { kind: 'box'; x1: number; y1: number; x2: number; y2: number; source: string }
  | { kind: 'circle'; cx: number; cy: number; rx: number; ry: number; source: string }
  | { kind: 'polygon'; points: [number, number][]; source: string }
  | { kind: 'point'; x: number; y: number; source: string }
  | { kind: 'heatmap'; x: number; y: number; w: number; h: number; src: string; source: string };

export interface PhotoOverlay {
  width: number;
  height: number;
  shapes: Shape[];
}

const num = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

function shape(raw: unknown): Shape | null {
  if (raw === null || typeof raw !== 'object') return null;
  const s = raw as Record<string, unknown>;
  const source = typeof s.source === 'string' ? s.source : '';
  switch (s.kind) {
    case 'box':
      return num(s.x1) && num(s.y1) && num(s.x2) && num(s.y2) ? { kind: 'box', x1: s.x1, y1: s.y1, x2: s.x2, y2: s.y2, source } : null;
    case 'circle':
      return num(s.cx) && num(s.cy) && num(s.rx) && num(s.ry) ? { kind: 'circle', cx: s.cx, cy: s.cy, rx: s.rx, ry: s.ry, source } : null;
    case 'polygon': {
      if (!Array.isArray(s.points)) return null;
      const points = s.points.filter((p): p is [number, number] => Array.isArray(p) && p.length === 2 && num(p[0]) && num(p[1]));
      return points.length >= 3 ? { kind: 'polygon', points, source } : null;
    }
    case 'point':
      return num(s.x) && num(s.y) ? { kind: 'point', x: s.x, y: s.y, source } : null;
    case 'heatmap':
      // Only a picture the sidecar encoded: never a URL that would leave the tablet.
      return num(s.x) && num(s.y) && num(s.w) && num(s.h) && typeof s.src === 'string' && /^data:image\/(png|jpeg);base64,/.test(s.src)
        ? { kind: 'heatmap', x: s.x, y: s.y, w: s.w, h: s.h, src: s.src, source }
        : null;
    default:
      return null;
  }
}

export function parseOverlay(raw: unknown): PhotoOverlay | null {
  if (raw === null || typeof raw !== 'object') return null;
  const o = raw as Record<string, unknown>;
  if (!num(o.width) || !num(o.height) || o.width <= 0 || o.height <= 0 || !Array.isArray(o.shapes)) return null;
  const shapes = o.shapes.map(shape).filter((s): s is Shape => s !== null);
  return { width: o.width, height: o.height, shapes };
}
