"""The sync package's exception tree.

Every error sync raises on purpose is a ``SyncError``. On the device side its branch is the
*kind* the status API shows (``last_error_kind``) and decides what the scheduler does next; on the
server side the branch carries the HTTP status the API answers with, in one handler, as
``{"error": {"code", "message", "detail"}}``. Library errors (httpx, SQLAlchemy, boto3) are
translated at the boundary with ``raise ... from exc``.

    SyncError
    ├── NotConfigured           -    the device has no server URL or token yet
    ├── TransportError          -    the request may not have reached the server: retry later
    │   ├── Offline                  connection refused / reset / DNS: the server is unreachable
    │   ├── TimedOut                 connect, read or write timeout
    │   ├── ServerUnavailable   5xx  the server answered with a server error, or a broken body
    │   └── RateLimited         429  the server asked us to slow down (Retry-After)
    ├── AuthError               401  missing, wrong, expired or revoked device credentials
    ├── Forbidden               403  a device acting for another device, or reading its data
    ├── CertificateRejected     502  the server's TLS certificate is expired, not trusted, for
    │                                another name, or not the key the device pinned: nothing
    │                                was sent (code: tls_expired, tls_untrusted, tls_hostname,
    │                                tls_pin_mismatch, tls_failed)
    ├── InvalidRequest          400  malformed batch, bad parameter
    │   ├── InsecureUrl              a plain-http server URL that is not loopback
    │   ├── OperationRejected   422  one operation of a batch is invalid for good (set aside)
    │   ├── HashMismatch        422  an uploaded body does not hash to its name
    │   └── DocumentInvalid     422  criteria or a pipeline definition the tablets would refuse
    │                                (code and detail are the shared format's: schema.formats)
    ├── NotFound                404
    ├── Conflict                409  a master that already exists, a stale version
    │   └── ConfirmationRequired     re-pointing a connected device: confirm the old and new server
    ├── CursorExpired           410  a pull cursor older than the server keeps: full resync
    ├── PayloadTooLarge         413  a batch or a file over the server's limits
    ├── StorageError            500  the object store failed (server side)
    ├── LocalFailure            -    the tablet's own side of a run failed (its store locked or
    │                                full, a pulled row it could not apply): shown, backed off
    └── ApplyError              -    a stored queue row the processor cannot apply (server side)
        ├── ApplyLater               waits for a parent or an earlier version: backoff, then
        │                            dead letter after the queue policy's attempts
        ├── ApplyNever               can never apply (not a UUID, wrong type, unknown entity, a
        │                            value the database refuses): dead-lettered at once
        └── NotOwner                 acts on another device's record: rejected at once
"""

from __future__ import annotations

from typing import Any


class SyncError(Exception):
    """Base of every deliberate sync error: a stable ``code``, a readable message, detail."""

    status_code = 500
    code = "sync_error"

    def __init__(self, message: str, *, code: str | None = None, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.detail: dict[str, Any] = detail

    @property
    def kind(self) -> str:
        """The name the status API shows for this error."""
        return self.code


class NotConfigured(SyncError):
    status_code = 409
    code = "not_configured"


class TransportError(SyncError):
    """The exchange failed in a way that says nothing about the data: try again later."""

    status_code = 503
    code = "transport_error"

    def __init__(
        self, message: str, *, retry_after: float | None = None, **detail: Any
    ) -> None:
        super().__init__(message, **detail)
        self.retry_after = retry_after


class Offline(TransportError):
    code = "offline"


class TimedOut(TransportError):
    code = "timeout"


class ServerUnavailable(TransportError):
    code = "server_error"


class RateLimited(TransportError):
    status_code = 429
    code = "rate_limited"


class AuthError(SyncError):
    status_code = 401
    code = "unauthorized"


class Forbidden(SyncError):
    status_code = 403
    code = "forbidden"


class InvalidRequest(SyncError):
    status_code = 400
    code = "invalid_request"


class CertificateRejected(SyncError):
    """The TLS handshake did not prove the server is the one configured. It is raised before a
    single byte of a request is written, so no credential went to whoever answered; trying again
    helps only once someone fixes the certificate, the pin or the tablet's clock."""

    status_code = 502
    code = "tls_failed"


class InsecureUrl(InvalidRequest):
    """``http://`` to anything but loopback: the device token and every record would cross the
    network readable and alterable by anyone on the way."""

    code = "insecure_url"


class OperationRejected(InvalidRequest):
    """One operation the server will never accept; ``detail`` names it (``op_id``, ``seq``)."""

    status_code = 422
    code = "operation_rejected"


class HashMismatch(InvalidRequest):
    status_code = 422
    code = "hash_mismatch"


class DocumentInvalid(InvalidRequest):
    """A published document the tablets would refuse; ``code`` and ``detail`` are the shared
    format's (``criteria_invalid`` naming the key, ``pipeline_definition_invalid`` the step)."""

    status_code = 422
    code = "document_invalid"


class NotFound(SyncError):
    status_code = 404
    code = "not_found"


class Conflict(SyncError):
    status_code = 409
    code = "conflict"


class ConfirmationRequired(Conflict):
    """The device is connected elsewhere; ``detail`` shows both servers for the administrator."""

    code = "confirm_replace"


class CursorExpired(SyncError):
    status_code = 410
    code = "cursor_expired"


class PayloadTooLarge(SyncError):
    status_code = 413
    code = "payload_too_large"


class LocalFailure(SyncError):
    code = "local_error"


class StorageError(SyncError):
    status_code = 500
    code = "storage_error"


class ApplyError(SyncError):
    """A queue row that was not applied; the row stays in the queue with this message.

    Raised by the queue processor, never answered over HTTP: the device learns of the rows the
    server gives up on through the refusals it pulls (``GET /sync/v1/conflicts``).
    """

    code = "apply_error"


class ApplyLater(ApplyError):
    """Something the row needs is not applied yet (a parent record, an earlier version)."""

    code = "apply_later"


class ApplyNever(ApplyError):
    """The row can never apply, however often it is tried."""

    code = "apply_never"


class NotOwner(ApplyError):
    """The row writes a record (or under a record) that another device owns."""

    code = "not_owner"
