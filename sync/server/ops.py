"""What a supervisor and a monitoring system ask of a server process.

- ``GET /livez``: the process answers (no database). A failing liveness probe restarts the
  process, so it must not fail because PostgreSQL is down: a restart would not help.
- ``GET /readyz``: the database answers and its schema is at the revision this server was built
  for; 503 otherwise, naming which. A load balancer sends no requests to a server that is not
  ready, and one started against an unmigrated database is not ready until it is migrated.
- ``GET /metrics``: Prometheus' text format (``sync.server.metrics``), with its own bearer token,
  ``KENSA_SERVER_METRICS_TOKEN``, and answered 404 while none is set. Not the admin API's
  credentials: those are an admin's password, which may change every master, and a scraper's
  configuration is no place for it; the token opens these figures only. Not open either: the
  sync API faces the factory network, and the figures name every tablet and when it last spoke.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from schema.migrate import head_revision
from schema.types import utcnow
from sync.errors import AuthError
from sync.server.db_faults import describe
from sync.server.metrics import CONTENT_TYPE, PROCESS, read_figures, render
from sync.server.state import ServerState, server_state

log = logging.getLogger(__name__)
router = APIRouter(tags=["operations"])
State = Annotated[ServerState, Depends(server_state)]


@functools.cache
def server_head() -> str:
    """The schema revision this server's code needs (read once from its migration scripts)."""
    return head_revision("server")


def readiness(state: ServerState) -> tuple[bool, str, str, dict[str, Any]]:
    """(ready, code, message, detail)."""
    head = server_head()
    try:
        with state.db.read() as session:
            revisions = [str(r) for r in session.execute(
                sa.text("SELECT version_num FROM alembic_version")).scalars()]
    except SQLAlchemyError as exc:
        return (False, "database_unavailable", "the server database does not answer",
                {"reason": describe(exc)})
    if revisions != [head]:
        return (False, "migrations_behind",
                "the server database is not at the schema revision this server needs "
                "(kensa-server db upgrade)", {"revision": revisions, "head": head})
    return True, "ready", "ready", {"revision": head}


@router.get("/livez", include_in_schema=False)
def livez() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", include_in_schema=False, response_model=None)
def readyz(state: State) -> JSONResponse | dict[str, Any]:
    ready, code, message, detail = readiness(state)
    if ready:
        return {"status": "ready", **detail}
    log.warning("not ready: %s: %s", message, detail)
    PROCESS.error(code, 503)
    return JSONResponse(status_code=503, content={
        "error": {"code": code, "message": message, "detail": detail}})


def _token_matches(given: str, expected: str) -> bool:
    # Digests first: compare_digest would otherwise tell the expected token's length.
    return hmac.compare_digest(hashlib.sha256(given.encode("utf-8")).digest(),
                               hashlib.sha256(expected.encode("utf-8")).digest())


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, state: State) -> PlainTextResponse:
    expected = state.settings.metrics_token
    if expected is None or not expected.get_secret_value():
        raise StarletteHTTPException(
            404, "metrics are off: set KENSA_SERVER_METRICS_TOKEN to serve them")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not _token_matches(given.strip(),
                                                        expected.get_secret_value()):
        raise AuthError("metrics need the metrics bearer token", code="metrics_unauthorized")
    try:
        with state.db.read() as session:
            figures = read_figures(session, utcnow())
    except SQLAlchemyError as exc:
        log.warning("metrics without the database's figures: %s", describe(exc))
        figures = None
    return PlainTextResponse(render(figures, PROCESS), media_type=CONTENT_TYPE)
