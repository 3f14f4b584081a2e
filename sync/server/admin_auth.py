"""Who may use the admin API: the decision, the failure throttle, the verification cache.

No FastAPI and no database here: the caller reads the user's row afresh on every request and hands
over what matters (``AdminRecord``), so a demoted, deactivated or deleted admin is refused on the
very next request. What is cached is only the slow part, argon2's answer to "does this password
match this hash" — keyed by the hash itself, so a password change invalidates it.

Every refusal looks the same (401, one message): an unknown user, a wrong password, and a right
password of a user who is not an active admin are not told apart, and an unknown user's password
is verified against a dummy hash so the answer takes as long as for a known one. Failures are
throttled per username and per client address (a token bucket each); while either bucket is
empty every attempt, right or wrong, is answered 429 with the seconds to wait.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sync.errors import AuthError, RateLimited

REFUSED = "unknown user, wrong password, or not an active admin"


@dataclass(frozen=True)
class AdminRecord:
    """The user's row as read for this request."""

    password_hash: str
    role: str
    is_active: bool
    deleted: bool

    @property
    def may_administer(self) -> bool:
        return self.role == "admin" and self.is_active and not self.deleted


@dataclass
class TokenBucket:
    """Per-key buckets of ``burst`` tokens refilled at one per ``refill_s``; a failure takes one."""

    burst: int
    refill_s: float
    clock: Callable[[], float] = time.monotonic
    max_keys: int = 10_000
    _tokens: dict[str, tuple[float, float]] = field(default_factory=dict)

    def _level(self, key: str, now: float) -> float:
        tokens, since = self._tokens.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - since) / self.refill_s)

    def wait_s(self, key: str) -> float:
        """Seconds until ``key`` may try again; 0 when it may now."""
        level = self._level(key, self.clock())
        return 0.0 if level >= 1.0 else (1.0 - level) * self.refill_s

    def take(self, key: str) -> None:
        now = self.clock()
        self._tokens[key] = (max(0.0, self._level(key, now) - 1.0), now)
        if len(self._tokens) > self.max_keys:
            # Forget the keys that have refilled; they are indistinguishable from new ones.
            for stale in [k for k in self._tokens if self._level(k, now) >= self.burst]:
                del self._tokens[stale]


Verifier = Callable[[str, str], bool]  # (password hash, password) -> matches


@dataclass
class AdminGate:
    verify: Verifier
    dummy_hash: Callable[[], str]
    burst: int = 10
    refill_s: float = 6.0
    cache_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _buckets: TokenBucket | None = None
    _verified: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._buckets = TokenBucket(self.burst, self.refill_s, clock=self.clock)

    @property
    def buckets(self) -> TokenBucket:
        assert self._buckets is not None
        return self._buckets

    def check(self, username: str, password: str, client: str,
              record: AdminRecord | None) -> None:
        """Return if ``username`` may use the admin API now; raise ``AuthError`` or
        ``RateLimited`` otherwise."""
        keys = (f"user:{username}", f"addr:{client}")
        with self._lock:
            wait = max(self.buckets.wait_s(key) for key in keys)
        if wait > 0:
            # Whole seconds, rounded up: Retry-After has no fractions.
            raise RateLimited("too many failed admin logins; try again later",
                              retry_after=float(max(1, math.ceil(wait))))
        matches = self._matches(record.password_hash if record else None, username, password)
        if record is not None and matches and record.may_administer:
            return
        with self._lock:
            for key in keys:
                self.buckets.take(key)
        raise AuthError(REFUSED)

    def _matches(self, password_hash: str | None, username: str, password: str) -> bool:
        if password_hash is None:
            # The same work as a known user's, so the time taken does not tell who exists.
            self.verify(self.dummy_hash(), password)
            return False
        key = hashlib.sha256(
            "\0".join((username, password, password_hash)).encode("utf-8")
        ).hexdigest()
        now = self.clock()
        with self._lock:
            if self._verified.get(key, 0.0) > now:
                return True
        if not self.verify(password_hash, password):
            return False
        with self._lock:
            if len(self._verified) > 10_000:
                self._verified = {k: t for k, t in self._verified.items() if t > now}
            self._verified[key] = now + self.cache_s
        return True
