"""Backpressure on pushes: when the server answers 429 with ``Retry-After`` instead of storing.

Two reasons to refuse a batch, both answered before anything is stored, so a refused batch stays
whole in the tablet's outbox and is resent once the wait is over (the tablet's scheduler honours
``Retry-After``, ``sync.policy``): nothing is lost, only delayed.

- **The device's budget.** Each device has a bucket of ``burst_rows`` operations refilled at
  ``rows_per_s``; a batch takes as many tokens as it has operations. A batch larger than the
  bucket is let through when the bucket is full (else it could never pass) and leaves it in debt,
  which later batches wait out. A tablet catching up after a day offline gets its burst at once,
  then a steady share; one tablet in a loop cannot crowd out the rest of the fleet.
- **The apply lag.** When the oldest operation a processor could apply now has waited longer than
  ``max_lag_s``, the processors are behind: storing more would only grow the queue and every
  tablet's wait for its acknowledgements. Every device is asked to wait a little (the excess,
  between ``min_retry_s`` and ``max_retry_s``) while the processors catch up.

The rule (``decide``) is pure and table-tested; ``PushGate`` keeps the per-device buckets of one
server process. Several API processes each keep their own buckets, so a device's effective budget
is at most the number of processes times its own: the bound that matters, the apply lag, is read
from the shared database by every process.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

BUDGET = "push_budget"
LAG = "apply_lag"


@dataclass(frozen=True)
class Limits:
    rows_per_s: float
    burst_rows: int
    max_lag_s: float
    min_retry_s: float = 1.0
    max_retry_s: float = 30.0

    def __post_init__(self) -> None:
        if self.rows_per_s <= 0 or self.burst_rows < 1:
            raise ValueError("need rows_per_s > 0 and burst_rows >= 1")
        if self.max_lag_s <= 0:
            raise ValueError("max_lag_s must be positive")
        if not 0 < self.min_retry_s <= self.max_retry_s:
            raise ValueError("need 0 < min_retry_s <= max_retry_s")


@dataclass(frozen=True)
class Decision:
    admit: bool
    # The tokens left in the device's bucket after this batch (unchanged when refused).
    level: float
    retry_after_s: float = 0.0
    reason: str | None = None  # BUDGET or LAG when refused


def _clamp(value: float, limits: Limits) -> float:
    return min(limits.max_retry_s, max(limits.min_retry_s, value))


def decide(level: float, rows: int, lag_s: float, limits: Limits) -> Decision:
    """Whether a batch of ``rows`` operations is stored, given the device's bucket ``level``
    (already refilled to now) and the current apply lag."""
    if rows < 0:
        raise ValueError("a batch cannot have fewer than 0 operations")
    if lag_s > limits.max_lag_s:
        return Decision(False, level, _clamp(lag_s - limits.max_lag_s, limits), LAG)
    needed = min(rows, limits.burst_rows)
    if level >= needed:
        return Decision(True, level - rows)
    wait = (needed - level) / limits.rows_per_s
    # Whole seconds on the wire (Retry-After), never 0: round up.
    return Decision(False, level, _clamp(math.ceil(wait), limits), BUDGET)


def refill(level: float, elapsed_s: float, limits: Limits) -> float:
    return min(float(limits.burst_rows), level + max(0.0, elapsed_s) * limits.rows_per_s)


@dataclass
class PushGate:
    """The buckets of one server process, by device key."""

    limits: Limits
    clock: Callable[[], float] = time.monotonic
    max_devices: int = 100_000
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self, device: str, rows: int, lag_s: float) -> Decision:
        with self._lock:
            now = self.clock()
            level, since = self._buckets.get(device, (float(self.limits.burst_rows), now))
            level = refill(level, now - since, self.limits)
            decision = decide(level, rows, lag_s, self.limits)
            self._buckets[device] = (decision.level, now)
            if len(self._buckets) > self.max_devices:
                self._forget_full(now)
            return decision

    def _forget_full(self, now: float) -> None:
        # A full bucket is the same as none: drop those to bound memory.
        for key, (level, since) in list(self._buckets.items()):
            if refill(level, now - since, self.limits) >= self.limits.burst_rows:
                del self._buckets[key]


@dataclass
class LagReading:
    """The apply lag, read at most once every ``every_s`` seconds per process: every push asks,
    and the answer only needs to be about as fresh as a processor's batch."""

    read: Callable[[], float]
    every_s: float = 1.0
    clock: Callable[[], float] = time.monotonic
    _value: float = 0.0
    _at: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def current(self) -> float:
        with self._lock:
            now = self.clock()
            if self._at is None or now - self._at >= self.every_s:
                self._value = self.read()
                self._at = now
            return self._value
