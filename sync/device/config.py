"""The device's sync settings, kept in ``system_config``: server URL, device token, identity, and
the server's public-key pin when the administrator set one (``sync.device.transit``).

The token is a secret: it is held as ``SecretStr`` (its repr is masked), never logged, and never
returned by the status API. Every function works in the caller's session.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr
from sqlmodel import Session

from schema import device as d
from schema.types import utcnow
from sync.errors import InvalidRequest

SERVER_URL = "sync.server_url"
DEVICE_TOKEN = "sync.device_token"  # noqa: S105 (a config key, not a secret)
DEVICE_ID = "sync.device_id"
DEVICE_NAME = "sync.device_name"
SERVER_PIN = "sync.server_pin"


@dataclass(frozen=True)
class Connection:
    server_url: str
    token: SecretStr
    device_id: str | None = None
    device_name: str | None = None
    # SHA-256 (hex) of the server's SubjectPublicKeyInfo; None: CA verification alone.
    pin: str | None = None


def normalise_url(url: str) -> str:
    """``http(s)://host[:port][/path]`` without a trailing slash.

    Credentials, a query or a fragment are refused rather than dropped: a URL with a password in
    it would be stored and shown on the settings screen, and a silently trimmed one is not what
    the administrator typed.
    """
    url = url.strip().rstrip("/")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise InvalidRequest("the server URL contains control characters")
    try:
        parsed = urlsplit(url)
        parsed.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError as exc:
        raise InvalidRequest(f"server URL is not a valid URL: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise InvalidRequest("server URL must be http(s)://host[:port]")
    if parsed.username is not None or parsed.password is not None:
        raise InvalidRequest(
            "put no user name or password in the server URL; the device token is the credential"
        )
    if parsed.query or parsed.fragment or url.endswith(("?", "#")):
        raise InvalidRequest("the server URL takes no query or fragment")
    return url


def display_url(url: str) -> str:
    """The URL without any credentials (a value stored by an older version may have them)."""
    parsed = urlsplit(url)
    if "@" not in parsed.netloc:
        return url
    host = parsed.netloc.rsplit("@", 1)[1]
    return urlunsplit((parsed.scheme, host, parsed.path, "", ""))


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


def _drop(session: Session, key: str) -> None:
    row = session.get(d.SystemConfig, key)
    if row is not None:
        session.delete(row)


def load(session: Session) -> Connection | None:
    url = _get(session, SERVER_URL)
    token = _get(session, DEVICE_TOKEN)
    if not url or not token:
        return None
    return Connection(
        server_url=url,
        token=SecretStr(token),
        device_id=_get(session, DEVICE_ID),
        device_name=_get(session, DEVICE_NAME),
        pin=_get(session, SERVER_PIN) or None,
    )


def swap(
    session: Session,
    server_url: str,
    token: SecretStr,
    device_id: str,
    device_name: str,
    *,
    pin: str | None = None,
) -> None:
    """Replace the whole connection in the caller's transaction: URL, token, identity and pin
    change together or not at all, so a failed connect never leaves a half-new connection
    behind (and a connect without a pin drops the old server's)."""
    _put(session, SERVER_URL, normalise_url(server_url))
    _put(session, DEVICE_TOKEN, token.get_secret_value())
    _put(session, DEVICE_ID, device_id)
    _put(session, DEVICE_NAME, device_name)
    if pin is None:
        _drop(session, SERVER_PIN)
    else:
        _put(session, SERVER_PIN, pin)


def save_identity(session: Session, device_id: str, device_name: str) -> None:
    _put(session, DEVICE_ID, device_id)
    _put(session, DEVICE_NAME, device_name)
