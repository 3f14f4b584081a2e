"""How the device reaches its server safely: https only, CA verification, an optional key pin.

- **https only.** A plain ``http://`` URL is refused unless its host is loopback (``127.0.0.0/8``,
  ``::1``, ``localhost``: a server on the same machine, as in development) or the development flag
  (``KENSA_ALLOW_HTTP=1``) says otherwise. The check runs wherever a client is built, so a URL
  stored by an older version is refused at sync time as well as at connect.
- **CA verification** is always on: the public CA bundle httpx ships (certifi), or the factory's
  own CA (``KENSA_CA_BUNDLE``), never "verify nothing".
- **Pinning.** An administrator may pin the SHA-256 of the server's SubjectPublicKeyInfo (what
  ``openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | sha256sum`` prints, or its
  base64 as in HPKP). The pin is checked inside the connection's TLS handshake, before httpx
  writes the first byte of a request, so the device token never reaches a server whose key does
  not match: a stolen or wrongly issued certificate from a trusted CA is not enough.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import re
import ssl
import typing
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import certifi
import httpcore
import httpx
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sync.errors import CertificateRejected, InsecureUrl, InvalidRequest

# OpenSSL's X509_V_ERR_* values the device tells apart: each needs a different person to act.
_CERT_NOT_YET_VALID = 9
_CERT_HAS_EXPIRED = 10
_HOSTNAME_MISMATCH = 62
_IP_ADDRESS_MISMATCH = 64


def is_loopback(host: str) -> bool:
    """Whether ``host`` can only mean this machine (no name lookup: a name that resolves to
    127.0.0.1 today may not tomorrow)."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_secure(url: str, *, allow_http: bool = False) -> None:
    """Refuse a plain-http URL to another machine (``InsecureUrl``)."""
    parsed = urlsplit(url)
    if parsed.scheme == "http" and not allow_http and not is_loopback(parsed.hostname or ""):
        raise InsecureUrl(
            f"the server URL {url} is plain http: the device token and the records would cross "
            "the network unencrypted; use https:// (plain http is allowed only to this machine, "
            "or with KENSA_ALLOW_HTTP=1 for development)",
            server_url=url,
        )


_HEX = re.compile(r"^[0-9a-f]{64}$")


def parse_pin(text: str) -> str:
    """A public-key pin as 64 lower-case hex digits, from hex (colons and spaces allowed, as
    fingerprint tools print it) or base64 (optionally ``sha256/…`` as in HPKP)."""
    value = text.strip()
    lowered = value.lower()
    for prefix in ("sha256//", "sha256/", "sha256:"):
        if lowered.startswith(prefix):
            value = value[len(prefix):].strip()
            break
    compact = re.sub(r"[\s:]", "", value).lower()
    if _HEX.fullmatch(compact):
        return compact
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise InvalidRequest(
            "the public-key pin must be the SHA-256 of the server's public key: 64 hex digits "
            "or 44 characters of base64",
            code="pin_invalid",
        )
    return raw.hex()


def pin_base64(pin: str) -> str:
    """The HPKP spelling of a stored pin, for people comparing it with ``openssl … | base64``."""
    return base64.b64encode(bytes.fromhex(pin)).decode()


def spki_sha256(der_certificate: bytes) -> str:
    """SHA-256 (hex) of a DER certificate's SubjectPublicKeyInfo."""
    spki = x509.load_der_x509_certificate(der_certificate).public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


@dataclass(frozen=True)
class TransitPolicy:
    """What a connection to the server must prove; the pin is the connection's own (stored with
    the URL), the rest the device's settings."""

    pin: str | None = None
    ca_bundle: Path | None = None
    allow_http: bool = False


def ssl_context(ca_bundle: Path | None) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=str(ca_bundle or certifi.where()))
    except (OSError, ssl.SSLError) as exc:
        raise CertificateRejected(
            f"the CA bundle {ca_bundle} cannot be read: {exc}", code="tls_untrusted"
        ) from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class _PinnedStream(httpcore.NetworkStream):
    """A TCP stream whose TLS upgrade also checks the server's key against the pin."""

    def __init__(self, inner: httpcore.NetworkStream, pin: str) -> None:
        self._inner = inner
        self._pin = pin

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.start_tls(ssl_context, server_hostname, timeout)
        ssl_object = stream.get_extra_info("ssl_object")
        # httpcore hands the low-level _ssl object, whose getpeercert takes the flag by position.
        der = ssl_object.getpeercert(True) if ssl_object is not None else None
        seen = spki_sha256(der) if der else None
        if seen != self._pin:
            stream.close()
            raise CertificateRejected(
                f"the server's public key does not match the pin set at connect "
                f"(pinned {pin_base64(self._pin)}, the server shows "
                f"{pin_base64(seen) if seen else 'no certificate'}); nothing was sent to it",
                code="tls_pin_mismatch",
                pinned=pin_base64(self._pin),
                seen=pin_base64(seen) if seen else None,
            )
        return stream


class _PinnedBackend(httpcore.NetworkBackend):
    def __init__(self, pin: str) -> None:
        self._inner = httpcore.SyncBackend()
        self._pin = pin

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        inner = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _PinnedStream(inner, self._pin)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def make_transport(policy: TransitPolicy, context: ssl.SSLContext) -> httpx.HTTPTransport:
    """An httpx transport that verifies the server's certificate against ``context``'s CAs
    and, with a pin, its key."""
    transport = httpx.HTTPTransport(verify=context)
    if policy.pin is not None:
        # httpx has no parameter for the network backend; its pool is rebuilt with the same
        # settings httpx's defaults give it, and the pinning backend.
        transport._pool = httpcore.ConnectionPool(
            ssl_context=context,
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_PinnedBackend(policy.pin),
        )
    return transport


def certificate_error(exc: BaseException) -> CertificateRejected | None:
    """The ``CertificateRejected`` an httpx connect error stands for, or None when the failure
    was not about TLS (refused, reset, DNS)."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, CertificateRejected):
            return cause
        if isinstance(cause, ssl.SSLCertVerificationError):
            return _verification_error(cause)
        if isinstance(cause, ssl.SSLError):
            return CertificateRejected(
                f"the TLS handshake with the server failed ({cause.reason or cause}); check "
                "that the URL's port serves https",
                code="tls_failed",
            )
        cause = cause.__cause__ or cause.__context__
    return None


def _verification_error(exc: ssl.SSLCertVerificationError) -> CertificateRejected:
    reason = exc.verify_message or str(exc)
    if exc.verify_code == _CERT_HAS_EXPIRED:
        return CertificateRejected(
            f"the server's certificate has expired ({reason}); the server's administrator must "
            "renew it (or the tablet's clock is wrong)",
            code="tls_expired",
        )
    if exc.verify_code == _CERT_NOT_YET_VALID:
        return CertificateRejected(
            f"the server's certificate is not valid yet ({reason}); check the tablet's clock",
            code="tls_expired",
        )
    if exc.verify_code in (_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH):
        return CertificateRejected(
            f"the server's certificate is for another name ({reason}); use the name the "
            "certificate was issued for",
            code="tls_hostname",
        )
    return CertificateRejected(
        f"the server's certificate is not signed by a trusted authority ({reason}); for a "
        "factory's own CA, set KENSA_CA_BUNDLE to its certificate",
        code="tls_untrusted",
    )
