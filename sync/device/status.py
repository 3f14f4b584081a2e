"""The device's sync status: one function, served by ``GET /sync/status`` and the ``sync`` events.

The status bar (the event stream) and the settings screen (``GET /sync/status``) show the values
:func:`read` produces, from what is stored (``outbox``, ``inspection_images``, ``sync_state``,
``system_config``), so they agree whichever process ran the last sync; the running service adds
only what lives in its scheduler (a run in progress, the failures in a row, the next attempt).

What the values mean (the README's "Sync" section says the same):

- **online**: every sync stream (push, pull, upload) that has failed has succeeded again since,
  and at least one has succeeded. An unreachable server, a refused token or a server error all
  read as offline until the stream that failed gets through: online means the tablet's records
  are getting to the server, not merely that a probe got an answer.
- **last error**: the newest failure of a stream that has not succeeded since; once a later
  attempt of that stream succeeds it is cleared (an old failure is not news).
- **last success**: the newest success of any stream.
- **inspections** local / received / applied / attention: where each inspection's records
  stand, from the server's acknowledgements (``sync.device.acks``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from pydantic import BaseModel

from schema.db import Database
from sync.device import acks, config, state
from sync.device.outbox_store import SetAside, SqliteOutbox
from sync.device.state import StreamState
from sync.device.transit import pin_base64
from sync.device.upload import pending_image_stats


class SyncSummary(BaseModel):
    """What the status bar and the settings screen both show: the ``sync`` event's data."""

    configured: bool
    online: bool
    running: bool = False
    pending_rows: int = 0
    pending_bytes: int = 0
    oldest_pending_at: str | None = None
    oldest_pending_age_s: float | None = None
    pending_images: int = 0
    pending_image_bytes: int = 0
    last_success_at: datetime | None = None
    last_error: str | None = None
    last_error_kind: str | None = None
    last_error_at: datetime | None = None
    next_attempt_in_s: float | None = None
    set_aside_count: int = 0
    # Inspections by where their records stand (``sync.device.acks``): still only on this
    # tablet, received by the server, applied there, or set aside for a person to look at.
    inspections_local: int = 0
    inspections_received: int = 0
    inspections_applied: int = 0
    inspections_attention: int = 0


class StreamStatus(BaseModel):
    last_success_at: datetime | None = None
    last_error_at: datetime | None = None
    last_error: str | None = None
    last_error_kind: str | None = None
    cursor: str | None = None


class SetAsideOp(BaseModel):
    seq: int
    op_id: str
    entity_type: str
    entity_id: str
    operation: str
    reason: str | None
    set_aside_at: str | None


class SyncStatus(SyncSummary):
    """The summary, and what only the settings screen shows: the connection, the operations
    set aside (whose ids are records', so they stay off the event stream), each stream."""

    server_url: str | None = None
    device_id: str | None = None
    device_name: str | None = None
    # The server's public-key pin in force (base64 SHA-256 of its SubjectPublicKeyInfo).
    server_pin: str | None = None
    consecutive_failures: int = 0
    set_aside: list[SetAsideOp] = []
    streams: dict[str, StreamStatus] = {}

    def summary(self) -> SyncSummary:
        return SyncSummary.model_validate(self.model_dump(include=set(SyncSummary.model_fields)))


@dataclass(frozen=True)
class Live:
    """What only the running service knows, from its scheduler."""

    running: bool
    consecutive_failures: int
    next_attempt_in_s: float


@dataclass(frozen=True)
class Outcome:
    online: bool
    last_success_at: datetime | None
    error: StreamState | None


def outcome(streams: Iterable[StreamState]) -> Outcome:
    """Online, the last success and the error still standing, from the streams' records."""
    streams = list(streams)
    successes = [s.last_success_at for s in streams if s.last_success_at is not None]
    standing = [
        s
        for s in streams
        if s.last_error_at is not None
        and (s.last_success_at is None or s.last_error_at > s.last_success_at)
    ]
    error = max(standing, key=lambda s: s.last_error_at or datetime.min, default=None)
    return Outcome(
        online=bool(successes) and error is None,
        last_success_at=max(successes, default=None),
        error=error,
    )


def read(
    db: Database, *, now: datetime, live: Live | None = None, set_aside_limit: int = 100
) -> SyncStatus:
    """The sync status as stored now; ``live`` from the service that runs the syncs, if any."""
    with db.read() as session:
        # One read: the connection, the photos waiting and every stream's state as of the
        # same moment.
        connection = config.load(session)
        images, image_bytes = pending_image_stats(session)
        streams = {name: state.get(session, name) for name in state.STREAMS}
    outbox = SqliteOutbox(db)
    stats = outbox.stats()
    set_aside = outbox.set_aside_rows(set_aside_limit)
    set_aside_count = _set_aside_count(db)
    where = acks.counts(db)
    result = outcome(streams.values())
    oldest_age = None
    if stats.oldest_created_at:
        oldest = datetime.fromisoformat(stats.oldest_created_at)
        oldest_age = max(0.0, (now - oldest).total_seconds())
    error = result.error
    return SyncStatus(
        configured=connection is not None,
        online=result.online,
        running=live.running if live else False,
        pending_rows=stats.rows,
        pending_bytes=stats.bytes,
        oldest_pending_at=stats.oldest_created_at,
        oldest_pending_age_s=oldest_age,
        pending_images=images,
        pending_image_bytes=image_bytes,
        last_success_at=result.last_success_at,
        last_error=error.last_error if error else None,
        last_error_kind=error.last_error_kind if error else None,
        last_error_at=error.last_error_at if error else None,
        next_attempt_in_s=live.next_attempt_in_s if live and connection else None,
        set_aside_count=set_aside_count,
        inspections_local=where.local,
        inspections_received=where.received,
        inspections_applied=where.applied,
        inspections_attention=where.attention,
        server_url=config.display_url(connection.server_url) if connection else None,
        device_id=connection.device_id if connection else None,
        device_name=connection.device_name if connection else None,
        server_pin=pin_base64(connection.pin) if connection and connection.pin else None,
        consecutive_failures=live.consecutive_failures if live else 0,
        set_aside=[_set_aside_op(op) for op in set_aside],
        streams={
            name: StreamStatus(
                last_success_at=s.last_success_at, last_error_at=s.last_error_at,
                last_error=s.last_error, last_error_kind=s.last_error_kind, cursor=s.cursor,
            )
            for name, s in streams.items()
        },
    )


def _set_aside_op(op: SetAside) -> SetAsideOp:
    return SetAsideOp(seq=op.seq, op_id=op.op_id, entity_type=op.entity_type,
                      entity_id=op.entity_id, operation=op.operation, reason=op.reason,
                      set_aside_at=op.set_aside_at)


def _set_aside_count(db: Database) -> int:
    # The list shown is capped; the count is not.
    with db.read() as session:
        count = session.execute(
            sa.text("SELECT count(*) FROM outbox WHERE set_aside_at IS NOT NULL")
        ).scalar()
    return int(count or 0)
