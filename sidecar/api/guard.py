"""The gate in front of every request: loopback Host only, the launch token, body size.

A plain ASGI middleware (no per-request task or body copy). The Host check stops DNS-rebinding:
a web page in another tab that resolves its own name to 127.0.0.1 still sends its own Host.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException

from sidecar import security
from sidecar.api.tickets import EventTickets

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
JSON_LIMIT = 1024 * 1024
UPLOAD_LIMIT = 21 * 1024 * 1024  # a 20 MB photo plus multipart framing
PUBLIC_PATHS = frozenset({"/health"})
# The built web UI (sidecar.ui): a browser cannot put the token on these GETs. The Host check
# still applies to them; only API paths carry data, and they keep needing the token.
STATIC_UI_PATHS = frozenset({"/", "/index.html", "/favicon.svg", "/favicon.ico"})
STATIC_UI_PREFIX = "/assets/"
# EventSource cannot set headers: on these paths a single-use ?ticket= (``api.tickets``) stands
# in for the token, which itself never travels in a URL.
TICKET_PATHS = frozenset({"/events"})


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_static_ui(path: str) -> bool:
    return ".." not in path and (path in STATIC_UI_PATHS or path.startswith(STATIC_UI_PREFIX))


def _query_ticket(scope: Scope) -> str:
    raw: bytes = scope.get("query_string", b"")
    for key, value in parse_qsl(raw.decode("latin-1")):
        if key == "ticket":
            return value
    return ""


def _is_upload(path: str) -> bool:
    return path.endswith("/images") or path == "/scan"


class Guard:
    def __init__(
        self, app: ASGIApp, token: str | None, tickets: EventTickets | None = None
    ) -> None:
        self.app = app
        self.token = token
        self.tickets = tickets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path: str = scope["path"]
        host = _host_name(headers.get("host", ""))
        if host not in LOOPBACK_HOSTS:
            await _reply(send, 403, "host_not_allowed", "requests must be addressed to 127.0.0.1")
            return
        public = (path in PUBLIC_PATHS or _is_static_ui(path)) and scope["method"] in (
            "GET",
            "HEAD",
        )
        if not public and scope["method"] != "OPTIONS" and self.token is not None:
            auth = headers.get("authorization", "")
            scheme, _, presented = auth.partition(" ")
            ticketed = (
                not auth
                and path in TICKET_PATHS
                and scope["method"] == "GET"
                and self.tickets is not None
                and self.tickets.redeem(_query_ticket(scope))
            )
            if not ticketed and (
                scheme.lower() != "bearer" or not security.token_matches(self.token, presented)
            ):
                await _reply(send, 401, "unauthorized", "missing or wrong API token")
                return
        limit = UPLOAD_LIMIT if _is_upload(path) else JSON_LIMIT
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _reply(
                send,
                413,
                "payload_too_large",
                f"the request body is {int(length) / 1e6:.1f} MB; the limit here is "
                f"{limit / 1e6:.0f} MB",
            )
            return
        await self.app(scope, _counting(receive, limit), send)


class BodyTooLarge(HTTPException):
    """A body without Content-Length that runs past the limit while the app reads it.

    An ``HTTPException`` on purpose: FastAPI answers any other error raised while it reads a
    JSON body with a generic 400, and re-raises only these; the error handler answers it as
    ``payload_too_large``.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over the {limit / 1e6:.0f} MB limit")


def _counting(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(limit)
        return message

    return wrapped


async def _reply(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message, "detail": None}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
