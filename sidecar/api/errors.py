"""One error shape for every failure: ``{"error": {"code", "message", "detail"}}``.

Domain errors map to HTTP by their class; validation errors become 422 with the fields named;
anything unexpected is logged with its traceback and answered as a plain 500, never with a trace.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from schema.db import Database
from sidecar import audit
from sidecar.errors import KensaError

log = logging.getLogger("kensa.api")


def error_response(status: int, code: str, message: str, detail: Any = None) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "detail": detail}}
    return JSONResponse(jsonable_encoder(body), status_code=status)


async def _kensa(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, KensaError)
    if exc.status_code == 403:
        await run_in_threadpool(_audit_refusal, request, exc.code)
    return error_response(exc.status_code, exc.code, exc.message, exc.detail or None)


def _audit_refusal(request: Request, code: str) -> None:
    """A refused action is an audit entry, in a unit of work of its own: the request's own
    rolled back. Failing to write it is logged; the caller still gets their 403."""
    db: Database | None = getattr(request.app.state, "db", None)
    if db is None:
        return
    user = getattr(request.state, "user", None)
    route = getattr(request.scope.get("route"), "path", None)
    try:
        with db.atomic() as session:
            audit.record(
                session,
                entity="request",
                entity_id=None,
                action="refused",
                detail={
                    "code": code,
                    "method": request.method,
                    "route": route,
                    "path": request.url.path[:500],
                    "path_params": {k: str(v)[:100] for k, v in request.path_params.items()},
                },
                actor=audit.Actor.of(user) if user is not None else audit.NOBODY,
            )
    except Exception:
        log.exception("could not record the refusal of %s %s", request.method, request.url.path)


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = [
        {"field": ".".join(str(p) for p in e.get("loc", ())[1:]) or "body", "problem": e.get("msg")}
        for e in exc.errors()
    ]
    names = ", ".join(f["field"] for f in fields[:5])
    return error_response(422, "validation_error", f"invalid request: {names}", fields)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


async def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "something went wrong inside kensa; see its log")


def install(app: FastAPI) -> None:
    app.add_exception_handler(KensaError, _kensa)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
