"""Dependencies as named types: ``DbDep``, ``SettingsDep``, ``CurrentUser``, ``AdminUser``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from schema import device as d
from schema.db import Database
from sidecar.errors import Forbidden, Unauthorized
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


def get_current_user(
    db: DbDep,
    x_kensa_session: Annotated[str | None, Header(alias=SESSION_HEADER)] = None,
) -> d.User:
    """The logged-in inspector, from the login token in the X-Kensa-Session header."""
    if not x_kensa_session:
        raise Unauthorized("log in first", code="login_required")
    # A read transaction: checking a login must not queue behind writers for SQLite's lock.
    with db.read() as session:
        key = auth.existing_signing_key(session)
        if key is not None:
            return auth.current_user(session, x_kensa_session, key=key)
    with db.atomic() as session:  # no key yet: no login was ever issued; make one, refuse this
        return auth.current_user(session, x_kensa_session)


CurrentUser = Annotated[d.User, Depends(get_current_user)]


def get_admin_user(user: CurrentUser) -> d.User:
    """The logged-in user, only when a supervisor (role ``admin``): 401 without a login, 403 for
    anyone else."""
    if user.role != "admin":
        raise Forbidden("only a supervisor may do this", code="admin_required")
    return user


AdminUser = Annotated[d.User, Depends(get_admin_user)]
