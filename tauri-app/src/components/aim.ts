// The aiming box drawn over the camera picture, in the pixels of the frame sent to the sidecar,
// so the decoder searches only where the inspector points: a neighbouring label on the same
// tray is never read instead.

export interface Box {
  left: number;
  top: number;
  width: number;
  height: number;
}

export type Fit = 'contain' | 'cover' | 'fill';

/** How much the box grows on each side, as a share of its size: a label held slightly over the
 * dashed line still reads whole. */
export const AIM_MARGIN = 0.1;

/** The scale at which a `width`×`height` video frame is grabbed so its longer edge is at most
 * `maxEdge` (null: full size). */
export function grabScale(width: number, height: number, maxEdge: number | null): number {
  return maxEdge ? Math.min(1, maxEdge / Math.max(width, height)) : 1;
}

/**
 * `target` (the aiming box on screen) inside `element` (the video element on screen), mapped
 * through the element's object-fit onto a `videoWidth`×`videoHeight` picture and then scaled by
 * `scale` into the grabbed frame: `x,y,w,h` in that frame's pixels, as `POST /scan?roi=` takes
 * it. Null when nothing of the box lies on the picture or a size is unknown (the whole frame is
 * searched then).
 */
export function aimRoi(
  element: Box,
  target: Box,
  videoWidth: number,
  videoHeight: number,
  scale: number,
  fit: Fit = 'contain',
  margin: number = AIM_MARGIN,
): string | null {
  if (!(element.width > 0 && element.height > 0 && videoWidth > 0 && videoHeight > 0 && scale > 0)) {
    return null;
  }
  let sx = element.width / videoWidth;
  let sy = element.height / videoHeight;
  if (fit !== 'fill') {
    const s = fit === 'contain' ? Math.min(sx, sy) : Math.max(sx, sy);
    sx = s;
    sy = s;
  }
  // Where the picture lies in the element: centred, letterboxed (contain) or cut (cover).
  const offsetX = (element.width - videoWidth * sx) / 2;
  const offsetY = (element.height - videoHeight * sy) / 2;
  const grow = { x: target.width * margin, y: target.height * margin };
  const toVideoX = (x: number) => (x - element.left - offsetX) / sx;
  const toVideoY = (y: number) => (y - element.top - offsetY) / sy;
  const frameWidth = Math.round(videoWidth * scale);
  const frameHeight = Math.round(videoHeight * scale);
  const clampX = (v: number) => Math.min(frameWidth, Math.max(0, Math.round(v * scale)));
  const clampY = (v: number) => Math.min(frameHeight, Math.max(0, Math.round(v * scale)));
  const x0 = clampX(toVideoX(target.left - grow.x));
  const y0 = clampY(toVideoY(target.top - grow.y));
  const x1 = clampX(toVideoX(target.left + target.width + grow.x));
  const y1 = clampY(toVideoY(target.top + target.height + grow.y));
  if (x1 - x0 < 1 || y1 - y0 < 1) return null;
  return `${x0},${y0},${x1 - x0},${y1 - y0}`;
}
