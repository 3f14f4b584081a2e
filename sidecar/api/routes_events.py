"""``GET /events``: the server-sent events the UI's status bar and progress bars live on.

Two event types, as ``text/event-stream``:

- ``sync`` every :data:`SYNC_INTERVAL_S` seconds (and at once on connect):
  ``{"online", "pending", "oldest_pending_age_s", "last_success_at", "last_error", "set_aside"}``,
  read from the ``outbox`` and ``sync_state`` tables, so it is right whichever process wrote them;
- ``progress`` whenever a producer publishes on :mod:`sidecar.events`:
  ``{"kind": "job"|"warmup"|"sync", "id", "stage", "percentage", "eta_s"}``.

EventSource cannot set headers, so the guard also takes the launch token as ``?token=`` on this
path (and only here). Each ``sync`` event doubles as a heartbeat: a UI that hears nothing for a
few intervals knows the sidecar is gone.

Whose events: the stream is the tablet's, not one inspector's. It needs the launch token but no
login (EventSource cannot send the login header either), so it carries nothing of anyone's
inspection: sync counts for the whole device, and progress as an opaque job id, a stage and a
percentage, with no inspection, product, photo or user in it. An inspector's UI follows the ids of
the jobs it queued; another's id leads nowhere (``GET /jobs/{id}`` answers 404 to anyone who
may not read that inspection). A new progress kind must keep to this, or the stream would need
the login and a filter per subscriber.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from sqlalchemy import func
from sqlmodel import col, select

from schema import device as d
from schema.db import Database
from schema.types import utcnow
from sidecar.api.deps import DbDep
from sidecar.events import hub

router = APIRouter(tags=["system"])

SYNC_INTERVAL_S = 2.0
SYNC_STREAMS = ("push", "pull")


def sync_status(db: Database, now: datetime | None = None) -> dict[str, Any]:
    """What the status bar shows: pending outbox rows, their age, and the last sync outcome.

    ``online`` means the most recent push or pull attempt succeeded (no rows yet: offline);
    ``last_error`` is the latest error only while it is newer than the last success, so a sync
    that has recovered does not keep showing an old failure.
    """
    now = now or utcnow()
    with db.read() as session:
        waiting = col(d.Outbox.set_aside_at).is_(None)
        pending, oldest = session.exec(
            select(func.count(), func.min(col(d.Outbox.created_at))).where(waiting)
        ).one()
        set_aside = session.exec(
            select(func.count()).where(col(d.Outbox.set_aside_at).is_not(None))
        ).one()
        states = session.exec(
            select(d.SyncState).where(col(d.SyncState.name).in_(SYNC_STREAMS))
        ).all()
    successes = [s.last_success_at for s in states if s.last_success_at is not None]
    errors = [s for s in states if s.last_error_at is not None]
    last_success = max(successes, default=None)
    latest_error = max(errors, key=lambda s: s.last_error_at or now, default=None)
    error_at = latest_error.last_error_at if latest_error else None
    online = last_success is not None and (error_at is None or last_success >= error_at)
    last_error = (
        latest_error.last_error
        if latest_error is not None
        and error_at is not None
        and (last_success is None or error_at > last_success)
        else None
    )
    if isinstance(oldest, str):  # func.min over SQLite may hand back the stored text
        oldest = datetime.fromisoformat(oldest)
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=now.tzinfo)
    return {
        "online": online,
        "pending": int(pending),
        "oldest_pending_age_s": (
            max(0.0, (now - oldest).total_seconds()) if oldest is not None else None
        ),
        "last_success_at": last_success.isoformat() if last_success else None,
        "last_error": last_error,
        "set_aside": int(set_aside),
    }


def _frame(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _stream(db: Database) -> AsyncIterator[str]:
    subscription = hub.open()
    try:
        # Reconnect quickly after a restart of the sidecar (the browser's default is ~3 s).
        yield "retry: 1000\n\n"
        next_sync = 0.0
        while True:
            now = time.monotonic()
            if now >= next_sync:
                yield _frame("sync", await asyncio.to_thread(sync_status, db))
                next_sync = now + SYNC_INTERVAL_S
            event = await subscription.get(timeout=max(0.0, next_sync - time.monotonic()))
            if event is None:
                continue
            if event.name == "close":
                return
            yield _frame(event.name, event.data)
    finally:
        subscription.close()


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(db: DbDep) -> StreamingResponse:
    """Server-sent events: ``sync`` status every 2 s, ``progress`` of jobs, warm-up and sync."""
    return StreamingResponse(
        _stream(db),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
