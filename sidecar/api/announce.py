"""After a write to an inspection succeeded, say so on the event stream (``event: changed``).

The UI reloads an open inspection when it hears its id, whoever wrote it: this screen, another
browser on the tablet, a supervisor's posted AI result. So the UI never polls. The event carries
the inspection's id and nothing else, like a job's progress carries the job's: reading what
changed still takes a login that may see that inspection.
"""

from __future__ import annotations

import re

from sidecar.api.guard import ASGIApp, Receive, Scope, Send
from sidecar.api.push_soon import answered
from sidecar.events import Event, hub

_INSPECTION = re.compile(r"^/sessions/([A-Za-z0-9_-]{1,64})(?:/|$)")
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class AnnounceChanges:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _INSPECTION.match(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None or scope["method"] not in _WRITES:
            await self.app(scope, receive, send)
            return
        if await answered(self.app, scope, receive, send) < 400:
            hub.publish_event(Event("changed", {"session_id": match.group(1)}))
