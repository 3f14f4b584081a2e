"""Find and read the QR codes in a photo or camera frame.

The frame goes through a short chain of stages and the first stage that finds anything wins, so a
clean frame costs one zxing-cpp call (about 0.3 ms on the test photos) and only hard frames (and
frames with no code at all) pay for the rest. Measured on the 388 frames of
``shared/data/qr-zxing`` (97 photos x 4 rotations) with ``python scripts/benchmarks/qr.py``:

=========  ==========================================  ==========  ==================
stage      what                                        read alone  adds in the chain
=========  ==========================================  ==========  ==================
zxing      zxing-cpp on the grey frame                 376         376
zbar       ZBar on the grey frame (capped at 1280 px)  369         3 (curved print)
zbar_half  ZBar on the frame at half size              259         5 (photo-textured
                                                                   modules, low contrast)
=========  ==========================================  ==========  ==================

Full-size ZBar is the general fallback (the engine the client asked for; it reads over 100 frames
that half size cannot); on this set, half size alone would also have rescued its 3 frames. Tried and
dropped because they read nothing that these do not: Otsu and adaptive binarisation, fixed
thresholds, CLAHE, Gaussian/median blur, morphology, upscaling, white padding, zxing-cpp's
GlobalHistogram binariser, zxing-cpp at other scales. One photo (qrcode-2/13, dark modules filled
with an aerial photo) stays unread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import zxingcpp

from sidecar.qr import zbar
from sidecar.qr.image import Gray, to_gray

__all__ = ["STAGES", "Code", "Stage", "decode_gray", "decode_image"]


@dataclass(frozen=True, slots=True)
class Code:
    """One code read from an image: its exact text and its symbology (``"QR_CODE"`` …)."""

    text: str
    format: str


Stage = tuple[str, Callable[[Gray], list[Code]]]

# Only the QR family: the workflow's labels are QR codes, and asking zxing-cpp for every symbology
# makes it about nine times slower on the test photos without reading a single extra QR code.
_QR_FORMATS = zxingcpp.BarcodeFormats([
    zxingcpp.BarcodeFormat.QRCode,
    zxingcpp.BarcodeFormat.MicroQRCode,
    zxingcpp.BarcodeFormat.RMQRCode,
])
_FORMAT_NAMES = {
    "QRCode": "QR_CODE",
    "QRCodeModel1": "QR_CODE",
    "QRCodeModel2": "QR_CODE",
    "MicroQRCode": "MICRO_QR_CODE",
    "RMQRCode": "RMQR_CODE",
}
# ZBar's time grows with the pixel count: 160 ms on a 4K frame against 30 ms at 1280 px. The test
# photos are at most 1280 px wide, so the cap changes nothing there; it bounds the cost of a big
# camera frame. zxing-cpp keeps the full frame: it builds its own downscaled pyramid.
_ZBAR_MAX_SIDE = 1280
# The smallest QR code is 21 modules wide: a frame halved below that holds nothing to read (and
# OpenCV refuses to resize to zero pixels).
_QR_MIN_MODULES = 21


def _zxing(gray: Gray) -> list[Code]:
    # TextMode.Plain: the default (HRI) rewrites control characters as "<SOH>" and the like,
    # which changes the payload; Plain gives the text exactly as encoded.
    found = zxingcpp.read_barcodes(gray, formats=_QR_FORMATS, text_mode=zxingcpp.TextMode.Plain)
    return [Code(str(b.text), _format_name(b.format)) for b in found]


def _format_name(fmt: Any) -> str:
    name = str(getattr(fmt, "name", fmt))
    return _FORMAT_NAMES.get(name, name.upper())


def _resize(gray: Gray, scale: float) -> Gray:
    height, width = gray.shape
    # Explicit size, at least one pixel: a 1-pixel-high strip scaled by fx/fy would come out empty.
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(small, dtype=np.uint8)


def _cap(gray: Gray, max_side: int) -> Gray:
    side = max(gray.shape)
    return gray if side <= max_side else _resize(gray, max_side / side)


def _zbar(gray: Gray) -> list[Code]:
    return [Code(text, "QR_CODE") for text in zbar.decode_qr(_cap(gray, _ZBAR_MAX_SIDE))]


def _zbar_half(gray: Gray) -> list[Code]:
    # Area-averaging to half size smooths away texture inside the modules (photo-filled "design"
    # QR codes) and sharpens soft edges, which is what ZBar's finder trips over at full size.
    if min(gray.shape) < 2 * _QR_MIN_MODULES:
        return []
    return _zbar(_resize(gray, 0.5))


STAGES: tuple[Stage, ...] = (
    ("zxing", _zxing),
    ("zbar", _zbar),
    ("zbar_half", _zbar_half),
)


def decode_gray(gray: Gray, stages: Sequence[Stage] = STAGES) -> tuple[list[Code], str | None]:
    """Run the stages in order on a grey frame; return the first stage's codes and its name
    (``None`` when none found anything). The benchmark uses the name to see what each stage adds."""
    for name, stage in stages:
        codes = _unique(stage(gray))
        if codes:
            return codes, name
    return [], None


def decode_image(data: bytes | npt.NDArray[Any]) -> list[Code]:
    """Read every QR code in an image: encoded bytes (PNG, JPEG, …) or an OpenCV-style array.

    Returns ``[]`` when the image holds no readable code; raises
    :class:`~sidecar.errors.ImageInvalid` when ``data`` is not an image at all.
    """
    codes, _ = decode_gray(to_gray(data))
    return codes


def _unique(codes: list[Code]) -> list[Code]:
    # A frame showing the same label twice yields the same code twice; callers want it once.
    return list(dict.fromkeys(codes))
