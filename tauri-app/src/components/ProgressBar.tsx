interface Props {
  /** 0–100, or null for work of unknown length. */
  value: number | null;
  label: string;
  detail?: string;
  small?: boolean;
  testId?: string;
}

export function ProgressBar({ value, label, detail, small, testId }: Props) {
  const pct = value === null ? null : Math.max(0, Math.min(100, value));
  return (
    <div className={`progress${small ? ' progress--small' : ''}`} data-testid={testId}>
      <div className="progress__label">
        <span>{label}</span>
        {detail ? <span className="progress__detail">{detail}</span> : null}
      </div>
      <div
        className={`progress__track${pct === null ? ' progress__track--busy' : ''}`}
        role="progressbar"
        aria-label={label}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={pct === null ? undefined : Math.round(pct)}
      >
        <div className="progress__fill" style={{ width: pct === null ? '35%' : `${pct}%` }} />
      </div>
    </div>
  );
}
