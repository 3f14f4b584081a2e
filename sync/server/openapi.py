"""The sync server's OpenAPI document as the server really answers, errors included.

FastAPI documents each operation's 422 as its own ``HTTPValidationError`` and no other error,
but every failure leaves as ``{"error": ErrorBody}`` (``sync.server.app``'s handlers), with the
status of its ``sync.errors`` branch. The API fuzz test holds the running server to this
document, and anyone writing a client reads it: each operation lists the error statuses it can
answer, each as ``ErrorResponse``. Push and file bodies are read from the request stream, so
FastAPI cannot see them; they are documented here too.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from sync.openapi_schemas import schema_ref
from sync.protocol import API_PREFIX, ErrorBody, PushBatch, PushResponse

ADMIN_PREFIX = "/admin/v1"
_FASTAPI_ERRORS = ("HTTPValidationError", "ValidationError")
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
_BINARY = {"type": "string", "format": "binary"}


class ErrorResponse(BaseModel):
    """Every error the server answers: ``{"error": {"code", "message", "detail"}}``."""

    error: ErrorBody


DESCRIPTIONS = {
    400: "A malformed request: a bad batch, cursor, hash or master",
    401: "Missing, wrong, expired or revoked credentials",
    403: "A device acting for another device, or a user without the admin role",
    404: "No such record or file",
    409: "A master that already exists, or a stale version",
    410: "A pull cursor older than the server keeps (resync from the start), or an expired "
         "enrollment code",
    413: "A batch or file over the server's limits",
    422: "The request does not match this document, or an operation is refused for good",
    429: "Too many attempts: wait for Retry-After",
    500: "The object store failed",
    503: "The database is unavailable: retry after Retry-After",
}

# Needs no credentials and no database.
PUBLIC = frozenset({("get", "/health"), ("get", f"{API_PREFIX}/ping")})

# Bodies read from the stream, which FastAPI cannot see: a push batch (checked by
# ``sync.server.push``, which answers the push with a plain JSONResponse) and file bodies named
# by their SHA-256. None: raw bytes.
STREAMED_BODIES: dict[tuple[str, str], type[BaseModel] | None] = {
    ("post", f"{API_PREFIX}/push"): PushBatch,
    ("put", f"{API_PREFIX}/files/{{sha256}}"): None,
    ("put", f"{ADMIN_PREFIX}/models/{{sha256}}"): None,
}
# Successful answers FastAPI cannot see: the push's JSONResponse, and a file's bytes (a photo
# as the device typed it, or a model file).
ANSWERS: dict[tuple[str, str], dict[str, Any] | type[BaseModel]] = {
    ("post", f"{API_PREFIX}/push"): PushResponse,
    ("get", f"{API_PREFIX}/files/{{sha256}}"): {
        "application/octet-stream": {"schema": _BINARY}, "image/*": {"schema": _BINARY}
    },
}

# What a route answers beyond what its shape implies (see ``error_statuses``).
EXTRA: dict[tuple[str, str], frozenset[int]] = {
    ("post", f"{API_PREFIX}/push"): frozenset({403, 413}),
    ("get", f"{API_PREFIX}/changes"): frozenset({410}),
    # An enrollment code: unknown (401), used (409), expired (410), too many wrong ones (429).
    ("post", f"{API_PREFIX}/enroll"): frozenset({404, 409, 410, 429}),
    ("put", f"{API_PREFIX}/files/{{sha256}}"): frozenset({413, 500}),
    ("get", f"{API_PREFIX}/files/{{sha256}}"): frozenset({403, 500}),
    ("put", f"{ADMIN_PREFIX}/models/{{sha256}}"): frozenset({413, 500}),
}


def error_statuses(method: str, path: str, operation: dict[str, Any]) -> set[int]:
    """The error statuses one operation can answer, from its shape and ``EXTRA``."""
    if (method, path) in PUBLIC:
        return set()
    found = {401, 503}  # credentials, then the database behind them
    if operation.get("parameters") or "requestBody" in operation:
        found |= {400, 422}
    if "{" in path:
        found.add(404)
    if path.startswith(ADMIN_PREFIX):
        found |= {403, 429}  # the admin role; repeated wrong passwords
        if method in ("post", "put", "patch"):
            found.add(409)
    found |= EXTRA.get((method, path), frozenset())
    return found


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def document_errors(doc: dict[str, Any]) -> dict[str, Any]:
    """Rewrite ``doc`` (an ``app.openapi()`` result) in place so its errors are the sent ones,
    and the bodies the server reads from the stream are documented."""
    error = schema_ref(doc, ErrorResponse)
    for path, item in doc.get("paths", {}).items():
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            key = (method, path)
            if key in STREAMED_BODIES and "requestBody" not in operation:
                model = STREAMED_BODIES[key]
                content = (
                    _json(schema_ref(doc, model)) if model is not None
                    else {"application/octet-stream": {"schema": _BINARY}}
                )
                operation["requestBody"] = {"required": True, "content": content}
            responses: dict[str, Any] = operation.setdefault("responses", {})
            answer = ANSWERS.get(key)
            if answer is not None:
                ok = responses.setdefault("200", {"description": "Successful Response"})
                ok["content"] = answer if isinstance(answer, dict) else _json(
                    schema_ref(doc, answer)
                )
            for status in sorted(error_statuses(method, path, operation)):
                responses[str(status)] = {
                    "description": DESCRIPTIONS.get(status, "Error"), "content": _json(error)
                }
    schemas = doc["components"]["schemas"]
    for name in _FASTAPI_ERRORS:
        schemas.pop(name, None)
    return doc


def install(app: FastAPI) -> None:
    """Serve ``document_errors`` of the generated document, built once like FastAPI's own."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
