from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Header, Path, Request

from sidecar.api import views
from sidecar.api.deps import CurrentUser, DbDep, SigningKeyDep
from sidecar.api.schemas import LoginCreate, LoginPublic, UserPublic
from sidecar.domain import lockout
from sidecar.errors import InvalidInput, Locked, Unauthorized
from sidecar.services import auth

router = APIRouter(prefix="/auth", tags=["auth"])
users_router = APIRouter(prefix="/users", tags=["auth"])

CLIENT_HEADER = "X-Kensa-Client"


class LoginTurns:
    """Untrusted login attempts for one user go one at a time (see ``domain.lockout``), so the
    slowdown limits guessing however many sources and connections it comes from. Waiting is a
    coroutine, not a thread; past ``MAX_WAITING`` an attempt is refused at once."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiting: dict[str, int] = {}

    @asynccontextmanager
    async def turn(self, username: str) -> AsyncIterator[None]:
        if self._waiting.get(username, 0) >= lockout.MAX_WAITING:
            raise Locked(
                "too many logins for this user are waiting; try again in a minute",
                code="login_busy",
            )
        lock = self._locks.setdefault(username, asyncio.Lock())
        self._waiting[username] = self._waiting.get(username, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._waiting[username] -= 1
            if not self._waiting[username]:  # nobody holds or waits: made-up names do not pile up
                del self._waiting[username], self._locks[username]


def _turns(request: Request) -> LoginTurns:
    # Made on first use, on the event loop (one thread): no race between two first logins.
    turns: LoginTurns | None = getattr(request.app.state, "login_turns", None)
    if turns is None:
        turns = request.app.state.login_turns = LoginTurns()
    return turns


@router.post("/login")
async def login(
    body: LoginCreate,
    request: Request,
    db: DbDep,
    key: SigningKeyDep,
    x_kensa_client: Annotated[str | None, Header(alias=CLIENT_HEADER)] = None,
) -> LoginPublic:
    """Log in offline. Failures lock the user at the client they come from (``X-Kensa-Client``,
    an id the UI makes once per install; none counts as ``unknown``), and slow down attempts
    from clients that never logged this user in."""
    try:
        source = lockout.source_of(x_kensa_client)
    except ValueError as exc:
        raise InvalidInput(str(exc), field=CLIENT_HEADER) from exc

    def wait() -> timedelta | None:
        with db.read() as session:
            return auth.slowdown(session, body.username, source)

    def attempt() -> LoginPublic:
        failure: Unauthorized | Locked | None = None
        with db.atomic() as session:
            try:
                result = auth.login(session, body.username, body.password, key=key, source=source)
            except (Unauthorized, Locked) as exc:
                # Commit the failure count before answering, or lockout would never trigger.
                failure = exc
        if failure is not None:
            raise failure
        return LoginPublic(
            token=result.token, expires_at=result.expires_at, user=views.user(result.user)
        )

    if await asyncio.to_thread(wait) is None:
        return await asyncio.to_thread(attempt)
    async with _turns(request).turn(body.username):
        # Read again in turn: the attempts that went before may have failed meanwhile.
        delay = await asyncio.to_thread(wait)
        if delay:
            await asyncio.sleep(delay.total_seconds())
        return await asyncio.to_thread(attempt)


@router.post("/logout", status_code=204)
def logout(user: CurrentUser, db: DbDep) -> None:
    with db.atomic() as session:
        auth.logout(session, user)


@router.get("/me")
def me(user: CurrentUser) -> UserPublic:
    return views.user(user)


@users_router.post("/{username}/unlock")
def unlock(
    username: Annotated[str, Path(min_length=1, max_length=150)], db: DbDep, _: CurrentUser
) -> UserPublic:
    """A supervisor or an admin (``users`` in ``domain.access``) lifts a user's lockout and
    slowdown at every client."""
    with db.atomic() as session:
        return views.user(auth.unlock(session, username))
