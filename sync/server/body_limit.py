"""A bound on every request body the server reads whole.

FastAPI reads a JSON body into memory before its model checks a single field, so a 1 GB
enrollment code (``/enroll`` needs no token) or admin body would be read and parsed whole before
``max_length`` refused it. This middleware answers 413 ``payload_too_large`` before the app sees a
body declared larger than ``MAX_JSON_BODY``, and stops one sent without a length as soon as it
runs past it. The routes that stream a body to their own limits are left to them: a push batch
(``max_batch_bytes``) and a photo or model file (``max_upload_bytes``).
"""

from __future__ import annotations

import json
import re

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The largest JSON a client sends: a pipeline definition (``sync.bounds.MAX_DEFINITION_BYTES``,
# 1 MiB) with room for its envelope.
MAX_JSON_BODY = 2 * 1024 * 1024

_STREAMED = re.compile(r"^/(sync/v1/push|sync/v1/files/[^/]+|admin/v1/models/[^/]+)$")


def _streamed(method: str, path: str) -> bool:
    if _STREAMED.fullmatch(path) is None:
        return False
    return method == "POST" if path == "/sync/v1/push" else method == "PUT"


class BodyTooLarge(HTTPException):
    """A body without Content-Length that ran past the limit while the app read it: an
    ``HTTPException`` because FastAPI answers any other error met while reading a JSON body with
    a generic 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over the limit of {limit} bytes")


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: int = MAX_JSON_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _streamed(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await _too_large(send, int(declared), self.limit)
            return
        limit = self.limit
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted, send)


async def _too_large(send: Send, size: int, limit: int) -> None:
    body = json.dumps({"error": {
        "code": "payload_too_large",
        "message": f"the request body is {size} bytes; the limit here is {limit}",
        "detail": {"max_bytes": limit},
    }}).encode()
    await send({"type": "http.response.start", "status": 413, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]})
    await send({"type": "http.response.body", "body": body})
