"""The sync server's app factory: one FastAPI app per set of settings, nothing built at import.

Errors leave as ``{"error": {"code", "message", "detail"}}`` with the status of their
``sync.errors`` branch. A database the server cannot reach (or that failed in a way that may pass)
is a 503 with ``Retry-After``, so devices back off instead of setting their operations aside; a
value or constraint the database refuses for good is the request's error (422, 409), never a 503
(``sync.server.db_faults``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from sync.errors import RateLimited, SyncError, TransportError
from sync.server import openapi
from sync.server.api_admin import router as admin_router
from sync.server.api_sync import router as sync_router
from sync.server.body_limit import BodyLimit
from sync.server.db_faults import Fault, classify, describe, integrity_error
from sync.server.logs import RequestIdMiddleware
from sync.server.metrics import PROCESS
from sync.server.ops import router as ops_router
from sync.server.settings import ServerSettings
from sync.server.state import ServerState

log = logging.getLogger(__name__)

DB_RETRY_AFTER_S = 5
_HTTP_CODES = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed",
               413: "payload_too_large"}


def _error(status: int, code: str, message: str, detail: dict[str, Any] | None = None,
           headers: dict[str, str] | None = None) -> JSONResponse:
    PROCESS.error(code, status)
    return JSONResponse(
        status_code=status,
        content={"error": {"code": code, "message": message, "detail": detail or {}}},
        headers=headers,
    )


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    settings = settings or ServerSettings()
    state = ServerState.create(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.start()
        try:
            yield
        finally:
            state.stop()

    # The interactive docs and the OpenAPI document only where the settings ask for them.
    docs = settings.api_docs
    app = FastAPI(title="kensa sync server", lifespan=lifespan,
                  openapi_url="/openapi.json" if docs else None,
                  docs_url="/docs" if docs else None, redoc_url="/redoc" if docs else None)
    app.state.kensa = state
    app.include_router(sync_router)
    app.include_router(admin_router)
    app.include_router(ops_router)
    app.add_middleware(BodyLimit)
    app.add_middleware(RequestIdMiddleware, log_access=settings.log_format == "json")
    openapi.install(app)

    @app.exception_handler(SyncError)
    async def sync_error(_: Request, exc: SyncError) -> JSONResponse:
        headers = None
        if isinstance(exc, TransportError | RateLimited) and exc.retry_after:
            headers = {"Retry-After": str(int(exc.retry_after))}
        if exc.status_code >= 500:
            log.warning("%s: %s", exc.code, exc.message)
        return _error(exc.status_code, exc.code, exc.message, exc.detail, headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI's own refusals (no such path or method, a body that is not JSON) leave in the
        # same shape as every other error.
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        headers = dict(exc.headers) if exc.headers else None
        return _error(exc.status_code, code, str(exc.detail), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
            for e in exc.errors()[:10]
        ]
        return _error(422, "invalid_request", "the request does not match the API",
                      {"errors": errors})

    @app.exception_handler(DBAPIError)
    async def database_error(_: Request, exc: DBAPIError) -> JSONResponse:
        fault = classify(exc)
        if fault is Fault.PERMANENT:
            # The request's own values: the same request fails the same way every time, so
            # "try again" would only make a device retry it for ever.
            log.warning("database refused the request: %s", describe(exc))
            if integrity_error(exc):
                return _error(409, "constraint_violation",
                              "the request conflicts with what the server holds",
                              {"reason": describe(exc)})
            return _error(422, "invalid_value", "the database refuses a value of the request",
                          {"reason": describe(exc)})
        headers = {"Retry-After": str(DB_RETRY_AFTER_S)}
        if fault is Fault.TRANSIENT:
            log.warning("database unavailable: %s", describe(exc))
            return _error(503, "database_unavailable", "the server database is unavailable",
                          headers=headers)
        log.error("database error: %s", describe(exc))
        return _error(503, "database_error", "the server database failed", headers=headers)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
