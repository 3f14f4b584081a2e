"""Passwords, the per-launch API token, and the login tokens the sidecar issues.

Login tokens are signed (HMAC-SHA256), not stored: they survive a sidecar restart — an inspector
whose tablet died mid-inspection is still logged in when it comes back — and they expire on their
own after one shift.

The signing key is never readable from the data folder: whoever can read that folder (a copied
database, a backup, another account with access to it) could otherwise mint a login for any
user, the supervisor included. The shell may hand it in (``KENSA_SIGNING_KEY``, kept in the OS
keystore); a tablet with a data key keeps it inside its encrypted store (``system_config``),
where it is as safe as the records it guards and travels with none of them in clear; a plaintext
development store falls back to a file only this OS user can read, in the per-user
configuration folder, made on first use.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import logging
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from sidecar.errors import KensaError, Unauthorized
from sidecar.settings import Settings

if TYPE_CHECKING:
    from schema.db import Database

log = logging.getLogger("kensa.security")

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


SIGNING_KEY_MIN = 32  # characters; token_urlsafe(32) makes 43


def signing_key(settings: Settings) -> str:
    """The key login tokens are signed with: the shell's, else the key file (made if missing)."""
    if settings.signing_key is not None:
        key = settings.signing_key.get_secret_value()
        if len(key) < SIGNING_KEY_MIN:
            raise KensaError(
                f"KENSA_SIGNING_KEY needs at least {SIGNING_KEY_MIN} characters",
                code="signing_key_invalid",
            )
        return key
    path = settings.signing_key_path
    if path.resolve().is_relative_to(settings.data_dir.resolve()):
        raise KensaError(
            f"the signing key file {path} must not be inside the data folder "
            f"{settings.data_dir}; set KENSA_CONFIG_DIR elsewhere",
            code="signing_key_invalid",
        )
    try:
        return _read_key(path)
    except FileNotFoundError:
        _create_key(path)
    return _read_key(path)


STORE_ENTRY = "login_signing_key"


def signing_key_in_store(db: Database) -> str:
    """The signing key kept in the encrypted store, made (and audited) on first use."""
    from schema import device as d
    from sidecar import audit

    with db.atomic() as session:
        row = session.get(d.SystemConfig, STORE_ENTRY)
        if row is not None:
            if len(row.value) < SIGNING_KEY_MIN:
                raise KensaError(
                    "the login signing key in the device store is damaged",
                    code="signing_key_invalid",
                )
            return row.value
        key = new_signing_key()
        session.add(d.SystemConfig(key=STORE_ENTRY, value=key))
        audit.record(
            session,
            entity="signing_key",
            entity_id=None,
            action="key_created",
            detail={"kept_in": "device store"},
        )
    return key


# Key files this process made; the sidecar writes each into the audit trail once its database is
# open (``sidecar.audit.record_made_keys``).
MADE_KEYS: list[Path] = []


def _create_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    # Created 0600 from the start (no window in which another account could open it), written
    # whole, then linked into place: a sidecar and `kensa user` starting together cannot leave
    # a half-written key, and the second one to link keeps the first one's key.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(new_signing_key() + "\n")
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        else:
            MADE_KEYS.append(path)
    finally:
        tmp.unlink(missing_ok=True)


def _read_key(path: Path) -> str:
    if os.name == "posix" and path.stat().st_mode & 0o077:
        log.warning("the signing key file %s was readable by others; made it 0600", path)
        path.chmod(0o600)
    try:
        key = path.read_text(encoding="ascii").strip()
    except UnicodeDecodeError:
        key = ""
    if len(key) < SIGNING_KEY_MIN:
        raise KensaError(
            f"the signing key file {path} is damaged; remove it (everyone logs in again)",
            code="signing_key_invalid",
        )
    return key


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
