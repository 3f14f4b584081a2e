"""Dependencies as named types (``DbDep``, ``SettingsDep``, ``CurrentUser``, ``AdminUser``), and
the one place the API applies ``domain.access`` to an inspection (``authorize``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from sqlmodel import Session

from schema import device as d
from schema.db import Database
from sidecar.domain import access
from sidecar.domain.access import Action
from sidecar.errors import Forbidden, NotFound, Unauthorized
from sidecar.services import auth
from sidecar.settings import Settings

SESSION_HEADER = "X-Kensa-Session"


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


DbDep = Annotated[Database, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_signing_key(request: Request) -> str:
    key: str = request.app.state.signing_key
    return key


SigningKeyDep = Annotated[str, Depends(get_signing_key)]


def get_current_user(
    db: DbDep,
    key: SigningKeyDep,
    x_kensa_session: Annotated[str | None, Header(alias=SESSION_HEADER)] = None,
) -> d.User:
    """The logged-in inspector, from the login token in the X-Kensa-Session header."""
    if not x_kensa_session:
        raise Unauthorized("log in first", code="login_required")
    # A read transaction: checking a login must not queue behind writers for SQLite's lock.
    with db.read() as session:
        return auth.current_user(session, x_kensa_session, key=key)


CurrentUser = Annotated[d.User, Depends(get_current_user)]


def get_admin_user(user: CurrentUser) -> d.User:
    """The logged-in user, only when a supervisor (role ``admin``): 401 without a login, 403 for
    anyone else."""
    if user.role != "admin":
        raise Forbidden("only a supervisor may do this", code="admin_required")
    return user


AdminUser = Annotated[d.User, Depends(get_admin_user)]


def authorize(
    session: Session, user: d.User, session_id: str, action: Action
) -> d.InspectionSession:
    """The inspection ``session_id`` if ``user`` may do ``action`` on it (rules in
    ``domain.access``); the one place the API applies them.

    Another's inspection the caller may not even read answers exactly as a missing one (404),
    so inspection ids cannot be probed; one the caller can read but not change (a supervisor
    and another's verdicts) answers 403, since the caller already sees that it exists.
    """
    row = session.get(d.InspectionSession, session_id)
    if row is None or not access.may(user.role, user.id, row.user_id, Action.READ):
        raise NotFound(f"no inspection with id {session_id}", session_id=session_id)
    if not access.may(user.role, user.id, row.user_id, action):
        raise Forbidden(
            f"inspection {session_id} belongs to another inspector; only they may change it",
            code="not_your_inspection",
            session_id=session_id,
        )
    return row


_DISCARDS = frozenset({"discard", "cancel", "restart"})


def action_of(method: str, route_path: str) -> Action:
    """What a request on an inspection's route does: reads are GETs; ending it unfinished is
    one of the discard routes; posting a pipeline's result is its own; every other POST
    changes it."""
    if method in ("GET", "HEAD"):
        return Action.READ
    last = route_path.rstrip("/").rsplit("/", 1)[-1]
    if last in _DISCARDS:
        return Action.DISCARD
    if last == "ai-results":
        return Action.RECORD_AI
    return Action.WORK


def check_session_access(request: Request, db: DbDep, user: CurrentUser) -> None:
    """Router dependency: every route with a ``{session_id}`` acts only for a user who may.

    Checked in its own read transaction before the route's: who owns an inspection never
    changes, so the answer cannot go stale before the route's write."""
    session_id = request.path_params.get("session_id")
    if session_id is None:
        return
    route_path = getattr(request.scope.get("route"), "path", request.url.path)
    with db.read() as session:
        authorize(session, user, str(session_id), action_of(request.method, route_path))


SessionAccess = Depends(check_session_access)
