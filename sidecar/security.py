"""Passwords, the per-launch API token, and the login tokens the sidecar issues.

Login tokens are signed (HMAC-SHA256 with a key kept in the device database), not stored: they
survive a sidecar restart — an inspector whose tablet died mid-inspection is still logged in
when it comes back — and they expire on their own after one shift.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from sidecar.errors import Unauthorized

_hasher = PasswordHasher()

LOGIN_TTL = timedelta(hours=12)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def _dummy_hash() -> str:
    # Made on first use, not at import: hashing costs a third of a second of start-up.
    return _hasher.hash(secrets.token_urlsafe(16))


def burn_verification(password: str) -> None:
    """Verify against a real hash when the username is unknown, so that an unknown user costs as
    much time as a wrong password and the timing does not tell which usernames exist."""
    verify_password(_dummy_hash(), password)


def token_matches(expected: str, presented: str) -> bool:
    return hmac.compare_digest(expected.encode(), presented.encode())


def new_signing_key() -> str:
    return secrets.token_urlsafe(32)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class LoginClaims:
    user_id: int
    expires_at: datetime
    user_version: int


def issue_login_token(key: str, claims: LoginClaims) -> str:
    body = _b64(
        json.dumps(
            {"u": claims.user_id, "e": int(claims.expires_at.timestamp()), "v": claims.user_version}
        ).encode()
    )
    sig = _b64(hmac.new(key.encode(), body.encode(), hashlib.sha256).digest())
    return f"{body}.{sig}"


def read_login_token(key: str, token: str, now: datetime) -> LoginClaims:
    try:
        body, sig = token.split(".", 1)
        expected = _b64(hmac.new(key.encode(), body.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(expected, sig):
            raise ValueError("bad signature")
        data = json.loads(_unb64(body))
        claims = LoginClaims(
            user_id=int(data["u"]),
            expires_at=datetime.fromtimestamp(int(data["e"]), tz=now.tzinfo),
            user_version=int(data["v"]),
        )
    except (ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise Unauthorized(
            "the login is not valid; please log in again", code="login_invalid"
        ) from exc
    if claims.expires_at <= now:
        raise Unauthorized("the login has expired; please log in again", code="login_expired")
    return claims
