"""Single-use tickets for ``GET /events``.

EventSource cannot set headers, and a launch token in a URL ends up wherever URLs go (the
browser's history and developer tools, proxies' and servers' access logs, crash reports). So the
UI asks for a ticket with the token in its header (``POST /events/ticket``) and opens the stream
with ``?ticket=``: a random value that opens one stream, once, within :data:`TTL_S` seconds, and
means nothing afterwards. Tickets live in this process's memory only: a restarted sidecar knows
none, and the UI asks for a new one on every (re)connect anyway.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable

TTL_S = 30.0
# More unredeemed tickets than any UI asks for; past it the oldest go first, so a caller looping
# on the endpoint cannot grow the sidecar's memory.
MAX_OUTSTANDING = 64


class EventTickets:
    def __init__(self, ttl_s: float = TTL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}

    def issue(self) -> str:
        ticket = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            self._drop_expired(now)
            while len(self._expiry) >= MAX_OUTSTANDING:
                del self._expiry[next(iter(self._expiry))]
            self._expiry[ticket] = now + self.ttl_s
        return ticket

    def redeem(self, ticket: str) -> bool:
        """Whether ``ticket`` was issued here, unused and unexpired; it is spent either way."""
        if not ticket:
            return False
        with self._lock:
            expiry = self._expiry.pop(ticket, None)
        return expiry is not None and self._clock() < expiry

    def _drop_expired(self, now: float) -> None:
        for ticket in [t for t, expiry in self._expiry.items() if expiry <= now]:
            del self._expiry[ticket]
