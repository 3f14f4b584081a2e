"""Login lockout: after repeated failures an account is locked for a while, visibly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

MAX_FAILURES = 5
LOCK_FOR = timedelta(minutes=5)


@dataclass(frozen=True)
class Attempt:
    failed_attempts: int
    locked_until: datetime | None


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
