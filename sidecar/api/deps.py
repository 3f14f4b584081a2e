"""Dependencies as named types (``DbDep``, ``SettingsDep``, ``CurrentUser``), the app-wide gate
that applies the route table of ``api.permissions`` (``enforce``), and the one place the API
applies ``domain.access`` to an inspection (``authorize``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from sqlmodel import Session

from schema import device as d
from schema.db import Database
from sidecar.api import permissions
from sidecar.api.permissions import Open
from sidecar.domain import access
from sidecar.domain.access import Action
from sidecar.errors import Forbidden, NotFound, Unauthorized
from sidecar.keys import DataKey
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


def get_data_key(request: Request) -> DataKey | None:
    key: DataKey | None = request.app.state.data_key
    return key


# None only for a plaintext development store (KENSA_PLAINTEXT=1).
DataKeyDep = Annotated[DataKey | None, Depends(get_data_key)]


def _login(request: Request, db: Database, key: str, token: str | None) -> d.User:
    """The user of the login token, read once per request (``enforce`` and the route share it)."""
    cached: d.User | None = getattr(request.state, "user", None)
    if cached is not None:
        return cached
    if not token:
        raise Unauthorized("log in first", code="login_required")
    # A read transaction: checking a login must not queue behind writers for SQLite's lock.
    with db.read() as session:
        user = auth.current_user(session, token, key=key)
    request.state.user = user
    return user


def get_current_user(
    request: Request,
    db: DbDep,
    key: SigningKeyDep,
    x_kensa_session: Annotated[str | None, Header(alias=SESSION_HEADER)] = None,
) -> d.User:
    """The logged-in user, from the login token in the X-Kensa-Session header."""
    return _login(request, db, key, x_kensa_session)


CurrentUser = Annotated[d.User, Depends(get_current_user)]


def enforce(request: Request) -> None:
    """App-wide dependency: the route's entry in ``permissions.ROUTES``. A route open to the
    launch token passes (the Guard checked it); any other needs a login, and one with an action
    a role that may do it at all (403 ``forbidden_role`` naming the action otherwise). The
    header is read here rather than declared, so the document keeps it on the routes that
    take it."""
    needed = permissions.required(request)
    if needed in (Open.PUBLIC, Open.LAUNCH):
        return
    db: Database = request.app.state.db
    key: str = request.app.state.signing_key
    user = _login(request, db, key, request.headers.get(SESSION_HEADER))
    if isinstance(needed, Action):
        permissions.check_role(user.role, needed)


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


def action_of(method: str, route_path: str) -> Action:
    """What a request on an inspection's route does, from the route table."""
    needed = permissions.entry(method, route_path)
    if not isinstance(needed, Action):
        raise Forbidden("this route has no permission entry", code="forbidden_role")
    return needed


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
