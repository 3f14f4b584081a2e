"""After a write that succeeded, ask the sync service to push now rather than at its interval."""

from __future__ import annotations

from sidecar.api.guard import ASGIApp, Message, Receive, Scope, Send


async def answered(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> int:
    """Run ``app`` on the request and return the status it answered with (500 if none)."""
    status = 500

    async def watch(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        await send(message)

    await app(scope, receive, watch)
    return status


class PushSoon:
    """After a write that succeeded, ask the sync service to push now, not at its next interval.

    Only while the server answers: offline, the backoff and the reachability probe decide, so a
    busy inspector cannot make the tablet hammer a server that is down.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "DELETE"):
            await self.app(scope, receive, send)
            return
        status = await answered(self.app, scope, receive, send)
        sync = getattr(scope["app"].state, "sync", None) if "app" in scope else None
        if sync is not None and status < 400 and sync.schedule.online:
            sync.trigger()
