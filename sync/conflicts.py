"""Conflict rules of the sync protocol, and what a wrong device clock may change (nothing).

Pure: table-tested, no database, no HTTP.

- Inspection results are append-only: an INSERT of a row the server already holds is the same
  operation delivered twice and is skipped, never a conflict.
- Records both sides may edit carry a version. An UPDATE applies only against the version it was
  based on. A row that is not there yet, or is behind the base version, means earlier operations
  have not been applied yet (several queue processors, priorities): try again later. A row
  already at or past the update's own version has seen it: skip. Anything else is a real
  conflict: the server keeps its own and reports it.
- A DELETE of a missing row is done already — unless its INSERT is still waiting in the queue,
  in which case applying the DELETE now would let that INSERT resurrect the row later.
- Masters are server-owned: a pulled row never overwrites a local row with pending changes.
- Device clocks can be a day wrong. The server orders by its own sequence; timestamps a device
  wrote are moved by the offset measured when the batch arrived, when that offset is larger than
  network delay could explain, so what the server keeps does not depend on the tablet's clock.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any


class Decision(enum.Enum):
    APPLY = "apply"
    SKIP = "skip"  # already applied: idempotent redelivery
    RETRY = "retry"  # a prerequisite is not applied yet: keep the row and try later
    CONFLICT = "conflict"  # keep the server's row, tell the device


def decide_insert(exists: bool) -> Decision:
    return Decision.SKIP if exists else Decision.APPLY


def decide_update(current: int | None, base: int, new: int) -> Decision:
    if current is None or current < base:
        return Decision.RETRY
    if current == base:
        return Decision.APPLY
    if current >= new:
        return Decision.SKIP
    return Decision.CONFLICT


def decide_delete(current: int | None, base: int, insert_pending: bool) -> Decision:
    if current is None:
        return Decision.RETRY if insert_pending else Decision.SKIP
    if current < base:
        return Decision.RETRY
    if current == base:
        return Decision.APPLY
    return Decision.CONFLICT


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
            stamp = datetime.fromisoformat(value)
        except ValueError:
            continue
        out[name] = (stamp - shift).isoformat()
    return out
