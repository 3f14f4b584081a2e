"""What the server's operators watch: the queue's figures and this process's counters.

The queue's figures are read from the database on each scrape, so every API process answers the
same totals for the whole server, processors in other processes (``kensa-server process``)
included, and a restart loses nothing. What only a process knows (the errors it answered) is
counted here, per process, as Prometheus expects of counters.

``/metrics`` (``sync.server.ops``) writes them in Prometheus' text format (0.0.4) and
``kensa-server status`` for a person; both read one ``Figures``.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import Session

from schema import server as s
from sync.server.queue_policy import CONFLICT, DEAD_LETTER, REFUSALS, REJECTED

QUEUE: sa.Table = s.TauriSyncQueue.__table__  # type: ignore[attr-defined]
DEVICES: sa.Table = s.Device.__table__  # type: ignore[attr-defined]
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class DeviceFigures:
    name: str
    device_id: str
    pending: int
    last_contact: datetime | None
    revoked: bool


@dataclass(frozen=True)
class Figures:
    """The queue as the database holds it at ``at``."""

    at: datetime
    received: int  # every row ever stored
    pending: int  # not applied yet, not set aside
    retrying: int  # pending after a failed attempt (waiting out a backoff, or due again)
    applied: int
    refused: dict[str, int]  # conflict, rejected, dead_letter
    # How long the oldest row a processor could take right now has waited for one: since it was
    # received, or since its backoff ended. A row still waiting out its backoff is not lag.
    lag_s: float
    devices: list[DeviceFigures] = field(default_factory=list)

    @property
    def dead_letters(self) -> int:
        return self.refused.get(DEAD_LETTER, 0)


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands timestamps back without their zone; the server writes them in UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def read_figures(session: Session, now: datetime) -> Figures:
    """One pass over the queue grouped by device, and the devices' rows.

    The totals are a scan of the queue (the pending figures alone would use the partial index on
    unprocessed rows); at one scrape every few seconds that is cheap next to the pushes it
    measures.
    """
    pending = QUEUE.c.processed_at.is_(None)
    due_since = sa.func.coalesce(QUEUE.c.next_attempt_at, QUEUE.c.created_at)
    due = sa.and_(pending, sa.or_(QUEUE.c.next_attempt_at.is_(None),
                                  QUEUE.c.next_attempt_at <= now))
    rows = session.execute(
        sa.select(
            QUEUE.c.device_id,
            sa.func.count(),
            sa.func.count().filter(pending),
            sa.func.count().filter(pending, QUEUE.c.apply_attempts > 0),
            sa.func.count().filter(QUEUE.c.processed_at.is_not(None), QUEUE.c.refusal.is_(None)),
            sa.func.count().filter(QUEUE.c.refusal == CONFLICT),
            sa.func.count().filter(QUEUE.c.refusal == REJECTED),
            sa.func.count().filter(QUEUE.c.refusal == DEAD_LETTER),
            sa.func.min(due_since).filter(due),
        ).group_by(QUEUE.c.device_id)
    ).all()
    received = waiting = retrying = applied = 0
    refused: Counter[str] = Counter({kind: 0 for kind in REFUSALS})
    oldest: datetime | None = None
    by_device: dict[str, int] = {}
    for (device_id, total, n_pending, n_retrying, n_applied, conflicts, rejected, dead,
         since) in rows:
        received += int(total)
        waiting += int(n_pending)
        retrying += int(n_retrying)
        applied += int(n_applied)
        refused.update({CONFLICT: int(conflicts), REJECTED: int(rejected),
                        DEAD_LETTER: int(dead)})
        since = _aware(since)
        if since is not None and (oldest is None or since < oldest):
            oldest = since
        by_device[str(device_id)] = int(n_pending)
    devices = [
        DeviceFigures(name=name, device_id=str(key), pending=by_device.pop(str(key), 0),
                      last_contact=_aware(seen), revoked=revoked is not None)
        for key, name, seen, revoked in session.execute(
            sa.select(DEVICES.c.id, DEVICES.c.name, DEVICES.c.last_seen_at,
                      DEVICES.c.revoked_at).order_by(DEVICES.c.name)
        )
    ]
    # Rows pushed under an id no device row has (a device deleted since) still count, by id.
    devices += [DeviceFigures(name=key, device_id=key, pending=n, last_contact=None,
                              revoked=True) for key, n in sorted(by_device.items())]
    lag = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    return Figures(at=now, received=received, pending=waiting, retrying=retrying,
                   applied=applied, refused=dict(refused), lag_s=lag, devices=devices)


class ProcessCounters:
    """Counters this process keeps: the errors it answered, by their code."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._errors: Counter[tuple[str, int]] = Counter()

    def error(self, code: str, status: int) -> None:
        with self._lock:
            self._errors[(code, status)] += 1

    def errors(self) -> dict[tuple[str, int], int]:
        with self._lock:
            return dict(self._errors)


