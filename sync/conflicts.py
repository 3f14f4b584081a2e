"""Conflict rules of the sync protocol, and what a wrong device clock may change (nothing).

Pure: table-tested, no database, no HTTP.

- Inspection results are append-only: an INSERT of a row the server already holds is the same
  operation delivered twice and is skipped, never a conflict.
- Records both sides may edit carry a version. An UPDATE applies only against the version it was
  based on. A row that is not there yet, or is behind the base version, means earlier operations
  have not been applied yet (several queue processors, priorities): try again later. A row
  already past the base version changed since the device last saw it: a real conflict, even
  when its version is the update's own (the server's change and the device's each took the
  next number), so the server keeps its own and reports it, and a supervisor chooses. An update
  is never skipped as "seen already": the queue takes each operation id once, so the same
  operation cannot reach the rules twice, and a different one that finds its version taken is
  another history of the record, not a redelivery.
- A DELETE of a missing row is done already — unless its INSERT is still waiting in the queue,
  in which case applying the DELETE now would let that INSERT resurrect the row later.
- Masters are server-owned: a pulled row never overwrites a local row with pending changes.
- A device writes only its own records: targets and sessions carry the device that created
  them, and everything under a session belongs to the session's device. An operation on another
  device's record, or a new record under another device's session or target, is rejected (never
  applied, never a silent duplicate); the server keeps the refused row and tells the device.
- Device clocks can be a day wrong. The server orders by its own sequence; timestamps a device
  wrote are moved by the offset measured when the batch arrived, when that offset is larger than
  network delay could explain, so what the server keeps does not depend on the tablet's clock.
- A timestamp still in the future of the server's receive time by more than that threshold —
  the device sent no clock (no ``X-Kensa-Device-Time`` header, or one that does not parse), or
  one record is wrong on its own — cannot be true: it is corrected to the receive time, and the
  value the device sent is kept beside it (``_device_timestamps_original``), so the record is
  kept and nothing is lost. A timestamp in the past is kept as sent: a tablet may well have
  recorded an inspection offline days before it could push it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any


class Decision(enum.Enum):
    APPLY = "apply"
    SKIP = "skip"  # already applied: an INSERT redelivered, a DELETE of a row already gone
    RETRY = "retry"  # a prerequisite is not applied yet: keep the row and try later
    CONFLICT = "conflict"  # keep the server's row, tell the device
    REJECT = "reject"  # another device's record: never applied, the device is told


def decide_insert(exists: bool) -> Decision:
    return Decision.SKIP if exists else Decision.APPLY


def decide_update(current: int | None, base: int) -> Decision:
    if current is None or current < base:
        return Decision.RETRY
    if current == base:
        return Decision.APPLY
    return Decision.CONFLICT


def decide_delete(current: int | None, base: int, insert_pending: bool) -> Decision:
    if current is None:
        return Decision.RETRY if insert_pending else Decision.SKIP
    if current < base:
        return Decision.RETRY
    if current == base:
        return Decision.APPLY
    return Decision.CONFLICT


def decide_owner(acting_device: object, owner_device: object | None) -> Decision:
    """Whether ``acting_device`` may write a record ``owner_device`` owns (None: not there yet,
    so whoever inserts it will own it)."""
    if owner_device is None or owner_device == acting_device:
        return Decision.APPLY
    return Decision.REJECT


def may_overwrite_pulled(has_pending_local_change: bool) -> bool:
    """A server change to a row is applied locally only if the device has nothing pending on it."""
    return not has_pending_local_change


# Fields of device records that hold the device's wall-clock time.
DEVICE_TIMESTAMP_FIELDS = ("created_at", "updated_at", "started_at", "completed_at")

# Below this, an apparent offset is network delay and ordinary clock drift, not a wrong clock.
DEFAULT_SKEW_THRESHOLD_S = 120.0


def clock_offset(device_now: datetime, server_now: datetime) -> float:
    """Seconds the device's clock is ahead of the server's (negative: behind)."""
    return (device_now - server_now).total_seconds()


def correct_timestamps(
    data: Mapping[str, Any],
    offset_s: float,
    *,
    threshold_s: float = DEFAULT_SKEW_THRESHOLD_S,
    fields: Iterable[str] = DEVICE_TIMESTAMP_FIELDS,
) -> dict[str, Any]:
    """``data`` with device timestamps moved onto the server's clock when the skew is real."""
    out = dict(data)
    if abs(offset_s) < threshold_s:
        return out
    shift = timedelta(seconds=offset_s)
    for name in fields:
        value = out.get(name)
        if not isinstance(value, str):
            continue
        try:
            out[name] = (datetime.fromisoformat(value) - shift).isoformat()
        except ValueError:
            continue
        except OverflowError:
            # Moved past year 1 or 9999: no clock is that wrong. Kept as sent, as text that is
            # no time is; a future one is then set to the receive time (``clamp_future``).
            continue
    return out


# Where the values a device sent are kept when a future timestamp was corrected.
ORIGINAL_TIMESTAMPS_KEY = "_device_timestamps_original"


def _parse(value: str) -> datetime | None:
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        return None
    # Read without a zone as UTC, as the queue processor reads it.
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def clamp_future(
    data: Mapping[str, Any],
    server_now: datetime,
    *,
    threshold_s: float = DEFAULT_SKEW_THRESHOLD_S,
    fields: Iterable[str] = DEVICE_TIMESTAMP_FIELDS,
) -> tuple[dict[str, Any], dict[str, str]]:
    """``data`` with timestamps later than ``server_now + threshold_s`` set to ``server_now``,
    and the original values of those it changed. Text that is not a timestamp is left for the
    processor to refuse; timestamps in the past are kept."""
    out = dict(data)
    latest = server_now + timedelta(seconds=threshold_s)
    originals: dict[str, str] = {}
    for name in fields:
        value = out.get(name)
        if not isinstance(value, str):
            continue
        stamp = _parse(value)
        if stamp is None or stamp <= latest:
            continue
        originals[name] = value
        out[name] = server_now.isoformat()
    return out, originals


# Why an operation the server stored ended without being applied, as codes both ends and the
# UI's words share; the server's own text travels beside them for logs.
REASON_CODES = (
    "version_conflict",  # the server holds another version of the record
    "audit_chain_conflict",  # another audit entry under the same sequence
    "other_device",  # the record belongs to another device
    "gave_up_waiting",  # what it needed (a parent, an earlier version) never came
    "cannot_apply",  # it can never apply: a value or reference the server refuses
)
REASON_LIMIT = 500
GAVE_UP = "gave up after "


def reason_code(kind: str, entity_type: str, reason: str) -> str:
    """The code of a refusal of ``kind`` (conflict, rejected, dead_letter) with ``reason``."""
    if kind == "conflict":
        return "audit_chain_conflict" if entity_type == "audit_entry" else "version_conflict"
    if kind == "rejected":
        return "other_device"
    return "gave_up_waiting" if reason.startswith(GAVE_UP) else "cannot_apply"


def bounded_reason(reason: str) -> str:
    return reason if len(reason) <= REASON_LIMIT else reason[: REASON_LIMIT - 1] + "…"
