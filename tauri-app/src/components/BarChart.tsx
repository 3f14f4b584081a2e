// A small dependency-free stacked bar chart (OK / NG / pending per period), in SVG. It spreads
// over the width it is given (a few periods do not huddle at the left), and its axis counts in
// whole inspections.
import { useEffect, useRef, useState } from 'react';

export interface Bucket {
  period: string;
  ok: number;
  ng: number;
  pending: number;
}

interface Props {
  buckets: Bucket[];
  title: string;
  labels: { ok: string; ng: string; pending: string };
  describe: (b: Bucket) => string;
}

const HEIGHT = 220;
const PAD_LEFT = 36;
const PAD_BOTTOM = 44;
const PAD_TOP = 12;

const MIN_SLOT = 56;
const MAX_BAR = 72;

/** Axis ticks for counts: whole numbers, a round step, at most about five of them. */
export function countTicks(value: number): number[] {
  let step = 1;
  for (let magnitude = 1; ; magnitude *= 10) {
    const found = [1, 2, 5].map((m) => m * magnitude).find((s) => value / s <= 4);
    if (found !== undefined) {
      step = found;
      break;
    }
  }
  const top = Math.max(step, Math.ceil(value / step) * step);
  const ticks: number[] = [];
  for (let tick = 0; tick <= top; tick += step) ticks.push(tick);
  return ticks;
}

/** The width of the element, followed as it changes (0 before the first layout). */
function useWidth<T extends HTMLElement>() {
  const ref = useRef<T>(null);
  const [width, setWidth] = useState(0);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    setWidth(el.clientWidth);
    if (typeof ResizeObserver === 'undefined') return;
    const observer = new ResizeObserver(() => setWidth(el.clientWidth));
    observer.observe(el);
    return () => observer.disconnect();
  }, []);
  return { ref, width };
}

export function BarChart({ buckets, title, labels, describe }: Props) {
  const { ref, width: available } = useWidth<HTMLDivElement>();
  const count = Math.max(1, buckets.length);
  const slot = Math.max(MIN_SLOT, Math.floor((available - PAD_LEFT - 8) / count));
  const width = PAD_LEFT + count * slot + 8;
  const ticks = countTicks(Math.max(0, ...buckets.map((b) => b.ok + b.ng + b.pending)));
  const max = ticks[ticks.length - 1] ?? 1;
  const plot = HEIGHT - PAD_TOP - PAD_BOTTOM;
  const y = (v: number) => PAD_TOP + plot - (v / max) * plot;
  return (
    <figure className="chart" data-testid="chart">
      <div className="chart__scroll" ref={ref}>
        <svg
          role="img"
          aria-label={title}
          viewBox={`0 0 ${width} ${HEIGHT}`}
          width={width}
          height={HEIGHT}
          className="chart__svg"
        >
          {ticks.map((tick) => (
            <g key={tick}>
              <line x1={PAD_LEFT} x2={width} y1={y(tick)} y2={y(tick)} className="chart__grid" />
              <text x={PAD_LEFT - 6} y={y(tick) + 4} textAnchor="end" className="chart__tick" data-testid="chart-tick">
                {tick}
              </text>
            </g>
          ))}
          {buckets.map((b, i) => {
            const w = Math.min(MAX_BAR, slot - 20);
            const x = PAD_LEFT + i * slot + (slot - w) / 2;
            let base = 0;
            const parts: [keyof typeof labels, number][] = [
              ['ok', b.ok],
              ['ng', b.ng],
              ['pending', b.pending],
            ];
            return (
              <g key={b.period} data-testid="chart-bar">
                <title>{describe(b)}</title>
                {parts.map(([kind, value]) => {
                  if (value <= 0) return null;
                  const top = y(base + value);
                  const rect = (
                    <rect key={kind} x={x} y={top} width={w} height={y(base) - top} className={`chart__bar chart__bar--${kind}`} />
                  );
                  base += value;
                  return rect;
                })}
                <text x={x + w / 2} y={HEIGHT - PAD_BOTTOM + 16} textAnchor="middle" className="chart__label">
                  {b.period.length > 7 ? b.period.slice(5) : b.period}
                </text>
                <text x={x + w / 2} y={HEIGHT - PAD_BOTTOM + 32} textAnchor="middle" className="chart__count">
                  {b.ok + b.ng + b.pending}
                </text>
              </g>
            );
          })}
        </svg>
      </div>
      <figcaption className="chart__legend">
        <span className="legend legend--ok">{labels.ok}</span>
        <span className="legend legend--ng">{labels.ng}</span>
        <span className="legend legend--pending">{labels.pending}</span>
      </figcaption>
    </figure>
  );
}