# One per process: the exception handlers of every app in it count here.
PROCESS = ProcessCounters()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(value)


class Exposition:
    """Prometheus' text format, one family at a time (HELP and TYPE, then its samples)."""

    def __init__(self) -> None:
        self._lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str,
               samples: Iterable[tuple[dict[str, str], float]]) -> None:
        self._lines.append(f"# HELP {name} {help_text}")
        self._lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            if labels:
                inner = ",".join(f'{key}="{_escape(val)}"' for key, val in labels.items())
                self._lines.append(f"{name}{{{inner}}} {_number(value)}")
            else:
                self._lines.append(f"{name} {_number(value)}")

    def one(self, name: str, kind: str, help_text: str, value: float) -> None:
        self.family(name, kind, help_text, [({}, value)])

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"


def render(figures: Figures | None, counters: ProcessCounters) -> str:
    """The exposition; without ``figures`` (the database did not answer) only what the process
    knows, with ``kensa_database_up 0``, so a scrape still tells the database is the trouble."""
    out = Exposition()
    out.one("kensa_database_up", "gauge",
            "Whether the server database answered this scrape (1) or not (0).",
            0 if figures is None else 1)
    if figures is not None:
        out.one("kensa_queue_received_total", "counter",
                "Operations devices pushed that the server stored.", figures.received)
        out.one("kensa_queue_pending", "gauge",
                "Stored operations not applied yet (queue depth).", figures.pending)
        out.one("kensa_queue_retrying", "gauge",
                "Pending operations that failed at least one attempt to apply.",
                figures.retrying)
        out.one("kensa_applied_total", "counter",
                "Operations applied to the server's tables.", figures.applied)
        out.one("kensa_apply_lag_seconds", "gauge",
                "How long the oldest operation a processor could apply now has waited.",
                figures.lag_s)
        out.family("kensa_queue_refused_total", "counter",
                   "Operations that left the queue unapplied, by kind "
                   "(conflict, rejected, dead_letter).",
                   [({"kind": kind}, n) for kind, n in sorted(figures.refused.items())])
        out.one("kensa_dead_letters", "gauge",
                "Operations set aside for good: they could never apply or waited too long.",
                figures.dead_letters)
        out.family("kensa_device_queue_pending", "gauge",
                   "Operations of a device not applied yet.",
                   [({"device": d.name}, d.pending) for d in figures.devices
                    if not d.revoked or d.pending])
        out.family("kensa_device_last_contact_timestamp_seconds", "gauge",
                   "When a device last authenticated or pushed (Unix time).",
                   [({"device": d.name}, d.last_contact.timestamp()) for d in figures.devices
                    if d.last_contact is not None and not d.revoked])
    out.family("kensa_http_errors_total", "counter",
               "Error answers of this process, by error code and status.",
               [({"code": code, "status": str(status)}, n)
                for (code, status), n in sorted(counters.errors().items())])
    return out.text()


def _ago(at: datetime, now: datetime) -> str:
    seconds = max(0.0, (now - at).total_seconds())
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.1f} days ago"


def figures_text(figures: Figures, revisions: list[str], head: str) -> str:
    """``kensa-server status``: the figures of ``/metrics``, for a person."""
    schema = ("at head" if revisions == [head]
              else f"NOT at head {head}: run kensa-server db upgrade")
    refused = figures.refused
    lines = [
        f"database    revision {', '.join(revisions) or 'none'} ({schema})",
        f"queue       {figures.pending:,} pending ({figures.retrying:,} retrying after a failure)",
        f"apply lag   {figures.lag_s:.1f} s",
        f"applied     {figures.applied:,} of {figures.received:,} received",
        f"refused     {refused.get(CONFLICT, 0):,} conflicts, {refused.get(REJECTED, 0):,} "
        f"rejected, {figures.dead_letters:,} dead letters",
        "",
    ]
    shown = [d for d in figures.devices if not d.revoked or d.pending]
    width = max([len("device"), *(len(d.name) for d in shown)])
    lines.append(f"{'device':<{width}}  {'last contact':<16}  pending")
    for d in shown:
        contact = _ago(d.last_contact, figures.at) if d.last_contact else "never"
        lines.append(f"{d.name:<{width}}  {contact:<16}  {d.pending:,}")
    if not shown:
        lines.append("(no devices)")
    return "\n".join(lines)


def figures_json(figures: Figures, revisions: list[str], head: str) -> dict[str, object]:
    return {
        "at": figures.at.isoformat(), "revision": revisions, "head": head,
        "received": figures.received, "pending": figures.pending,
        "retrying": figures.retrying, "applied": figures.applied,
        "refused": figures.refused, "dead_letters": figures.dead_letters,
        "lag_s": round(figures.lag_s, 3),
        "devices": [
            {"name": d.name, "device_id": d.device_id, "pending": d.pending,
             "last_contact": d.last_contact.isoformat() if d.last_contact else None,
             "revoked": d.revoked}
            for d in figures.devices
        ],
    }
