"""Logging in on the tablet: offline, from the cached argon2 hashes, with lockout."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from schema import device as d
from schema.types import utcnow
from sidecar import security
from sidecar.domain import lockout
from sidecar.errors import Conflict, InvalidInput, Locked, Unauthorized

SIGNING_KEY = "auth.signing_key"
ROLES = ("inspector", "admin")


def signing_key(session: Session) -> str:
    """The device's key for login tokens, made on first use and kept in system_config."""
    row = session.get(d.SystemConfig, SIGNING_KEY)
    if row is None:
        row = d.SystemConfig(key=SIGNING_KEY, value=security.new_signing_key())
        session.add(row)
        session.flush()
    return row.value


@dataclass(frozen=True)
class Login:
    user: d.User
    token: str
    expires_at: datetime


def login(session: Session, username: str, password: str, now: datetime | None = None) -> Login:
    now = now or utcnow()
    user = session.exec(select(d.User).where(d.User.username == username)).first()
    if user is None or not user.is_active:
        security.burn_verification(password)
        raise Unauthorized("wrong username or password", code="bad_credentials")
    state = lockout.Attempt(user.failed_attempts, user.locked_until)
    if lockout.is_locked(state, now):
        assert user.locked_until is not None
        raise Locked(
            f"too many failed attempts; the account is locked until "
            f"{user.locked_until.isoformat(timespec='seconds')}",
            locked_until=user.locked_until.isoformat(),
        )
    if not security.verify_password(user.password_hash, password):
        state = lockout.after_failure(state, now)
        user.failed_attempts, user.locked_until = state.failed_attempts, state.locked_until
        session.add(user)
        # The failure count must survive the error response: the caller commits it (see the API).
        if state.locked_until is not None:
            raise Locked(
                f"too many failed attempts; the account is locked until "
                f"{state.locked_until.isoformat(timespec='seconds')}",
                locked_until=state.locked_until.isoformat(),
            )
        raise Unauthorized(
            "wrong username or password",
            code="bad_credentials",
            attempts_left=lockout.MAX_FAILURES - state.failed_attempts,
        )
    user.failed_attempts, user.locked_until, user.last_login_at = 0, None, now
    session.add(user)
    expires = now + security.LOGIN_TTL
    assert user.id is not None
    token = security.issue_login_token(
        signing_key(session), security.LoginClaims(user.id, expires, user.version)
    )
    return Login(user=user, token=token, expires_at=expires)


def existing_signing_key(session: Session) -> str | None:
    row = session.get(d.SystemConfig, SIGNING_KEY)
    return row.value if row else None


def current_user(
    session: Session, token: str, now: datetime | None = None, *, key: str | None = None
) -> d.User:
    now = now or utcnow()
    claims = security.read_login_token(key or signing_key(session), token, now)
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
    return user
