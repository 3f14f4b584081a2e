"""An in-process publish/subscribe hub for progress the UI shows live (``GET /events``).

Producers (the AI job queue, model warm-up, the sync engine) call :func:`publish` from any thread
or from the event loop; every open ``/events`` stream holds a subscription and forwards what it
gets as ``event: progress``. Nothing is stored: a UI that connects later sees the next update, and
durable state (jobs, outbox) stays in SQLite where the UI reads it through the API.

A subscriber that stops reading (a stalled browser tab) cannot make the hub grow: each one has a
bounded queue and the oldest update is dropped first, since a newer percentage supersedes it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

ProgressKind = Literal["job", "warmup", "sync"]
PROGRESS_KINDS: tuple[str, ...] = ("job", "warmup", "sync")
QUEUE_SIZE = 256


@dataclass(frozen=True)
class Event:
    """One message for the streams: ``name`` is the SSE event name, ``data`` its JSON body."""

    name: str
    data: dict[str, Any]


class _Subscriber:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=QUEUE_SIZE)

    def offer(self, event: Event) -> None:
        # Runs on the subscriber's own loop (call_soon_threadsafe), so the queue is not shared
        # across threads.
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(event)


class Hub:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: set[_Subscriber] = set()

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def publish_event(self, event: Event) -> None:
        """Hand ``event`` to every subscriber; safe from any thread, never blocks."""
        with self._lock:
            subscribers = list(self._subscribers)
        for sub in subscribers:
            try:
                sub.loop.call_soon_threadsafe(sub.offer, event)
            except RuntimeError:  # that loop is closed: its stream is gone
                self._drop(sub)

    def publish(self, kind: str, payload: Mapping[str, Any]) -> None:
        """Publish progress of a long task: ``payload`` carries ``id``, ``stage``,
        ``percentage`` (0–100, or None while unknown) and ``eta_s`` (seconds or None).

        ``kind`` is ``job``, ``warmup`` or ``sync``; ``publish("progress", {"kind": ..., ...})``
        (the event's name first, the kind in the payload) is taken as the same thing.
        """
        if kind == "progress":
            kind = str(payload.get("kind", ""))
        if kind not in PROGRESS_KINDS:
            raise ValueError(f"progress kind must be one of {', '.join(PROGRESS_KINDS)}")
        data = {
            "kind": kind,
            "id": str(payload.get("id", "")),
            "stage": str(payload.get("stage", "")),
            # None: no measured durations to estimate from yet; the stage is said alone.
            "percentage": None if payload.get("percentage") is None
            else float(max(0.0, min(100.0, float(payload["percentage"])))),
            "eta_s": None if payload.get("eta_s") is None else float(payload["eta_s"]),
        }
        self.publish_event(Event("progress", data))

    def close_all(self) -> None:
        """End every open stream (for a shutdown: uvicorn otherwise waits its graceful timeout
        on each open ``/events`` response before it stops)."""
        self.publish_event(Event("close", {}))

    def _drop(self, sub: _Subscriber) -> None:
        with self._lock:
            self._subscribers.discard(sub)

    async def subscribe(self) -> AsyncIterator[Event]:
        """Yield every event published from now on, until the caller stops iterating."""
        sub = _Subscriber(asyncio.get_running_loop())
        with self._lock:
            self._subscribers.add(sub)
        try:
            while True:
                yield await sub.queue.get()
        finally:
            self._drop(sub)

    def open(self) -> Subscription:
        """A subscription the caller polls with a timeout (what a stream with a heartbeat needs)."""
        sub = _Subscriber(asyncio.get_running_loop())
        with self._lock:
            self._subscribers.add(sub)
        return Subscription(self, sub)


class Subscription:
    def __init__(self, hub: Hub, sub: _Subscriber) -> None:
        self._hub = hub
        self._sub = sub

    async def get(self, timeout: float) -> Event | None:
        """The next event, or None when ``timeout`` seconds pass without one."""
        try:
            return await asyncio.wait_for(self._sub.queue.get(), timeout)
        except TimeoutError:
            return None

    def close(self) -> None:
        self._hub._drop(self._sub)


hub = Hub()


def publish(kind: str, payload: Mapping[str, Any]) -> None:
    """Publish progress on the process's hub (see :meth:`Hub.publish`)."""
    hub.publish(kind, payload)


def publish_progress(
    kind: ProgressKind, id: str, stage: str, percentage: float | None,
    eta_s: float | None = None
) -> None:
    """The same as :func:`publish`, with the fields spelled out."""
    hub.publish(kind, {"id": id, "stage": stage, "percentage": percentage, "eta_s": eta_s})


def subscribe() -> AsyncIterator[Event]:
    return hub.subscribe()
