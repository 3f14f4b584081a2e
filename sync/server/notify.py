"""Waking the queue processors when a push stores rows (PostgreSQL ``LISTEN``/``NOTIFY``).

A push that stored rows sends ``NOTIFY kensa_queue`` inside its own transaction, so the
notification is delivered when, and only if, the rows are committed. Each processor keeps one
connection of its own that ``LISTEN``s; between batches it waits on that connection instead of
polling, and wakes within a round trip of the commit. Notifications that arrive while it applies
a batch are queued on the connection and end the next wait at once, so none is missed.

The wait still ends after a poll interval (and when a row waiting out its backoff becomes due),
a safety net for anything that bypassed the push path — a row written by hand, a processor that
lost its connection while PostgreSQL restarted. A lost connection is reopened on the next wait;
until then the processor polls, and it treats the reconnect itself as a wake-up, because
notifications sent while it was away are gone.

SQLite (the embedded mode) has no such channel: its processors poll, as before.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

log = logging.getLogger(__name__)

CHANNEL = "kensa_queue"
# How long one wait on the socket lasts before the stop event is looked at again.
SLICE_S = 0.5


def announce(session: Session) -> None:
    """Within the transaction that stores queue rows: wake the processors once it commits.
    PostgreSQL folds identical notifications of one transaction into one."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


def libpq_dsn(database_url: str) -> str | None:
    """The psycopg connection string of a SQLAlchemy PostgreSQL URL; None for SQLite."""
    url = sa.make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return None
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class Wakeup:
    """One processor's ``LISTEN`` connection."""

    def __init__(self, dsn: str, *, poll_s: float = 5.0) -> None:
        self.dsn = dsn
        self.poll_s = poll_s
        self._conn: Any = None
        self.wakes = 0  # notifications received (tests, logs)

    def listen(self) -> bool:
        """Open the connection and ``LISTEN``; False when PostgreSQL cannot be reached now."""
        import psycopg

        if self._conn is not None:
            return True
        try:
            conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=5)
            conn.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as exc:
            log.warning("cannot listen for queue notifications (polling meanwhile): %s", exc)
            return False
        self._conn = conn
        return True

    def wait(self, stop: threading.Event, timeout_s: float | None = None) -> bool:
        """Wait for a notification, the timeout (default: the poll interval) or ``stop``.
        True when woken by a notification or by a reconnect that may have missed some."""
        import psycopg

        deadline = time.monotonic() + (self.poll_s if timeout_s is None else timeout_s)
        if self._conn is None:
            if self.listen():
                return True
            stop.wait(max(0.0, deadline - time.monotonic()))
            return False
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                # Each generator is run to its end: it holds the connection's lock until then.
                got = list(self._conn.notifies(timeout=min(SLICE_S, remaining), stop_after=1))
                if got:
                    self.wakes += len(got)
                    self._drain()
                    return True
            except psycopg.Error as exc:
                log.warning("queue notifications lost (%s); listening again", exc)
                self.close()
                stop.wait(min(1.0, max(0.0, deadline - time.monotonic())))
                return False
        return False

    def _drain(self) -> None:
        # Notifications already queued behind the first say the same thing: consume them so
        # the next wait does not end at once for nothing. (timeout=0 would mean "no timeout".)
        with contextlib.suppress(Exception):
            self.wakes += len(list(self._conn.notifies(timeout=0.001)))

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
