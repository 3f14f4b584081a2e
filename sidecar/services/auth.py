"""Logging in on the tablet: offline, from the cached argon2 hashes, with lockout per user and
client, a slowdown across clients, and a supervisor's unlock (rules in ``domain.lockout``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from schema import device as d
from schema.types import utcnow
from sidecar import audit, security
from sidecar.domain import lockout
from sidecar.domain.access import ROLES
from sidecar.errors import Conflict, InvalidInput, Locked, NotFound, Unauthorized
from sidecar.settings import Settings


def _default_key() -> str:
    # The process's key as configured (KENSA_SIGNING_KEY or the key file); the API passes the
    # one it loaded at start, the command line and tests get it here.
    return security.signing_key(Settings())


@dataclass(frozen=True)
class Login:
    user: d.User
    token: str
    expires_at: datetime


def _locked(until: datetime) -> Locked:
    return Locked(
        f"too many failed attempts; the account is locked until "
        f"{until.isoformat(timespec='seconds')}",
        locked_until=until.isoformat(),
    )


def _source_row(session: Session, user: d.User, source: str) -> d.LoginSource | None:
    return session.get(d.LoginSource, (user.id, source))


def _state(row: d.LoginSource | None) -> lockout.Attempt:
    return (
        lockout.Attempt(row.failed_attempts, row.locked_until) if row else lockout.Attempt(0, None)
    )


def slowdown(
    session: Session, username: str, source: str, now: datetime | None = None
) -> timedelta | None:
    """What a login attempt must wait before it is checked (see ``domain.lockout``): ``None``
    when it goes at once (a source trusted for this user, a source locked for them, which is
    refused at once, or no such user), else the time to wait in the user's turn."""
    now = now or utcnow()
    user = session.exec(select(d.User).where(d.User.username == username)).first()
    if user is None or not user.is_active:
        return None
    row = _source_row(session, user, source)
    if lockout.is_locked(_state(row), now):
        return None
    if lockout.is_trusted(source, row.last_success_at if row else None):
        return None
    return lockout.slowdown(user.failed_attempts)


def login(
    session: Session,
    username: str,
    password: str,
    now: datetime | None = None,
    *,
    key: str | None = None,
    source: str = lockout.UNKNOWN_SOURCE,
) -> Login:
    """Check a password offline; failures count per user and source (``domain.lockout``).

    The failure counts must survive the error this raises: the caller commits its unit of work
    before answering (see the API)."""
    now = now or utcnow()
    user = session.exec(select(d.User).where(d.User.username == username)).first()
    if user is None or not user.is_active:
        security.burn_verification(password)
        _audit_failure(
            session, user, username, source, "unknown_user" if user is None else "inactive"
        )
        raise Unauthorized("wrong username or password", code="bad_credentials")
    assert user.id is not None
    row = _source_row(session, user, source)
    state = _state(row)
    if lockout.is_locked(state, now):
        assert state.locked_until is not None
        _audit_failure(session, user, username, source, "locked")
        raise _locked(state.locked_until)
    if row is None:
        row = d.LoginSource(user_id=user.id, source=source)
    if not security.verify_password(user.password_hash, password):
        state = lockout.after_failure(state, now)
        row.failed_attempts, row.locked_until = state.failed_attempts, state.locked_until
        row.last_failed_at = now
        user.failed_attempts += 1
        session.add_all([row, user])
        _forget_old_sources(session, user.id, now)
        _audit_failure(session, user, username, source, "bad_password")
        if state.locked_until is not None:
            audit.record(
                session,
                entity="user",
                entity_id=user.username,
                action="lockout",
                detail={"source": source, "locked_until": state.locked_until.isoformat()},
                actor=audit.Actor.of(user),
            )
            raise _locked(state.locked_until)
        raise Unauthorized(
            "wrong username or password",
            code="bad_credentials",
            attempts_left=lockout.MAX_FAILURES - state.failed_attempts,
        )
    state = lockout.after_success()
    row.failed_attempts, row.locked_until = state.failed_attempts, state.locked_until
    # "unknown" is never trusted however often it succeeds (lockout.is_trusted); recording the
    # success is harmless.
    row.last_success_at = now
    user.failed_attempts, user.locked_until, user.last_login_at = 0, None, now
    session.add_all([row, user])
    expires = now + security.LOGIN_TTL
    token = security.issue_login_token(
        key or _default_key(), security.LoginClaims(user.id, expires, user.version)
    )
    audit.record(
        session,
        entity="user",
        entity_id=user.username,
        action="login",
        detail={"source": source},
        actor=audit.Actor.of(user),
    )
    return Login(user=user, token=token, expires_at=expires)


