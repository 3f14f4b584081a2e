"""First run: a store with no users and no server connection, and the two ways out of it.

    GET  /setup              {"first_run": bool}: the UI shows the setup screen instead of the
                             login while this is true
    POST /setup/connect      {server_url, code, server_pin?} or {qr}: trade a one-time enrollment
                             code (``kensa-server device add NAME --qr``) for the device token,
                             connect, and pull the users, roles and masters; the login follows
    POST /setup/local-admin  {username, password?}: a stand-alone tablet's administrator; without
                             a password one is made and returned, once

All three need only the launch token (there is nobody to log in yet), so once a user exists or
the tablet is connected the two POSTs answer 409 ``setup_done``: from then on changing the
server is the settings screen's, for an administrator's login.
"""

from __future__ import annotations

import secrets
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlmodel import Session, func, select

from schema import device as d
from schema.db import Database
from sidecar import errors
from sidecar.api.deps import DbDep
from sidecar.errors import Conflict, InvalidInput, KensaError
from sync.device import config
from sync.device.service import RunReport, SyncService
from sync.enrollment_code import normalise, parse_qr
from sync.errors import RateLimited, SyncError

router = APIRouter(prefix="/setup", tags=["setup"])

_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
# The made password: no 0/O, 1/l/I, typeable from a printed slip with gloves.
_PASSWORD_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ"  # noqa: S105
MIN_PASSWORD = 10


class SetupState(BaseModel):
    first_run: bool


class ConnectSetup(BaseModel):
    model_config = ConfigDict(extra="forbid")

    server_url: str | None = Field(default=None, max_length=500, pattern=_PRINTABLE)
    code: str | None = Field(default=None, max_length=40, pattern=_PRINTABLE, repr=False)
    # The enrollment QR's text, as the scan field read it: carries both of the above.
    qr: str | None = Field(default=None, max_length=1000, pattern=_PRINTABLE, repr=False)
    server_pin: str | None = Field(default=None, max_length=200, pattern=_PRINTABLE)

    @model_validator(mode="after")
    def _either(self) -> ConnectSetup:
        if self.qr is None and not (self.server_url and self.code):
            raise ValueError("give server_url and code, or the enrollment QR's text as qr")
        return self


class ConnectedSetup(BaseModel):
    server_url: str
    device_name: str
    users: int
    # The first pull's outcome: users arrive with it; when it failed the login screen still
    # follows and the scheduler keeps pulling.
    pulled: bool
    pull_error: str | None = None


class LocalAdminIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=150, pattern=_PRINTABLE)
    password: str | None = Field(default=None, max_length=200, repr=False)


class LocalAdminOut(BaseModel):
    username: str
    role: str
    # Only when the sidecar made it: shown on the setup screen once, never again.
    password: str | None = None


def _first_run(session: Session) -> bool:
    users = session.exec(select(func.count()).select_from(d.User)).one()
    return users == 0 and config.load(session) is None


def _still_first_run(db: Database) -> None:
    with db.read() as session:
        if not _first_run(session):
            raise Conflict("this tablet is set up; log in (an administrator changes the server "
                           "in the settings)", code="setup_done")


def _sync(request: Request) -> SyncService:
    service = getattr(request.app.state, "sync", None)
    if not isinstance(service, SyncService):
        raise Conflict("this sidecar runs without sync; work stand-alone",
                       code="sync_disabled")
    return service


def _password_problem(username: str, password: str) -> str | None:
    if len(password) < MIN_PASSWORD:
        return f"the administrator's password needs at least {MIN_PASSWORD} characters"
    if username.strip().lower() in password.lower():
        return "the password must not contain the username"
    if len(set(password)) < 5:
        return "the password needs at least 5 different characters"
    return None


@router.get("")
def setup_state(db: DbDep) -> SetupState:
    with db.read() as session:
        return SetupState(first_run=_first_run(session))


@router.post("/connect")
async def setup_connect(
    body: ConnectSetup, db: DbDep, service: Annotated[SyncService, Depends(_sync)]
) -> ConnectedSetup:
    _still_first_run(db)
    try:
        if body.qr is not None:
            url, code = parse_qr(body.qr)
        else:
            assert body.server_url is not None and body.code is not None
            url, code = body.server_url, normalise(body.code)
        result = await run_in_threadpool(service.enroll, url, code, pin=body.server_pin)
    except RateLimited as exc:
        raise errors.TooManyAttempts(exc.message, code="enrollment_throttled",
                                     retry_after=exc.retry_after) from exc
    except SyncError as exc:
        raise _translate(exc) from exc
    report = await run_in_threadpool(_first_pull, service)
    with db.read() as session:
        users = session.exec(select(func.count()).select_from(d.User)).one()
    return ConnectedSetup(
        server_url=result.server_url, device_name=result.device_name, users=users,
        pulled=report.ok, pull_error=None if report.ok else report.error,
    )


def _first_pull(service: SyncService, wait_s: float = 60.0) -> RunReport:
    """A run that has pulled since the connection: the scheduler, woken by the connect, may
    be in a run already (``busy``); wait for it and run once more, so the users are here."""
    deadline = time.monotonic() + wait_s
    report = service.run_once()
    while report.skipped == "busy" and time.monotonic() < deadline:
        time.sleep(0.2)
        report = service.run_once()
    return report


def _translate(exc: SyncError) -> KensaError:
    """The server's refusal in the sidecar's error tree, with the server's own code. A wrong
    code is the input's fault (400), never a 401 the UI would take for its own login."""
    if exc.status_code in (409, 410):
        return errors.Conflict(exc.message, code=exc.code)
    if 400 <= exc.status_code < 500:
        return errors.InvalidInput(exc.message, code=exc.code)
    return errors.ServerUnreachable(exc.message, code=exc.code)


@router.post("/local-admin", status_code=201)
def setup_local_admin(body: LocalAdminIn, db: DbDep) -> LocalAdminOut:
    from sidecar.services import auth

    made = body.password is None
    password = body.password or "".join(
        secrets.choice(_PASSWORD_ALPHABET) for _ in range(14))
    problem = _password_problem(body.username, password)
    if problem is not None:
        raise InvalidInput(problem, code="password_rules", field="password",
                           min_length=MIN_PASSWORD)
    with db.atomic() as session:
        # Checked again inside the write: two screens racing make one administrator.
        if not _first_run(session):
            raise Conflict("this tablet is set up; log in", code="setup_done")
        user = auth.add_user(session, body.username, password, role="admin")
        return LocalAdminOut(username=user.username, role=user.role,
                             password=password if made else None)
