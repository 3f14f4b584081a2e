from __future__ import annotations

from fastapi import APIRouter

from sidecar.api import views
from sidecar.api.deps import CurrentUser, DbDep
from sidecar.api.schemas import LoginCreate, LoginPublic, UserPublic
from sidecar.errors import Locked, Unauthorized
from sidecar.services import auth

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/login")
def login(body: LoginCreate, db: DbDep) -> LoginPublic:
    failure: Unauthorized | Locked | None = None
    with db.atomic() as session:
        try:
            result = auth.login(session, body.username, body.password)
        except (Unauthorized, Locked) as exc:
            # Commit the failure count before answering, or lockout would never trigger.
            failure = exc
    if failure is not None:
        raise failure
    return LoginPublic(
        token=result.token, expires_at=result.expires_at, user=views.user(result.user)
    )


@router.post("/logout", status_code=204)
def logout(user: CurrentUser, db: DbDep) -> None:
    with db.atomic() as session:
        auth.logout(session, user)


@router.get("/me")
def me(user: CurrentUser) -> UserPublic:
    return views.user(user)
