"""Storing inspection photos: verified, content-addressed by SHA-256, written atomically.

A photo is written to a temporary name, fsynced, renamed into place, and the directory fsynced
(seed 002's atomic update), so a power cut leaves either the whole file or none. Nothing that
fails validation is written at all. Photo and thumbnail are encrypted under the tablet's data
key (``sidecar.photo_crypto``); the address stays the SHA-256 of the photo itself, so the same
photo is stored once and the server checks the bytes it receives against it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy and OpenCV load on the first photo, not at start-up
    import numpy as np


from sidecar import photo_crypto
from sidecar.domain import image_size
from sidecar.errors import ImageInvalid, PayloadTooLarge
from sidecar.keys import DataKey

MAX_IMAGE_BYTES = 20 * 1024 * 1024
THUMBNAIL_EDGE = 320

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)


@dataclass(frozen=True)
class StoredImage:
    sha256: str
    relative_path: str
    thumbnail_path: str
    size: int
    mime_type: str
    width: int
    height: int


def sniff(data: bytes) -> str:
    if not data:
        raise ImageInvalid("the image is empty", reason="empty")
    for magic, mime in _SIGNATURES:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    raise ImageInvalid(
        "this is not an image kensa can read (JPEG, PNG, WebP, BMP or TIFF)", reason="not_an_image"
    )


def _check_complete(data: bytes, mime: str) -> None:
    # Decoders render a truncated JPEG or PNG as a half-grey picture without complaint; the end
    # markers tell whether the camera or the network cut the file short.
    if mime == "image/jpeg" and not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise ImageInvalid("the JPEG is truncated (no end-of-image marker)", reason="truncated")
    if mime == "image/png" and b"IEND" not in data[-16:]:
        raise ImageInvalid("the PNG is truncated (no IEND chunk)", reason="truncated")


def decode(data: bytes) -> tuple[np.ndarray[Any, Any], str]:
    """Check that ``data`` is a whole, decodable image; return the decoded pixels and mime type."""
    import cv2
    import numpy as np

    if len(data) > MAX_IMAGE_BYTES:
        raise PayloadTooLarge(
            f"the image is {len(data) / 1e6:.1f} MB; the limit is {MAX_IMAGE_BYTES // 2**20} MB",
            limit=MAX_IMAGE_BYTES,
        )
    mime = sniff(data)
    _check_complete(data, mime)
    # Before decoding: a small file can claim gigabytes of pixels (a decompression bomb).
    image_size.check(data)
    try:
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:
        # OpenCV raises rather than returns None for some headers, e.g. one that claims more
        # pixels than it will allocate (a decompression bomb).
        raise ImageInvalid(
            "the image is damaged or too large to decode", reason="undecodable"
        ) from exc
    if pixels is None or pixels.size == 0:
        raise ImageInvalid("the image is damaged and cannot be decoded", reason="undecodable")
    return pixels, mime


def image_path(sha256: str) -> str:
    """Where a photo lives, relative to the data directory."""
    return f"images/{sha256[:2]}/{sha256}"


def store(data_dir: Path, data: bytes, *, key: DataKey | None) -> StoredImage:
    """Validate and store ``data``, encrypted under ``key`` (plain only when it is None, the
    development store of ``KENSA_PLAINTEXT=1``); storing the same bytes twice is a no-op."""
    import cv2

    pixels, mime = decode(data)
    digest = hashlib.sha256(data).hexdigest()
    relative = image_path(digest)
    if not photo_crypto.present(data_dir, relative, len(data), key):
        photo_crypto.write(data_dir, relative, data, key)
    height, width = pixels.shape[:2]
    scale = THUMBNAIL_EDGE / max(height, width)
    thumb_rel = f"thumbnails/{digest[:2]}/{digest}.jpg"
    if not (data_dir / thumb_rel).exists():
        small = pixels
        if scale < 1:
            small = cv2.resize(
                pixels,
                (max(1, round(width * scale)), max(1, round(height * scale))),
                interpolation=cv2.INTER_AREA,
            )
        ok, encoded = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])
        if ok:
            photo_crypto.write(data_dir, thumb_rel, encoded.tobytes(), key)
    return StoredImage(
        sha256=digest,
        relative_path=relative,
        thumbnail_path=thumb_rel,
        size=len(data),
        mime_type=mime,
        width=int(width),
        height=int(height),
    )
