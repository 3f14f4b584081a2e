"""What the queue processor does with a row that did not apply: try again later, or give up.

Pure: no FastAPI, no database session; table-tested.

A row fails to apply for one of three reasons, each with its own answer:

- It waits for something (``ApplyLater``: a parent record not applied yet, an update ahead of
  its base version). Devices push parents before children, but priorities and several
  processors reorder them, so the row is tried again after an exponential backoff (``base_s``
  doubling, capped at ``cap_s``) and dead-lettered after ``max_attempts``: with the defaults a
  parent has about three hours to arrive, long past any push that was merely out of order.
- It can never apply (``ApplyNever``: an id that is not a UUID, a value of the wrong type, an
  entity type or operation the server does not know, a value the database refuses for good):
  dead-lettered at the first attempt. Trying again would only repeat the same answer.
- It acts on another device's record (``NotOwner``): rejected at once (``sync.server.apply``).

Dead-lettered and rejected rows leave the queue (``processed_at``) with a ``refusal`` marker and
their reason, are reported back to their device as refusals, and are counted by the admin API.
Attempts are counted in the queue's own ``apply_attempts`` column; ``retry_count`` is the device's
count of its push attempts and is kept as the device sent it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

# The ``refusal`` markers of a queue row that left the queue without being applied.
CONFLICT = "conflict"  # a version conflict: the server kept its own record
REJECTED = "rejected"  # another device's record
DEAD_LETTER = "dead_letter"  # could never apply, or waited too long for what it needs
REFUSALS = (CONFLICT, REJECTED, DEAD_LETTER)


class Failure(enum.Enum):
    LATER = "later"  # may apply once something else has
    NEVER = "never"  # the same row fails the same way every time


@dataclass(frozen=True)
class Step:
    """What to do with a row after a failed attempt."""

    dead_letter: bool
    delay_s: float = 0.0


@dataclass(frozen=True)
class RetryPolicy:
    base_s: float = 2.0
    cap_s: float = 600.0
    max_attempts: int = 25

    def __post_init__(self) -> None:
        if self.base_s < 0 or self.cap_s < self.base_s:
            raise ValueError("need 0 <= base_s <= cap_s")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def delay_s(self, attempts: int) -> float:
        """The wait after the ``attempts``-th failed attempt (the first waits ``base_s``)."""
        if attempts < 1:
            return 0.0
        # 2**62 overflows no float and is far past any cap.
        return min(self.cap_s, self.base_s * 2.0 ** min(attempts - 1, 62))

    def after_failure(self, attempts: int, failure: Failure) -> Step:
        """``attempts`` counts the failed attempts so far, this one included."""
        if failure is Failure.NEVER or attempts >= self.max_attempts:
            return Step(dead_letter=True)
        return Step(dead_letter=False, delay_s=self.delay_s(attempts))

    def patience_s(self) -> float:
        """How long a waiting row is kept in all, from its first failure to its dead letter."""
        return sum(self.delay_s(n) for n in range(1, self.max_attempts))


DEFAULT_POLICY = RetryPolicy()
