"""Device credentials: long-lived device tokens, short-lived access tokens.

``kensa-server device add`` prints a device token once; the server keeps only its SHA-256 digest
(a random 256-bit token needs no slow hash: nothing can be guessed from the digest). A device
trades that token at ``/sync/v1/auth`` for an access token that every other sync call carries;
when an access token expires or the server's secret changes, the call answers 401 and the device
simply authenticates again with its device token — the queue is untouched.

Access tokens are ``<device id>.<token generation>.<expiry>.<HMAC-SHA256>``, signed with a secret
kept in ``server_config`` so that they survive a server restart and work across several server
processes. The generation is the device's ``token_generation`` when the token was issued; rotating
or revoking the device token bumps it, and every request checks the token's generation against the
device's current one, so an access token dies with the device token it was traded for.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session, select

from schema import server as s
from schema.types import utcnow
from sync.errors import AuthError

SECRET_KEY = "sync.access_token_secret"  # noqa: S105 (a config key)
TOKEN_PREFIX = "kd_"  # noqa: S105 (marks kensa device tokens in logs and leaks)


def new_device_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def load_secret(session: Session) -> bytes:
    """The signing secret, made on first use; concurrent first uses agree on one."""
    row = session.get(s.ServerConfig, SECRET_KEY)
    if row is None:
        candidate = secrets.token_hex(32)
        dialect = session.get_bind().dialect.name
        table = s.ServerConfig.__table__  # type: ignore[attr-defined]
        insert: sa.Insert
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            insert = pg_insert(table).on_conflict_do_nothing()
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            insert = sqlite_insert(table).on_conflict_do_nothing()
        session.execute(insert.values(key=SECRET_KEY, value=candidate, updated_at=utcnow()))
        session.flush()
        row = session.get(s.ServerConfig, SECRET_KEY, populate_existing=True)
        assert row is not None
    return bytes.fromhex(row.value)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _sign(secret: bytes, message: str) -> str:
    return _b64(hmac.new(secret, message.encode("ascii"), hashlib.sha256).digest())


@dataclass(frozen=True)
class AccessClaim:
    """What a verified access token says: the device, and its token generation at issue."""

    device_id: uuid.UUID
    generation: int


def issue_access_token(
    secret: bytes, device_id: uuid.UUID, generation: int, expires_at: int
) -> str:
    message = f"{device_id.hex}.{generation}.{expires_at}"
    return f"{message}.{_sign(secret, message)}"


def verify_access_token(secret: bytes, token: str, now: int) -> AccessClaim:
    """What a genuine, unexpired access token claims; ``AuthError`` if forged or expired.

    Whether its generation is still the device's is for the caller, who reads the device.
    """
    parts = token.split(".")
    if len(parts) != 4 or not all(p.isascii() for p in parts):
        raise AuthError("malformed access token")
    device_hex, generation_text, expiry_text, signature = parts
    try:
        device_id = uuid.UUID(hex=device_hex)
        generation = int(generation_text)
        expires_at = int(expiry_text)
    except ValueError as exc:
        raise AuthError("malformed access token") from exc
    expected = _sign(secret, f"{device_hex}.{generation_text}.{expiry_text}")
    if not hmac.compare_digest(expected, signature):
        raise AuthError("invalid access token")
    if expires_at <= now:
        raise AuthError("access token expired", code="token_expired")
    return AccessClaim(device_id, generation)


def bearer(authorization: str | None) -> str:
    if not authorization:
        raise AuthError("missing Authorization header")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AuthError("expected 'Authorization: Bearer <token>'")
    return value.strip()


def device_by_token(session: Session, token: str) -> s.Device:
    device = session.exec(
        select(s.Device).where(s.Device.token_hash == hash_token(token))
    ).first()
    if device is None:
        raise AuthError("unknown device token")
    if device.revoked_at is not None:
        raise AuthError("device token revoked", code="device_revoked")
    return device


@dataclass(frozen=True)
class DeviceIdentity:
    """The authenticated device of a request."""

    id: uuid.UUID
    name: str
    device_type: str

    @property
    def key(self) -> str:
        """The device's id as ``tauri_sync_queue.device_id`` holds it."""
        return str(self.id)


def identity(device: s.Device) -> DeviceIdentity:
    return DeviceIdentity(id=device.id, name=device.name, device_type=device.device_type)
