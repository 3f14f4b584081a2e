"""Login lockout and slowdown: guessing a password is slow and visible, yet one person guessing
cannot lock a whole shift out.

Failures are counted per user AND per source, the client a login comes from (the UI sends an id it
made once per install as ``X-Kensa-Client``; a request without one is ``unknown``). After
:data:`MAX_FAILURES` at one source that user is locked at that source for :data:`LOCK_FOR`; the
inspector's own tablet, another source, still logs them in.

A guesser who makes up a new source for every try would never be locked, so every failure also
counts for the user across all sources, and each attempt from a source the user has not logged
in from before waits its turn (one at a time per user) and then :func:`slowdown` of those
failures, up to :data:`SLOWDOWN_CAP`. A source that has logged this user in before is trusted for
them and does not wait, so a stranger's guessing does not slow the inspector's own tablet;
``unknown`` is never trusted, since anyone can send no id. A supervisor can unlock a user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

MAX_FAILURES = 5
LOCK_FOR = timedelta(minutes=5)
# Failures across all sources before untrusted attempts slow down (a few typos cost nothing).
FREE_FAILURES = 3
SLOWDOWN_BASE = timedelta(seconds=1)
SLOWDOWN_CAP = timedelta(seconds=30)
# Untrusted attempts allowed to wait for their turn per user; more are refused outright.
MAX_WAITING = 8
# A source's count is forgotten this long after its last failure, unless it is locked or trusted.
FORGET_AFTER = timedelta(hours=1)

UNKNOWN_SOURCE = "unknown"
_SOURCE = re.compile(r"[A-Za-z0-9_-]{8,64}")


@dataclass(frozen=True)
class Attempt:
    """One user's failures at one source."""

    failed_attempts: int
    locked_until: datetime | None


def source_of(client_id: str | None) -> str:
    """The source a login is counted under; ``ValueError`` for an id of the wrong form (it is
    stored and compared, so only 8 to 64 letters, digits, ``-`` and ``_``)."""
    if not client_id:
        return UNKNOWN_SOURCE
    if not _SOURCE.fullmatch(client_id) or client_id == UNKNOWN_SOURCE:
        raise ValueError("a client id has 8 to 64 letters, digits, '-' or '_'")
    return client_id


def is_locked(state: Attempt, now: datetime) -> bool:
    return state.locked_until is not None and state.locked_until > now


def after_failure(state: Attempt, now: datetime) -> Attempt:
    # A lock that has run out starts a fresh count, so one more typo does not lock again at once.
    count = (
        0 if state.locked_until is not None and state.locked_until <= now else state.failed_attempts
    )
    count += 1
    if count >= MAX_FAILURES:
        return Attempt(failed_attempts=count, locked_until=now + LOCK_FOR)
    return Attempt(failed_attempts=count, locked_until=None)


def after_success() -> Attempt:
    return Attempt(failed_attempts=0, locked_until=None)


def is_trusted(source: str, last_success_at: datetime | None) -> bool:
    """Whether ``source`` has logged this user in before (and may skip the slowdown)."""
    return source != UNKNOWN_SOURCE and last_success_at is not None


def slowdown(failures_everywhere: int) -> timedelta:
    """How long an untrusted attempt waits, after this many failures of the user at any source:
    nothing for the first few, then doubling from :data:`SLOWDOWN_BASE` up to the cap."""
    if failures_everywhere < FREE_FAILURES:
        return timedelta(0)
    steps = failures_everywhere - FREE_FAILURES
    if steps >= 16:  # 2**16 s is far past any cap; do not build huge numbers
        return SLOWDOWN_CAP
    wait: timedelta = SLOWDOWN_BASE * (1 << steps)
    return min(SLOWDOWN_CAP, wait)


def forgotten(
    state: Attempt, last_failed_at: datetime | None, trusted: bool, now: datetime
) -> bool:
    """Whether a source's record can go: not locked, not trusted, no failure for a while. Keeps
    the table small when someone makes up a new source for every try."""
    if trusted or is_locked(state, now):
        return False
    return last_failed_at is None or now - last_failed_at >= FORGET_AFTER