def _audit_failure(
    session: Session, user: d.User | None, username: str, source: str, why: str
) -> None:
    """A failed login's entry: it commits with the failure counts (the caller commits before
    answering), and names the user tried even when there is no such user."""
    actor = audit.Actor.of(user) if user is not None else audit.Actor(None, None, username, None)
    audit.record(
        session,
        entity="user",
        entity_id=username,
        action="login_failed",
        detail={"source": source, "why": why},
        actor=actor,
    )


def _forget_old_sources(session: Session, user_id: int, now: datetime) -> None:
    s = d.LoginSource
    stale = session.exec(
        select(s).where(
            s.user_id == user_id,
            col(s.last_success_at).is_(None),
            col(s.last_failed_at) < now - lockout.FORGET_AFTER,
        )
    ).all()
    for row in stale:
        trusted = lockout.is_trusted(row.source, row.last_success_at)
        if lockout.forgotten(_state(row), row.last_failed_at, trusted, now):
            session.delete(row)


def unlock(session: Session, username: str) -> d.User:
    """A supervisor lifts every lock and slowdown of ``username``; trusted sources stay trusted."""
    user = session.exec(select(d.User).where(d.User.username == username)).first()
    if user is None:
        raise NotFound(f"no user {username} on this tablet", username=username)
    for row in session.exec(select(d.LoginSource).where(d.LoginSource.user_id == user.id)).all():
        row.failed_attempts, row.locked_until = 0, None
        session.add(row)
    user.failed_attempts, user.locked_until = 0, None
    session.add(user)
    audit.record(session, entity="user", entity_id=user.username, action="unlock")
    return user


def current_user(
    session: Session, token: str, now: datetime | None = None, *, key: str | None = None
) -> d.User:
    now = now or utcnow()
    claims = security.read_login_token(key or _default_key(), token, now)
    user = session.get(d.User, claims.user_id)
    if user is None or not user.is_active or user.version != claims.user_version:
        raise Unauthorized(
            "the login is no longer valid; please log in again", code="login_invalid"
        )
    return user


def logout(session: Session, user: d.User) -> None:
    # Tokens carry the user's version: bumping it ends every login of this user on this tablet.
    user.version += 1
    session.add(user)
    audit.record(
        session, entity="user", entity_id=user.username, action="logout", actor=audit.Actor.of(user)
    )


def add_user(
    session: Session,
    username: str,
    password: str,
    *,
    role: str = "inspector",
    full_name: str | None = None,
    email: str | None = None,
) -> d.User:
    """A device-only user, for a tablet that works without a server."""
    username = username.strip()
    if not username or len(username) > 150:
        raise InvalidInput("a username needs 1 to 150 characters", field="username")
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}", field="role")
    if len(password) < 8:
        raise InvalidInput("a password needs at least 8 characters", field="password")
    if session.exec(select(d.User).where(d.User.username == username)).first() is not None:
        raise Conflict(f"user {username} already exists", code="user_exists")
    user = d.User(
        username=username,
        password_hash=security.hash_password(password),
        role=role,
        full_name=full_name,
        email=email,
    )
    session.add(user)
    session.flush()
    audit.record(
        session, entity="user", entity_id=user.username, action="insert", detail={"role": role}
    )
    return user
