"""The sidecar's exception tree.

Every error the sidecar raises on purpose is a ``KensaError``; the API turns it into
``{"error": {"code", "message", "detail"}}`` with the HTTP status of its branch, in one handler.
Library errors are translated at the boundary (``raise QrDecodeFailed(...) from exc``).

    KensaError
    ├── InvalidInput            400  malformed payloads, bad parameters
    │   ├── QrPayloadInvalid         a decoded QR text that matches no known format
    │   └── ImageInvalid             empty, truncated or non-image upload
    ├── Unauthorized            401  missing or wrong token, bad credentials
    ├── Forbidden               403  role does not allow it, wrong Host
    ├── NotFound                404
    │   └── ProductNotFound          scanned product not in the cached masters
    ├── Conflict                409  illegal state transition, stale version
    ├── Locked                  423  account locked after repeated failed logins
    ├── PayloadTooLarge         413
    ├── Unprocessable           422
    │   ├── QrDecodeFailed           no code found in the image
    │   └── PipelineError            a pipeline or model could not run
    └── PhotoUnreadable         500  a stored photo that does not open: no key, another
                                     tablet's key, damaged, truncated or altered
"""

from __future__ import annotations

from typing import Any


class KensaError(Exception):
    """Base of every deliberate sidecar error: a stable ``code``, a readable message, detail."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.detail: dict[str, Any] = detail


class InvalidInput(KensaError):
    status_code = 400
    code = "invalid_input"


class QrPayloadInvalid(InvalidInput):
    code = "qr_payload_invalid"


class ImageInvalid(InvalidInput):
    code = "image_invalid"


class Unauthorized(KensaError):
    status_code = 401
    code = "unauthorized"


class Forbidden(KensaError):
    status_code = 403
    code = "forbidden"


class NotFound(KensaError):
    status_code = 404
    code = "not_found"


class ProductNotFound(NotFound):
    code = "product_not_found"


class Conflict(KensaError):
    status_code = 409
    code = "conflict"


class Locked(KensaError):
    status_code = 423
    code = "account_locked"


class TooManyAttempts(KensaError):
    status_code = 429
    code = "too_many_attempts"


class ServerUnreachable(KensaError):
    """The sync server did not answer, or answered with its own failure."""

    status_code = 502
    code = "server_unreachable"


class PayloadTooLarge(KensaError):
    status_code = 413
    code = "payload_too_large"


class Unprocessable(KensaError):
    status_code = 422
    code = "unprocessable"


class QrDecodeFailed(Unprocessable):
    code = "qr_decode_failed"


class PipelineError(Unprocessable):
    code = "pipeline_error"


class PhotoUnreadable(KensaError):
    """A stored photo the tablet cannot open. Its ``reason`` is one of ``no_key``,
    ``wrong_key``, ``damaged``, ``truncated``, ``unknown_format``, ``missing``, ``io``; no byte
    of such a file is ever served or judged."""

    status_code = 500
    code = "photo_unreadable"
