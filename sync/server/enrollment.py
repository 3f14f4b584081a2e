"""One-time enrollment codes (``sync.enrollment_code``): a fresh tablet gets its device token
without anyone typing it.

``kensa-server device add TAB-01 --qr`` registers the device and, instead of printing the long
device token, makes a short code (``ABCDE-FGHJK``: ten characters of an alphabet without 0/O,
1/I/L, typeable with gloves) valid for ``enrollment_ttl_s`` and good for one exchange. The tablet
posts it to ``/sync/v1/enroll`` and receives a freshly made device token; the code is spent.

Codes live in ``server_config`` as ``enroll.<sha256 of the code>`` rows holding the device and
the expiry, so neither the code nor anything that works as one is stored. A plain SHA-256 is
enough: the code has ~50 bits, lives minutes and every wrong guess is throttled (per client
address and across all clients, ``enrollment_burst`` / ``enrollment_refill_s``), so an offline
search of the digest finds a code that has long expired.

The QR the admin shows carries ``kensa://enroll?server=<url>&code=<code>``; the tablet's setup
screen reads the same text from its scan field.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from schema import server as s
from schema.types import utcnow
from sync.enrollment_code import new_code, normalise
from sync.errors import AuthError, InvalidRequest, NotFound, SyncError
from sync.server import audit
from sync.server.auth import hash_token, new_device_token

KEY_PREFIX = "enroll."
# Spent and expired codes stay this long, so a second try says "used"/"expired", not "wrong".
KEEP_SPENT = timedelta(days=1)


class CodeExpired(SyncError):
    status_code = 410
    code = "enrollment_code_expired"


class CodeUsed(SyncError):
    status_code = 409
    code = "enrollment_code_used"


def _key(code: str) -> str:
    return KEY_PREFIX + hashlib.sha256(normalise(code).encode("ascii")).hexdigest()


@dataclass(frozen=True)
class Issued:
    code: str
    device_name: str
    expires_at: datetime


def issue(session: Session, device: s.Device, ttl_s: float) -> Issued:
    """A new code for ``device``; earlier unspent codes of the device stay valid until they end."""
    if device.revoked_at is not None:
        raise InvalidRequest(f"device {device.name} is revoked", code="device_revoked")
    now = utcnow()
    _forget_old(session, now)
    code = new_code()
    expires = now + timedelta(seconds=ttl_s)
    session.add(s.ServerConfig(key=_key(code), value=json.dumps(
        {"device_id": str(device.id), "expires_at": expires.isoformat(), "used_at": None})))
    session.flush()
    audit.record(session, "device", str(device.id), "enrollment_code",
                 detail={"expires_at": expires.isoformat()})
    return Issued(code=code, device_name=device.name, expires_at=expires)


def _forget_old(session: Session, now: datetime) -> None:
    rows = session.exec(
        select(s.ServerConfig).where(col(s.ServerConfig.key).startswith(KEY_PREFIX))
    ).all()
    for row in rows:
        expires = datetime.fromisoformat(json.loads(row.value)["expires_at"])
        if expires + KEEP_SPENT < now:
            session.delete(row)


@dataclass(frozen=True)
class Exchanged:
    device: s.Device
    token: str


def exchange(session: Session, code: str) -> Exchanged:
    """Spend ``code``: the device gets a new token (any earlier one stops working)."""
    key = _key(code)
    row = session.get(s.ServerConfig, key, with_for_update=True)
    if row is None:
        raise AuthError("unknown enrollment code", code="enrollment_code_invalid")
    data = json.loads(row.value)
    if data.get("used_at"):
        raise CodeUsed("this enrollment code has been used; ask for a new one")
    now = utcnow()
    if datetime.fromisoformat(data["expires_at"]) <= now:
        raise CodeExpired("this enrollment code has expired; ask for a new one")
    device = session.get(s.Device, uuid.UUID(data["device_id"]))
    if device is None:
        raise NotFound("the device of this enrollment code no longer exists")
    if device.revoked_at is not None:
        raise AuthError("device token revoked", code="device_revoked")
    row.value = json.dumps({**data, "used_at": now.isoformat()})
    row.updated_at = now
    session.add(row)
    token = new_device_token()
    device.token_hash = hash_token(token)
    # Whatever token the device had before (a reinstall's) stops working with its access tokens.
    device.token_generation += 1
    session.add(device)
    # A token change like `device token`, so the chain's record check covers the new hash.
    audit.record(session, "device", str(device.id), "token", detail={"via": "enrollment_code"})
    return Exchanged(device=device, token=token)
