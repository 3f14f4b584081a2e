import { describe, expect, it } from 'vitest';
import { parseOverlay } from './overlay';

describe('overlay', () => {
  it('keeps the shapes the sidecar placed, in the photo\'s pixels', () => {
    const o = parseOverlay({
      width: 800,
      height: 480,
      drawn: ['circle'],
      shapes: [
        { kind: 'heatmap', x: 0, y: 0, w: 800, h: 480, src: 'data:image/jpeg;base64,AAAA', source: 'heatmap' },
        { kind: 'circle', cx: 625.2, cy: 153.4, rx: 120, ry: 120, source: 'circle' },
        { kind: 'box', x1: 1, y1: 2, x2: 3, y2: 4, source: 'anomaly_bbox' },
        { kind: 'polygon', points: [[0, 0], [10, 0], [10, 5]], source: 'lines' },
        { kind: 'point', x: 5, y: 6, source: 'anomaly_peak' },
      ],
    });
    expect(o?.width).toBe(800);
    expect(o?.shapes.map((s) => s.kind)).toEqual(['heatmap', 'circle', 'box', 'polygon', 'point']);
  });

  it('leaves out what it cannot place, and anything that would load from elsewhere', () => {
    const o = parseOverlay({
      width: 10,
      height: 10,
      shapes: [
        { kind: 'heatmap', x: 0, y: 0, w: 10, h: 10, src: 'https://example.com/x.png' },
        { kind: 'circle', cx: Number.NaN, cy: 1, rx: 1, ry: 1 },
        { kind: 'box', x1: '1', y1: 2, x2: 3, y2: 4 },
        { kind: 'polygon', points: [[0, 0], [1, 1]] },
        { kind: 'point', x: 1 },
        { kind: 'star' },
        null,
      ],
    });
    expect(o?.shapes).toEqual([]);
    expect(parseOverlay({ width: 0, height: 10, shapes: [] })).toBeNull();
    expect(parseOverlay([1, 2, 3])).toBeNull();
    expect(parseOverlay(null)).toBeNull();
  });
});
