// A small dependency-free stacked bar chart (OK / NG / pending per period), in SVG.
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

function niceMax(value: number): number {
  if (value <= 5) return 5;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * magnitude >= value) return step * magnitude;
  }
  return 10 * magnitude;
}

export function BarChart({ buckets, title, labels, describe }: Props) {
  const slot = 56;
  const width = PAD_LEFT + Math.max(1, buckets.length) * slot + 8;
  const max = niceMax(Math.max(0, ...buckets.map((b) => b.ok + b.ng + b.pending)));
  const plot = HEIGHT - PAD_TOP - PAD_BOTTOM;
  const y = (v: number) => PAD_TOP + plot - (v / max) * plot;
  const ticks = [0, max / 2, max];
  return (
    <figure className="chart" data-testid="chart">
      <div className="chart__scroll">
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
              <text x={PAD_LEFT - 6} y={y(tick) + 4} textAnchor="end" className="chart__tick">
                {Number.isInteger(tick) ? tick : tick.toFixed(1)}
              </text>
            </g>
          ))}
          {buckets.map((b, i) => {
            const x = PAD_LEFT + i * slot + 10;
            const w = slot - 20;
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
