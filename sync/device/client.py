"""The device's HTTP client for the sync API (httpx), with errors translated into ``sync.errors``.

The transport is injectable: tests hand in ``httpx.MockTransport`` (or any ``httpx.BaseTransport``)
instead of monkeypatching; production uses ``sync.device.transit``'s: https with CA verification
and the connection's public-key pin, checked before a request is written. A plain-http URL to
another machine is refused whatever the transport (``InsecureUrl``).

A 401 on any call trades the device token for a fresh access token once and repeats the call;
the queue is untouched. What the status API shows as an error's kind is its ``sync.errors`` code.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn, Protocol

import httpx
from pydantic import SecretStr, ValidationError

from schema.types import utcnow
from sync.device.transit import (
    TransitPolicy,
    certificate_error,
    make_transport,
    require_secure,
    ssl_context,
)
from sync.errors import (
    AuthError,
    CertificateRejected,
    Conflict,
    CursorExpired,
    Forbidden,
    HashMismatch,
    InvalidRequest,
    NotFound,
    Offline,
    OperationRejected,
    PayloadTooLarge,
    RateLimited,
    ServerUnavailable,
    SyncError,
    TimedOut,
)
from sync.policy import parse_retry_after
from sync.protocol import (
    API_PREFIX,
    DEVICE_TIME_HEADER,
    AuthResponse,
    ChangesPage,
    ConflictsPage,
    EnrollResponse,
    FileStored,
    MissingResponse,
    PushResponse,
)

log = logging.getLogger(__name__)

CHUNK = 256 * 1024

_BY_STATUS: dict[int, type[SyncError]] = {
    401: AuthError,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: CursorExpired,
    413: PayloadTooLarge,
}


def _error_body(response: httpx.Response) -> tuple[str | None, str, dict[str, Any]]:
    try:
        payload = response.json()
    except (ValueError, httpx.ResponseNotRead):
        return None, response.reason_phrase or f"HTTP {response.status_code}", {}
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return None, str(payload)[:300], {}
    detail = error.get("detail")
    return (
        str(error.get("code") or "") or None,
        str(error.get("message") or f"HTTP {response.status_code}"),
        detail if isinstance(detail, dict) else {},
    )


def raise_for(response: httpx.Response, *, now: Callable[[], datetime] = utcnow) -> None:
    """Translate an HTTP answer that is not a success into the ``sync.errors`` tree."""
    status = response.status_code
    if status < 400:
        return
    code, message, detail = _error_body(response)
    # Keys the exception's own signature uses cannot come from the server's detail.
    detail = {k: v for k, v in detail.items() if k not in ("code", "status", "message")}
    retry_after = parse_retry_after(
        response.headers.get("retry-after"),
        server_date=response.headers.get("date"),
        now=now(),
    )
    if status == 429:
        raise RateLimited(message, retry_after=retry_after, status=status)
    if status >= 500:
        raise ServerUnavailable(f"server error {status}: {message}", retry_after=retry_after,
                                status=status)
    if code is None and status not in (401, 413):
        # Not the kensa server's answer (a proxy, a captive portal, a web server at that
        # address): it says nothing about any operation, so none is set aside for it. The
        # tablet backs off and tries again, as after any answer that is not the server's.
        raise ServerUnavailable(
            f"answer {status} from something other than the kensa server: {message}",
            retry_after=retry_after, status=status,
        )
    if status == 422 and code == "hash_mismatch":
        raise HashMismatch(message, **detail)
    if status == 422 and code == "operation_rejected":
        raise OperationRejected(message, **detail)
    cls = _BY_STATUS.get(status)
    if cls is not None:
        raise cls(message, **({"code": code} if code else {}), status=status, **detail)
    raise InvalidRequest(message, **({"code": code} if code else {}), status=status, **detail)


def _translate(exc: httpx.HTTPError) -> NoReturn:
    if isinstance(exc, httpx.ConnectError) and (rejected := certificate_error(exc)) is not None:
        # Not "offline": the server answered, and did not prove who it is.
        raise rejected from exc
    if isinstance(exc, httpx.ConnectTimeout):
        raise TimedOut(f"connecting timed out: {exc}") from exc
    if isinstance(exc, httpx.TimeoutException):
        raise TimedOut(f"timed out: {type(exc).__name__}") from exc
    if isinstance(exc, httpx.ConnectError):
        raise Offline(f"cannot connect: {exc}") from exc
    if isinstance(exc, httpx.TransportError):
        # Reset, truncated answer, protocol error: whether the server acted is unknown, which
        # is fine — every call is safe to repeat.
        raise Offline(f"connection lost: {type(exc).__name__}: {exc}", code="connection_lost") \
            from exc
    raise ServerUnavailable(f"HTTP failure: {exc}") from exc


def _parse(model: Any, response: httpx.Response) -> Any:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        # A 2xx with a cut-off or garbled body: the server may have acted; the caller retries.
        raise ServerUnavailable("unreadable answer from the server", code="bad_answer") from exc


class SyncClient:
    def __init__(
        self,
        server_url: str,
        token: SecretStr,
        *,
        app_version: str,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout | None = None,
        clock: Callable[[], datetime] = utcnow,
        transit: TransitPolicy | None = None,
    ) -> None:
        transit = transit or TransitPolicy()
        require_secure(server_url, allow_http=transit.allow_http)
        context = ssl_context(transit.ca_bundle)
        self.server_url = server_url.rstrip("/")
        self._token = token
        self._clock = clock
        self._access: str | None = None
        self.identity: AuthResponse | None = None
        self._http = httpx.Client(
            base_url=self.server_url,
            transport=transport or make_transport(transit, context),
            # For a proxy from the environment httpx makes its own transport: it gets the same
            # CA, but could not check a pin, so a pinned connection goes to its server directly.
            verify=context,
            trust_env=transit.pin is None,
            timeout=timeout or httpx.Timeout(connect=5.0, read=60.0, write=60.0, pool=10.0),
            headers={"User-Agent": f"kensa-device/{app_version}"},
        )

    def close(self) -> None:
        self._http.close()

    # --- plumbing ----------------------------------------------------------------------------

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, API_PREFIX + path, **kwargs)
        except httpx.HTTPError as exc:
            _translate(exc)

    def authenticate(self) -> AuthResponse:
        response = self._send(
            "POST", "/auth", headers={"Authorization": f"Bearer {self._token.get_secret_value()}"}
        )
        raise_for(response, now=self._clock)
        self.identity = _parse(AuthResponse, response)
        self._access = self.identity.access_token
        return self.identity

    def enroll(self, code: str) -> EnrollResponse:
        """Trade a one-time enrollment code for this device's token (no credentials needed)."""
        response = self._send("POST", "/enroll", json={"code": code})
        raise_for(response, now=self._clock)
        return _parse(EnrollResponse, response)  # type: ignore[no-any-return]

    def _call(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        body_factory: Callable[[], Any] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """A credentialed call; on 401 authenticate once and repeat it."""
        for attempt in (1, 2):
            if self._access is None:
                self.authenticate()
            sent = {**(headers or {}), "Authorization": f"Bearer {self._access}"}
            if body_factory is not None:
                # A streamed body is consumed by the first attempt: make it again.
                kwargs["content"] = body_factory()
            response = self._send(method, path, headers=sent, **kwargs)
            if response.status_code == 401 and attempt == 1:
                log.info("access token refused; authenticating again")
                response.close()
                self._access = None
                continue
            return response
        raise AssertionError("unreachable")

    # --- the protocol ------------------------------------------------------------------------

    def ping(self) -> bool:
        """Whether the server answers. One that answers with a certificate the device refuses
        counts as reachable: the run that follows fails on it and records why, where the
        settings screen shows it, instead of probing in silence."""
        try:
            response = self._http.get(API_PREFIX + "/ping", timeout=3.0)
        except CertificateRejected:
            return True
        except httpx.HTTPError as exc:
            return isinstance(exc, httpx.ConnectError) and certificate_error(exc) is not None
        return response.status_code == 200

    def push(self, body: bytes) -> PushResponse:
        response = self._call(
            "POST", "/push", content=body,
            headers={"Content-Type": "application/json",
                     DEVICE_TIME_HEADER: self._clock().isoformat()},
        )
        raise_for(response, now=self._clock)
        parsed: PushResponse = _parse(PushResponse, response)
        return parsed

    def changes(self, cursor: str | None, limit: int) -> ChangesPage:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        response = self._call("GET", "/changes", params=params)
        raise_for(response, now=self._clock)
        page: ChangesPage = _parse(ChangesPage, response)
        return page

    def conflicts(self, after: int) -> ConflictsPage:
        response = self._call("GET", "/conflicts", params={"after": after})
        raise_for(response, now=self._clock)
        page: ConflictsPage = _parse(ConflictsPage, response)
        return page

    def missing(self, hashes: list[str]) -> list[str]:
        response = self._call(
            "POST", "/files/missing", content=json.dumps({"sha256": hashes}).encode(),
            headers={"Content-Type": "application/json"},
        )
        raise_for(response, now=self._clock)
        parsed: MissingResponse = _parse(MissingResponse, response)
        return parsed.missing

    def upload(
        self, sha256: str, source: Path | UploadBody, *, mime_type: str | None = None
    ) -> FileStored:
        """Stream a file (or a body read in pieces, e.g. a photo decrypted as it is sent) to the
        server: read in chunks, never held whole in memory."""
        if isinstance(source, Path):
            path = source
            size, name = path.stat().st_size, path.name
            chunks: Callable[[], Iterator[bytes]] = lambda: _file_chunks(path)  # noqa: E731
        else:
            size, name, chunks = source.size, source.name, source.chunks
        response = self._call(
            "PUT", f"/files/{sha256}",
            body_factory=chunks,
            headers={"Content-Type": mime_type or "application/octet-stream",
                     "Content-Length": str(size), "X-Kensa-File-Name": name},
        )
        raise_for(response, now=self._clock)
        stored: FileStored = _parse(FileStored, response)
        return stored

    def download(self, sha256: str, dest: Path) -> int:
        """Stream a file into ``dest`` (via a temporary name), verifying its hash."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.partial")
        for attempt in (1, 2):
            if self._access is None:
                self.authenticate()
            try:
                with self._http.stream(
                    "GET", f"{API_PREFIX}/files/{sha256}",
                    headers={"Authorization": f"Bearer {self._access}"},
                ) as response:
                    if response.status_code == 401 and attempt == 1:
                        self._access = None
                        continue
                    if response.status_code >= 400:
                        response.read()
                        raise_for(response, now=self._clock)
                    return _save_stream(response.iter_bytes(CHUNK), sha256, partial, dest)
            except httpx.HTTPError as exc:
                with contextlib.suppress(OSError):
                    partial.unlink()
                _translate(exc)
        raise AuthError("the server refused the device's credentials")


class UploadBody(Protocol):
    """A body of a known ``size`` that can be read again from the start (a retry after a 401)."""

    @property
    def size(self) -> int: ...

    @property
    def name(self) -> str: ...

    def chunks(self) -> Iterator[bytes]: ...


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


def _save_stream(chunks: Iterator[bytes], sha256: str, partial: Path, dest: Path) -> int:
    digest = hashlib.sha256()
    size = 0
    try:
        with partial.open("wb") as fh:
            for chunk in chunks:
                digest.update(chunk)
                fh.write(chunk)
                size += len(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        if digest.hexdigest() != sha256:
            raise ServerUnavailable(f"downloaded body of {sha256} does not match its hash",
                                    code="bad_answer")
        os.replace(partial, dest)
        return size
    finally:
        with contextlib.suppress(OSError):
            partial.unlink()
