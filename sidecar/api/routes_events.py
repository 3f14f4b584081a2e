"""``GET /events``: the server-sent events the UI's status bar and progress bars live on.

Three event types, as ``text/event-stream``:

- ``sync`` every :data:`SYNC_INTERVAL_S` seconds (and at once on connect): the summary of the
  one sync status (``sync.device.status.SyncSummary``: online, what waits, last success, last
  error, next attempt, how many operations are set aside), the same values ``GET /sync/status``
  answers, read from what is stored, so it is right whichever process synced;
- ``progress`` whenever a producer publishes on :mod:`sidecar.events`:
  ``{"kind": "job"|"warmup"|"sync", "id", "stage", "percentage", "eta_s"}``;
- ``changed`` after a write to an inspection succeeded (``sidecar.api.announce``):
  ``{"session_id"}``, so a UI showing it reloads it instead of polling.

EventSource cannot set headers, and the launch token must not ride in a URL (history, logs): the UI
first asks ``POST /events/ticket`` (token in its header) for a single-use ticket that expires in
seconds, and opens ``GET /events?ticket=...`` with it (``api.tickets``; the guard redeems it, on
this path only). Each ``sync`` event doubles as a heartbeat: a UI that hears nothing for a few
intervals knows the sidecar is gone, and every reconnect asks for a fresh ticket.

Whose events: the stream is the tablet's, not one inspector's. It needs the launch token but no
login (EventSource cannot send the login header either), so it carries nothing of anyone's
inspection: sync counts for the whole device (not the set-aside operations, which name
records), progress as an opaque job id, a stage and a percentage, and a change as an opaque
inspection id, with no product, photo, result or user in it. An inspector's UI follows the ids
it holds; another's id leads nowhere (``GET /jobs/{id}`` and ``GET /sessions/{id}`` answer 404
to anyone who may not read that inspection). A new event or progress kind must keep to this, or
the stream would need the login and a filter per subscriber.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from schema.db import Database
from schema.types import utcnow
from sidecar.api.deps import DbDep
from sidecar.api.tickets import EventTickets
from sidecar.events import hub
from sync.device import status as sync_status
from sync.device.service import SyncService

router = APIRouter(tags=["system"])

SYNC_INTERVAL_S = 2.0


def sync_summary(db: Database, service: SyncService | None = None) -> dict[str, Any]:
    """The ``sync`` event's data: the one status's summary, from the running sync service when
    there is one (it knows the next attempt), else as stored."""
    status = service.status() if service is not None else sync_status.read(db, now=utcnow())
    return status.summary().model_dump(mode="json")


def _frame(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _stream(db: Database, service: SyncService | None = None) -> AsyncIterator[str]:
    subscription = hub.open()
    try:
        # Reconnect quickly after a restart of the sidecar (the browser's default is ~3 s).
        yield "retry: 1000\n\n"
        next_sync = 0.0
        while True:
            now = time.monotonic()
            if now >= next_sync:
                yield _frame("sync", await asyncio.to_thread(sync_summary, db, service))
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
async def events(db: DbDep, request: Request) -> StreamingResponse:
    """Server-sent events: ``sync`` status every 2 s, ``progress`` of jobs, warm-up and sync,
    ``changed`` inspections."""
    service = getattr(request.app.state, "sync", None)
    return StreamingResponse(
        _stream(db, service if isinstance(service, SyncService) else None),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


class EventTicketPublic(BaseModel):
    ticket: str
    expires_in_s: float


@router.post("/events/ticket")
def event_ticket(request: Request) -> EventTicketPublic:
    """A single-use ticket that opens ``GET /events?ticket=`` once, within a few seconds: the
    launch token itself never goes into the stream's URL."""
    tickets = request.app.state.event_tickets
    assert isinstance(tickets, EventTickets)
    return EventTicketPublic(ticket=tickets.issue(), expires_in_s=tickets.ttl_s)
