"""The OpenAPI document as the sidecar really answers, errors included.

FastAPI documents each operation's 422 as its own ``HTTPValidationError`` and no other error,
but every failure leaves as ``ErrorPublic`` (``sidecar.api.errors``, the gate in
``sidecar.api.guard``), with statuses no route declares. The UI's typed client is generated
from this document and the API fuzz test holds the running app to it, so it must say what goes
over the wire: each operation lists the error statuses it can answer, each as ``ErrorPublic``.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI

from sidecar.api.guard import PUBLIC_PATHS
from sidecar.api.schemas import ErrorPublic
from sync.device.status import SyncSummary
from sync.openapi_schemas import schema_ref

_FASTAPI_ERRORS = ("HTTPValidationError", "ValidationError")
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")

DESCRIPTIONS = {
    400: "Bad input: a QR payload or an image that cannot be read",
    401: "No or wrong launch token, or no valid login",
    403: "A Host that is not loopback, or a role that may not do this",
    404: "No such record, or one this user may not see",
    409: "The inspection, item or job is not in a state that allows this",
    413: "The request body is over the limit",
    422: "The request does not match this document, or cannot be processed",
    423: "The account is locked after repeated wrong passwords",
    428: "The act needs the user's signature (their password again) with the meaning named",
    429: "Too many wrong enrollment codes: the server asks to wait",
    502: "The sync server refused or could not be reached",
    503: "Sync is not set up in this app",
}

# Photos are read from the request itself (``sidecar.api.uploads``: a multipart field ``file``
# or the raw body), so FastAPI does not see, and cannot document, their bodies.
UPLOADS = frozenset({"/scan", "/sessions/{session_id}/items/{item_id}/images", "/calibrations"})
_BINARY = {"type": "string", "format": "binary"}
UPLOAD_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {"type": "object", "properties": {"file": _BINARY}, "required": ["file"]}
        },
        "application/octet-stream": {"schema": _BINARY},
    },
}

# Photos are served as stored (``sidecar.api.routes_sessions``), not as JSON.
_IMAGE = {"image/*": {"schema": _BINARY}, "application/octet-stream": {"schema": _BINARY}}
FILE_ANSWERS = frozenset({("get", "/images/{image_id}"), ("get", "/images/{image_id}/thumbnail")})

# Where an answer's ids feed the next request (OpenAPI links), by the answer's schema: from an
# inspection just opened to the operations on it and its first item, from a photo or a job to
# the operations on them. A stateful client follows these, and so does the API fuzz test.
LINKED_IDS: dict[str, dict[str, str]] = {
    "SessionPublic": {
        "session_id": "$response.body#/id",
        "item_id": "$response.body#/items/0/item_id",
    },
    "ImagePublic": {"image_id": "$response.body#/id"},
    "JobPublic": {"job_id": "$response.body#/id"},
}
_PATH_PARAM = re.compile(r"\{([a-z_]+)\}")

# What a route answers beyond what its shape implies (see ``error_statuses``), keyed by
# (method, path pattern): the workflow's illegal moves, the login's lockout, the sync service.
_SESSION_MOVE = re.compile(r"^/sessions/\{session_id\}(/items/\{item_id\}/[a-z-]+|/[a-z]+)$")
EXTRA: dict[tuple[str, str], frozenset[int]] = {
    ("post", "/auth/login"): frozenset({423}),
    ("post", "/scan"): frozenset({400, 404}),
    ("post", "/scan/text"): frozenset({400, 404}),
    ("post", "/sessions"): frozenset({400, 404, 409}),
    ("post", "/jobs/{job_id}/cancel"): frozenset({409}),
    ("get", "/sync/status"): frozenset({503}),
    ("post", "/sync/now"): frozenset({503}),
    ("post", "/sync/connect"): frozenset({409, 502, 503}),
    # First run: already set up (409), the server's refusals of the code, or the server away.
    ("post", "/setup/connect"): frozenset({409, 429, 502}),
    ("post", "/setup/local-admin"): frozenset({409}),
}
# Acts that may need a signature (``sidecar.api.signed``): 428 without one, 423 when a wrong
# password locked the user.
SIGNED = frozenset(
    {
        "/sessions/{session_id}/items/{item_id}/verification",
        "/sessions/{session_id}/items/{item_id}/rejudge",
        "/sessions/{session_id}/complete",
        "/sessions/{session_id}/discard",
        "/sessions/{session_id}/cancel",
        "/sessions/{session_id}/restart",
    }
)


def error_statuses(method: str, path: str, operation: dict[str, Any]) -> set[int]:
    """The error statuses one operation can answer, from its shape and ``EXTRA``."""
    found = {403}  # the gate refuses a Host that is not loopback, on every path
    if path in PUBLIC_PATHS:
        return found
    found.add(401)  # the launch token, then (on most routes) the login
    has_body = "requestBody" in operation
    if operation.get("parameters") or has_body:
        # FastAPI's 400 for a body that is not JSON; the checks of ``sidecar.domain`` (400);
        # request validation and what cannot be processed (422).
        found |= {400, 422}
    if has_body:
        found.add(413)
    if "{" in path:
        found.add(404)
    if method == "post" and _SESSION_MOVE.match(path):
        found.add(409)
    found |= EXTRA.get((method, path), frozenset())
    if method == "post" and path in SIGNED:
        found |= {423, 428}
    return found


def document_errors(doc: dict[str, Any]) -> dict[str, Any]:
    """Rewrite ``doc`` (an ``app.openapi()`` result) in place so its errors are the sent ones,
    and the photo uploads' bodies are documented."""
    error = {"application/json": {"schema": schema_ref(doc, ErrorPublic)}}
    for path, item in doc.get("paths", {}).items():
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            if method == "post" and path in UPLOADS:
                operation.setdefault("requestBody", UPLOAD_BODY)
            responses: dict[str, Any] = operation.setdefault("responses", {})
            if (method, path) in FILE_ANSWERS:
                responses["200"]["content"] = _IMAGE
            for status in sorted(error_statuses(method, path, operation)):
                responses[str(status)] = {
                    "description": DESCRIPTIONS.get(status, "Error"), "content": error
                }
    _add_links(doc)
    schemas = doc["components"]["schemas"]
    for name in _FASTAPI_ERRORS:
        schemas.pop(name, None)
    return doc


def _operations(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (path, operation)
        for path, item in doc.get("paths", {}).items()
        for method, operation in item.items()
        if method in _METHODS
    ]


def _add_links(doc: dict[str, Any]) -> None:
    operations = _operations(doc)
    for _, source in operations:
        for status, response in source.get("responses", {}).items():
            schema = response.get("content", {}).get("application/json", {}).get("schema", {})
            ids = LINKED_IDS.get(schema.get("$ref", "").rsplit("/", 1)[-1])
            if not status.startswith("2") or ids is None:
                continue
            links: dict[str, Any] = {}
            for path, target in operations:
                needed = _PATH_PARAM.findall(path)
                if needed and set(needed) <= ids.keys() and "operationId" in target:
                    links[target["operationId"]] = {
                        "operationId": target["operationId"],
                        "parameters": {f"path.{name}": ids[name] for name in needed},
                    }
            if links:
                response["links"] = links


def install(app: FastAPI) -> None:
    """Serve ``document_errors`` of the generated document, built once like FastAPI's own."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = document_errors(generate())
            # The ``sync`` events' data (GET /events): no route returns it as JSON, and the
            # UI's types are generated from this document.
            schema_ref(doc, SyncSummary)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
