"""``sync_state`` rows — one per stream (push, pull, upload): cursor, last success, last error.

Every function works in the caller's session, like every other repository: a pulled page and its
cursor commit together, and a stream's outcome commits in the unit of work that records it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from schema import device as d
from schema.types import utcnow

STREAMS = ("push", "pull", "upload")


@dataclass(frozen=True)
class StreamState:
    name: str
    cursor: str | None
    last_success_at: datetime | None
    last_error_at: datetime | None
    last_error: str | None
    last_error_kind: str | None


def _row(session: Session, name: str) -> d.SyncState:
    row = session.get(d.SyncState, name)
    if row is None:
        row = d.SyncState(name=name)
    return row


def get(session: Session, name: str) -> StreamState:
    row = session.get(d.SyncState, name)
    if row is None:
        return StreamState(name, None, None, None, None, None)
    return StreamState(
        name, row.cursor, row.last_success_at, row.last_error_at, row.last_error,
        row.last_error_kind,
    )


def set_cursor(session: Session, name: str, cursor: str | None) -> None:
    row = _row(session, name)
    row.cursor = cursor
    row.updated_at = utcnow()
    session.add(row)


def succeeded(session: Session, name: str, now: datetime | None = None) -> None:
    row = _row(session, name)
    row.last_success_at = now or utcnow()
    row.updated_at = utcnow()
    session.add(row)


def failed(
    session: Session, name: str, kind: str, message: str, now: datetime | None = None
) -> None:
    row = _row(session, name)
    row.last_error_at = now or utcnow()
    row.last_error = message[:2000]
    row.last_error_kind = kind
    row.updated_at = utcnow()
    session.add(row)
