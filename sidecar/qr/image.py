"""Turn whatever the caller has (encoded file bytes or a decoded frame) into one 8-bit grey frame.

Both QR engines work on luminance only, so the conversion happens once, here, and every decoding
stage shares its result.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from sidecar.domain import image_size
from sidecar.errors import ImageInvalid

Gray = npt.NDArray[np.uint8]


def to_gray(data: bytes | bytearray | memoryview | npt.NDArray[Any]) -> Gray:
    """Return a C-contiguous ``uint8`` grey frame, or raise :class:`ImageInvalid`.

    Arrays follow OpenCV's conventions: ``H×W`` grey, ``H×W×3`` BGR, ``H×W×4`` BGRA, ``uint8`` or
    ``uint16``. Bytes are an encoded image in any format OpenCV reads (PNG, JPEG, BMP, TIFF, WebP…).
    """
    if isinstance(data, np.ndarray):
        return _array_to_gray(data)
    if isinstance(data, bytes | bytearray | memoryview):
        return _array_to_gray(_decode_bytes(bytes(data)))
    raise ImageInvalid(f"expected image bytes or a numpy array, got {type(data).__name__}")


def _decode_bytes(data: bytes) -> npt.NDArray[Any]:
    if not data:
        raise ImageInvalid("empty image")
    if image_size.dimensions(data) is not None:
        # A format whose header we read is held to the pixel cap before decoding; any other
        # format OpenCV reads (for the command line) is bounded by OpenCV's own limit.
        image_size.check(data)
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        # UNCHANGED rather than GRAYSCALE: the alpha channel must survive to be composited
        # below; GRAYSCALE would drop it and turn a transparent background black.
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise ImageInvalid("not a readable image", size=len(data)) from exc
    if img is None:
        # OpenCV's answer for unknown formats and for truncated or corrupt files alike.
        raise ImageInvalid("not a readable image (unknown format, truncated or corrupt)",
                           size=len(data))
    return np.asarray(img)


def _array_to_gray(img: npt.NDArray[Any]) -> Gray:
    if img.size == 0 or img.ndim not in (2, 3):
        raise ImageInvalid(f"expected a 2-D or 3-D image array, got shape {img.shape}")
    img = _to_uint8(img)
    if img.ndim == 3:
        channels = img.shape[2]
        if channels == 1:
            img = img[:, :, 0]
        elif channels == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        elif channels == 4:
            img = _composite_on_white(img)
        else:
            raise ImageInvalid(f"expected 1, 3 or 4 channels, got {channels}")
    # zxing-cpp reads the buffer directly and needs plain row-major strides (a rotated or cropped
    # view has others).
    return np.ascontiguousarray(img, dtype=np.uint8)


def _to_uint8(img: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        # 16-bit PNGs and some camera pipelines; the top byte is all the decoders can use.
        return (img >> 8).astype(np.uint8)
    raise ImageInvalid(f"unsupported pixel type {img.dtype}; expected uint8 or uint16")


def _composite_on_white(bgra: npt.NDArray[np.uint8]) -> Gray:
    """Flatten BGRA onto white: QR PNGs are often black modules on a fully transparent background
    whose hidden colour is black too, which would read as a solid black square."""
    gray = cv2.cvtColor(bgra, cv2.COLOR_BGRA2GRAY)
    alpha = bgra[:, :, 3]
    if bool((alpha == 255).all()):
        return np.asarray(gray, dtype=np.uint8)
    a = alpha.astype(np.float32) / 255.0
    flat = gray.astype(np.float32) * a + 255.0 * (1.0 - a)
    return np.asarray(np.clip(flat + 0.5, 0, 255), dtype=np.uint8)
