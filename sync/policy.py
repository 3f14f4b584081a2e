"""When to try again: the backoff policy and the device's sync schedule.

Pure: no clock, no randomness, no I/O of its own. Callers pass the monotonic time and a uniform
random number in [0, 1), so every rule here is table-tested.

- Network errors, timeouts, 5xx and 429 back off exponentially with *full jitter* (AWS's
  "Exponential Backoff And Jitter": sleep uniformly in ``[0, min(cap, base * 2**n))``), so a floor
  of tablets coming back online together does not hammer the server in lockstep.
- ``Retry-After`` is honoured: the delay is never shorter than what the server asked for (up to
  ``max_retry_after``, so a broken header cannot park the queue for a day).
- Success resets the backoff.
- A retry is *always* scheduled: after any failure ``next_run_at`` is set, so a queue never waits
  for some unrelated local write to wake it up.
- While the server is unreachable a cheap probe runs every ``probe_interval``; the first probe
  that gets through triggers a sync at once instead of waiting out the backoff.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class BackoffPolicy:
    base: float = 1.0
    cap: float = 300.0
    factor: float = 2.0
    # A zero delay from the jitter would retry in a tight loop; this is the shortest wait.
    min_delay: float = 0.1
    max_retry_after: float = 3600.0

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base or self.factor < 1:
            raise ValueError("backoff needs 0 < base <= cap and factor >= 1")

    def ceiling(self, attempt: int) -> float:
        """The upper bound of the jittered delay after ``attempt`` consecutive failures (≥ 1)."""
        if attempt < 1:
            return 0.0
        # Compare exponents rather than computing factor**attempt, which overflows for long outages.
        exponent = attempt - 1
        value = self.base
        for _ in range(exponent):
            value *= self.factor
            if value >= self.cap:
                return self.cap
        return min(self.cap, value)

    def delay(self, attempt: int, rand: float, retry_after: float | None = None) -> float:
        """Seconds to wait after ``attempt`` consecutive failures; ``rand`` is uniform in [0, 1)."""
        if not 0.0 <= rand < 1.0:
            raise ValueError("rand must be in [0, 1)")
        jittered = max(self.min_delay, rand * self.ceiling(attempt))
        if retry_after is not None and retry_after > 0:
            return max(jittered, min(retry_after, self.max_retry_after))
        return jittered


def parse_retry_after(
    value: str | None, *, server_date: str | None = None, now: datetime | None = None
) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP-date.

    An HTTP-date is measured against the response's own ``Date`` header when there is one: the
    tablet's clock may be hours wrong, the server's two timestamps are consistent with each other.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    reference: datetime | None = None
    if server_date:
        try:
            reference = parsedate_to_datetime(server_date)
        except (TypeError, ValueError, IndexError):
            reference = None
    if reference is None:
        reference = now or datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if reference.tzinfo is None:
        reference = reference.replace(tzinfo=UTC)
    return max(0.0, (when - reference).total_seconds())


class Failure(enum.Enum):
    """What went wrong, as far as scheduling is concerned."""

    OFFLINE = "offline"  # connection refused, reset, DNS, timeout: probe until reachable
    SERVER = "server"  # 5xx, 429, broken answer: the server is there but not well; back off
    AUTH = "auth"  # credentials refused even after re-authenticating: back off, keep the queue
    OTHER = "other"  # anything else unexpected: back off


@dataclass
class SyncSchedule:
    """The device's sync timing, driven by monotonic ``now`` values.

    ``interval``: seconds between runs when all is well. ``probe_interval``: seconds between
    reachability probes while offline.
    """

    policy: BackoffPolicy = field(default_factory=BackoffPolicy)
    interval: float = 30.0
    probe_interval: float = 5.0
    next_run_at: float = 0.0
    next_probe_at: float = 0.0
    failures: int = 0
    online: bool | None = None
    last_failure: Failure | None = None
    # A probe that finds the server brings the next run forward once; if that run fails too (a
    # server that answers /ping but times out on every push), the backoff decides until a sync
    # succeeds, instead of a full run every probe interval.
    early_run_spent: bool = False

    def due(self, now: float) -> bool:
        return now >= self.next_run_at

    def should_probe(self, now: float) -> bool:
        """A probe is worth it only while offline and before the next full run is due anyway."""
        return self.online is False and now >= self.next_probe_at and not self.due(now)

    def trigger(self, now: float) -> None:
        """Run as soon as possible (the "sync now" button, a local write, a reconnect)."""
        self.next_run_at = min(self.next_run_at, now)

    def succeeded(self, now: float, *, more_pending: bool = False) -> float:
        self.failures = 0
        self.online = True
        self.last_failure = None
        self.early_run_spent = False
        self.next_run_at = now if more_pending else now + self.interval
        return self.next_run_at

    def failed(
        self, now: float, failure: Failure, rand: float, retry_after: float | None = None
    ) -> float:
        self.failures += 1
        self.last_failure = failure
        if failure is Failure.OFFLINE:
            self.online = False
            self.next_probe_at = now + self.probe_interval
        elif failure in (Failure.SERVER, Failure.AUTH):
            # It answered, so it is reachable, even if unwell or refusing us.
            self.online = True
        self.next_run_at = now + self.policy.delay(self.failures, rand, retry_after)
        return self.next_run_at

    def probed(self, now: float, reachable: bool) -> bool:
        """Record a probe; True when the server just came back and a run should start now."""
        if not reachable:
            self.next_probe_at = now + self.probe_interval
            return False
        came_back = self.online is False
        self.online = True
        if not came_back or self.early_run_spent:
            return False
        # Run now, but keep the failure count: only a successful sync resets the backoff, so
        # a server that answers probes yet fails every sync is not hammered.
        self.early_run_spent = True
        self.next_run_at = now
        return True

    def delay_until_next(self, now: float) -> float:
        return max(0.0, self.next_run_at - now)


@dataclass
class BatchSizer:
    """The push batch size: halves on 413 (or a batch the server refused as a whole), grows back
    on success, so one oversized batch does not stop the queue."""

    maximum: int = 1000
    current: int = 0

    def __post_init__(self) -> None:
        if self.maximum < 1:
            raise ValueError("batch size must be at least 1")
        if self.current <= 0:
            self.current = self.maximum

    def shrink(self) -> int:
        self.current = max(1, self.current // 2)
        return self.current

    def single(self) -> int:
        self.current = 1
        return self.current

    def grow(self) -> int:
        self.current = min(self.maximum, self.current * 2)
        return self.current
