"""The device's sync settings, kept in ``system_config``: server URL, device token, identity.

The token is a secret: it is held as ``SecretStr`` (its repr is masked), never logged, and never
returned by the status API.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

from pydantic import SecretStr
from sqlmodel import Session

from schema import device as d
from schema.db import Database
from schema.types import utcnow
from sync.errors import InvalidRequest

SERVER_URL = "sync.server_url"
DEVICE_TOKEN = "sync.device_token"  # noqa: S105 (a config key, not a secret)
DEVICE_ID = "sync.device_id"
DEVICE_NAME = "sync.device_name"


@dataclass(frozen=True)
class Connection:
    server_url: str
    token: SecretStr
    device_id: str | None = None
    device_name: str | None = None


def normalise_url(url: str) -> str:
    url = url.strip().rstrip("/")
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise InvalidRequest(f"server URL must be http(s)://host[:port], not {url!r}")
    return url


def _get(session: Session, key: str) -> str | None:
    row = session.get(d.SystemConfig, key)
    return row.value if row else None


def _put(session: Session, key: str, value: str) -> None:
    row = session.get(d.SystemConfig, key)
    if row is None:
        session.add(d.SystemConfig(key=key, value=value))
    else:
        row.value = value
        row.updated_at = utcnow()
        session.add(row)


def load(db: Database) -> Connection | None:
    with db.read() as session:
        url = _get(session, SERVER_URL)
        token = _get(session, DEVICE_TOKEN)
        if not url or not token:
            return None
        return Connection(
            server_url=url,
            token=SecretStr(token),
            device_id=_get(session, DEVICE_ID),
            device_name=_get(session, DEVICE_NAME),
        )


def save(db: Database, server_url: str, token: SecretStr) -> None:
    with db.atomic() as session:
        _put(session, SERVER_URL, normalise_url(server_url))
        _put(session, DEVICE_TOKEN, token.get_secret_value())


def save_identity(db: Database, device_id: str, device_name: str) -> None:
    with db.atomic() as session:
        _put(session, DEVICE_ID, device_id)
        _put(session, DEVICE_NAME, device_name)
