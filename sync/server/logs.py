"""The server's log lines: plain text, or one JSON object a line carrying the request's id.

Every request gets an id: the caller's ``X-Request-ID`` when it is a sensible token (a reverse
proxy or a device may set one to follow a request across systems), a new one otherwise. It is sent
back in the answer's ``X-Request-ID`` and, with ``KENSA_SERVER_LOG_FORMAT=json``, written into every
line logged while the request is served — by the handler, its worker thread or an exception
handler — together with one access line per request. Lines logged outside a request (the queue
processors, start-up) carry ``"request_id": null``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "X-Request-ID"
REQUEST_ID: ContextVar[str | None] = ContextVar("kensa_request_id", default=None)
# What a caller's id may be: long enough for a UUID or a trace id, nothing a log reader could
# mistake for structure.
_ACCEPTED = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message", "asctime", "request_id"}
access_log = logging.getLogger("sync.server.access")


def request_id_from(value: str | None) -> str:
    if value is not None and _ACCEPTED.fullmatch(value):
        return value
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Stamps each record with the id of the request being served, if any."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "thread": record.threadName,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(level: str, fmt: str) -> None:
    """Root logging for a server process (``kensa-server run``)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    # Only a handler this function added before is replaced: one that a host process installed
    # (a test runner's capture) stays.
    for old in [h for h in root.handlers if getattr(h, "kensa_server", False)]:
        root.removeHandler(old)
    handler.kensa_server = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())


class RequestIdMiddleware:
    """Gives each HTTP request its id and, when asked, logs one access line for it."""

    def __init__(self, app: ASGIApp, *, log_access: bool = False) -> None:
        self.app = app
        self.log_access = log_access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = None
        for key, value in scope.get("headers", ()):
            if key == b"x-request-id":
                given = value.decode("latin-1")
                break
        rid = request_id_from(given)
        # Each request runs in a task of its own, so the id set here is seen by everything the
        # request does, including the server's "exception in ASGI application" line after it;
        # it is not reset for that reason, and dies with the task.
        REQUEST_ID.set(rid)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message)[HEADER] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.log_access:
                access_log.info(
                    "%s %s %d", scope.get("method", ""), scope.get("path", ""), status,
                    extra={"method": scope.get("method"), "path": scope.get("path"),
                           "status": status,
                           "duration_ms": round((time.perf_counter() - started) * 1000, 2)},
                )
