"""Find and read the codes in a photo or camera frame: QR, Data Matrix (ECC200) and Code 128.

The frame goes through a chain of stages and the first stage that reads anything wins:

1. ``half``: zxing-cpp (QR and Code 128) on the frame at half size. Area-averaging removes
   sensor noise, JPEG blocks and texture inside modules, and a quarter of the pixels makes it the
   cheapest stage; most frames end here.
2. The region finder (``_regions``) marks the areas dense with contrast that a code makes. A frame
   without one, and without contrast at all (a blank label, a wall), ends here: the cheap exit.
3. Region stages on the largest region (the code on nearly every frame that gets this far). A
   region whose gradients all point one way (``_bars_angle``) holds a 1-D code: its stages look
   for Code 128 too, and the two that read it best go first. Any other region is searched for QR
   and Data Matrix only, which halves the cost of every stage there. In order: the region turned
   upright, upscaled across its bars and averaged along them (1-D labels, blurred or at 1.5 px a
   module); QR codes read again with a covered patch taken as erasures (``sidecar.qr.erasure``:
   a finger, tape, a highlight); a threshold against each pixel's 15x15 neighbourhood (shadow
   edges, glare fringes, dark corners); eroded and blurred (marks whose modules do not touch);
   ZBar at half size (photo-textured modules); the region at full size with every zxing-cpp
   option (perspective, inverted); a washed-out or covered QR finder pattern painted back
   (``sidecar.qr.finder``); blurred at half size; upscaled and softened, CLAHE and blurred,
   flattened (divided by its own shading), upscaled x3 and sharpened, unsharp-masked, upscaled
   x2 and sharpened, upscaled and blurred (dot-peen dots), ZBar (curved print), eroded wider
   (dot-peen dots far apart). Other regions get the first two.
4. Fallback stages on the whole frame for a code the region finder missed (a highlight can
   swamp it): zxing-cpp, erasures, finder repair, ZBar.

No stage starts once ``BUDGET_S`` of this thread's CPU time has passed, which bounds a frame with
no code, or one nothing can read. The order is the one that reads most within that budget.

Stages and their order were chosen on the degraded-frame corpus of ``tests/support/qr_corpus.py``
with seeds 1 and 3; ``scripts/bench qr`` reports them on seed 2, which they were not chosen on,
and on the 388 frames of ``shared/data/qr-zxing``; seed 4, never looked at while choosing, reads
516 of 560 (92 %, none wrongly; ``KENSA_QR_SEED=4 scripts/bench qr``). Every engine returns
only what its checksums verify, the erasure repair keeps check codewords to spare, and a Micro
QR code read with its error correction used up (an M1 has none) is dropped (``trusted``): a
frame read wrongly is worse than a frame not read.

``scripts/bench qr`` (``KENSA_QR_SEED=2``, 40 frames per condition; frames read, all with zero
wrong reads):

===========  ==========  ===============  ==========
condition    this chain  zxing-cpp alone  ZBar alone
===========  ==========  ===============  ==========
blur         33          29               24
glare        31          20               14
lowlight     39          24               5
perspective  40          40               30
cylinder     40          37               29
jpeg         40          40               35
occlusion    32          21               22
inverted     40          40               0
small        32          25               4
uneven       39          25               16
laser        39          37               24
dotpeen      32          1                0
datamatrix   35          26               0
code128      38          25               30
all (560)    510 (91 %)  390 (70 %)       233 (42 %)
shared set   384 / 388   372 / 388        333 / 388
===========  ==========  ===============  ==========

What stays unread is mostly beyond any decoder: modules of 1.3 px blurred into their neighbours
(small), highlights and covers over more codewords than even erasures restore, and Code 128
labels running off the frame. The four shared-set frames are qrcode-2/13, which the chain reads
as "photography" with 83 % of its error correction unused, where the set's text file says
"photograph". Time per frame holding a code, wall clock: p50 5.0 ms, p95 22 ms (zxing-cpp alone
7.0 / 24 ms on the same frames; on the shared set 0.5 / 5.1 ms). A frame with no code costs
about 21 ms (the 20 ms budget and the stage under way when it ran out), unless it holds no
detail that could be a code (a blank label, a wall): then about 5 ms. Measured on a machine
shared with other work.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import zxingcpp

from sidecar.errors import ImageInvalid, QrPayloadInvalid
from sidecar.qr import erasure, finder, zbar
from sidecar.qr.image import Gray, to_gray
from sidecar.qr.payload import parse_gs1

__all__ = ["BUDGET_S", "STAGES", "Code", "Roi", "Stage", "decode_gray", "decode_image"]


@dataclass(frozen=True, slots=True)
class Code:
    """One code read from an image: its exact text and its symbology (``"QR_CODE"``,
    ``"DATA_MATRIX"``, ``"CODE_128"`` …). GS1 codes carry their element string in the printed
    form ``(01)…(10)…``, which :func:`sidecar.qr.payload.parse_payload` reads.

    ``stage`` names the stage that read it and ``unused_ec`` is the share of the symbol's error
    correction left unused (1.0: read without a single corrected error; ``None`` where the symbology
    or engine does not say). Neither takes part in equality: the same code read twice is equal.
    """

    text: str
    format: str
    stage: str = field(default="", compare=False)
    unused_ec: float | None = field(default=None, compare=False)


Formats = Any
"""A set of zxing-cpp barcode formats (``zxingcpp.BarcodeFormats``)."""
Stage = tuple[str, Callable[[Gray, Formats], list[Code]]]
"""A stage's name and its function: a grey image and the formats to look for in it."""
Roi = tuple[int, int, int, int]
"""A region of interest ``(x, y, width, height)`` in frame pixels."""

BUDGET_S = 0.020
"""Seconds of the decoding thread's CPU time after which no stage starts."""

_B = zxingcpp.BarcodeFormat
_QR = [_B.QRCode, _B.MicroQRCode, _B.RMQRCode]
# Code 128 is read together with QR: a cheap 1-D scan. Data Matrix costs as much again as QR and
# Code 128 together (its detector tries every edge), so the first, whole-frame stage leaves it
# to the region stages, which run on a fraction of the pixels.
_QR_128 = zxingcpp.BarcodeFormats([*_QR, _B.Code128])
_ALL = zxingcpp.BarcodeFormats([*_QR, _B.DataMatrix, _B.Code128])
# A region whose gradients do not line up (see _bars_angle) holds no 1-D code: its stages leave
# out Code 128, whose row-by-row scan costs more than the QR and Data Matrix detectors together
# on an upscaled region.
_2D = zxingcpp.BarcodeFormats([*_QR, _B.DataMatrix])
# A painted finder or a redrawn symbol helps QR codes only.
_QR_ONLY = zxingcpp.BarcodeFormats(_QR)
_FORMAT_NAMES = {
    "QRCode": "QR_CODE",
    "QRCodeModel1": "QR_CODE",
    "QRCodeModel2": "QR_CODE",
    "MicroQRCode": "MICRO_QR_CODE",
    "RMQRCode": "RMQR_CODE",
    "DataMatrix": "DATA_MATRIX",
    "Code128": "CODE_128",
}
_GS1_PREFIX = {"QR_CODE": "]Q3", "DATA_MATRIX": "]d2", "CODE_128": "]C1"}
# ZBar's time grows with the pixel count: 160 ms on a 4K frame against 30 ms at 1280 px.
_ZBAR_MAX_SIDE = 1280
# The smallest QR code is 21 modules wide: a frame halved below that holds nothing to read (and
# OpenCV refuses to resize to zero pixels).
_MIN_SIDE = 21
# Upscaling is for small modules; past this size it costs more than it finds.
_UPSCALE_MAX_SIDE = 1600


def _zxing(gray: Gray, stage: str, formats: Any = _ALL, **options: Any) -> list[Code]:
    # TextMode.Plain: the default (HRI) rewrites control characters as "<SOH>" and the like,
    # which changes the payload; Plain gives the text exactly as encoded.
    found = zxingcpp.read_barcodes(gray, formats=formats, text_mode=zxingcpp.TextMode.Plain,
                                   **options)
    return [code for code in (_code(b, stage) for b in found) if trusted(code)]


# The small symbols carry few check codewords (a Micro QR M1 none at all, only error detection):
# in binarised noise one that used up every one of them is more often a chance pattern than a
# label. A frame not read is better than one read wrongly.
_WEAK_SYMBOLS = frozenset({"MICRO_QR_CODE", "RMQR_CODE"})


def trusted(code: Code) -> bool:
    """Whether a read can be handed on: not a Micro QR or rMQR code read with its error correction
    used up (or not reported)."""
    return code.format not in _WEAK_SYMBOLS or (code.unused_ec or 0.0) > 0.0


def _code(barcode: Any, stage: str) -> Code:
    fmt = _format_name(barcode.format)
    text = str(barcode.text)
    if barcode.content_type == zxingcpp.ContentType.GS1:
        text = _gs1_text(text, fmt)
    extra = barcode.extra if isinstance(barcode.extra, dict) else {}
    unused = extra.get("UEC")
    return Code(text, fmt, stage, float(unused) if isinstance(unused, int | float) else None)


def _gs1_text(plain: str, fmt: str) -> str:
    try:
        return parse_gs1(plain, bare=True).hri
    except QrPayloadInvalid:
        # Elements this parser does not know: hand them on as a scanner would, with the AIM
        # identifier in front, so that the payload parser names what is wrong.
        return _GS1_PREFIX.get(fmt, "]C1") + plain


def _format_name(fmt: Any) -> str:
    name = str(getattr(fmt, "name", fmt))
    return _FORMAT_NAMES.get(name, name.upper())


def _resize(gray: Gray, scale: float, interpolation: int = cv2.INTER_AREA) -> Gray:
    height, width = gray.shape
    # Explicit size, at least one pixel: a 1-pixel-high strip scaled by fx/fy would come out empty.
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.ascontiguousarray(cv2.resize(gray, size, interpolation=interpolation),
                                dtype=np.uint8)


def _cap(gray: Gray, max_side: int) -> Gray:
    side = max(gray.shape)
    return gray if side <= max_side else _resize(gray, max_side / side)


def _half(gray: Gray) -> Gray | None:
    return None if min(gray.shape) < 2 * _MIN_SIDE else _resize(gray, 0.5)


def _stage_half(gray: Gray, formats: Formats = _ALL) -> list[Code]:
    # Area-averaging to half size averages away sensor noise, JPEG blocks, dot-peen gaps and
    # photo texture inside modules, and a quarter of the pixels makes it the cheapest stage.
    small = _half(gray)
    return [] if small is None else _zxing(small, "half", formats)


def _stage_full(gray: Gray, formats: Formats = _ALL) -> list[Code]:
    # Every zxing-cpp option: perspective, light-on-dark codes, its own pyramid.
    return _zxing(gray, "full", formats)


def _stage_half_blur(gray: Gray, formats: Formats = _ALL) -> list[Code]:
    # A further blur of the half frame joins dot-peen dots into modules and quietens the grain of
    # metal and of low light.
    small = _half(gray)
    if small is None:
        return []
    return _zxing(np.ascontiguousarray(cv2.GaussianBlur(small, (0, 0), 0.8)), "half_blur", formats)


def _upscaled(gray: Gray, factor: float) -> Gray | None:
    # Only a small region is worth upscaling: a code with modules of two pixels or less spans
    # at most a couple of hundred pixels, and a bigger one has modules large enough already.
    if max(gray.shape) * factor > _UPSCALE_MAX_SIDE:
        return None
    return _resize(gray, factor, cv2.INTER_CUBIC)


def _sharpen(gray: Gray, sigma: float, amount: float = 1.0) -> Gray:
    """An unsharp mask: ``amount`` times the detail finer than ``sigma`` added back."""
    soft = cv2.GaussianBlur(gray, (0, 0), sigma)
    return np.ascontiguousarray(cv2.addWeighted(gray, 1.0 + amount, soft, -amount, 0),
                                dtype=np.uint8)


# An upscaled frame is searched at its own size and polarity only: downscaling it again would
# undo the upscale, and inverted codes are read by the stages before.
_AS_IS = {"try_downscale": False, "try_invert": False}


def _stage_upscale_sharp(gray: Gray, formats: Formats = _ALL, factor: float = 2.0) -> list[Code]:
    # Modules of two pixels or less: zxing-cpp's binariser needs a few pixels per module, and
    # an unsharp mask after the cubic upscale restores the edges between modules.
    big = _upscaled(gray, factor)
    if big is None:
        return []
    return _zxing(_sharpen(big, factor), "upscale_sharp", formats, **_AS_IS)


def _stage_upscale3_sharp(gray: Gray, formats: Formats = _ALL) -> list[Code]:
    return _stage_upscale_sharp(gray, formats, 3.0)


def _upscaled_blurred(gray: Gray, sigma: float, stage: str, formats: Formats) -> list[Code]:
    big = _upscaled(gray, 2.0)
    if big is None:
        return []
    return _zxing(np.ascontiguousarray(cv2.GaussianBlur(big, (0, 0), sigma)), stage, formats,
                  **_AS_IS)


def _stage_upscale_blur(gray: Gray, formats: Formats = _ALL) -> list[Code]:
    # Dot-peen dots, upscaled then blurred, run together into the square modules the binariser
    # expects.
    return _upscaled_blurred(gray, 1.5, "upscale_blur", formats)


def _eroded(gray: Gray, kernel: npt.NDArray[Any], sigma: float, stage: str,
            formats: Formats) -> list[Code]:
    # Grey erosion grows dark marks into their neighbours: dot-peen dots and laser marks whose
    # modules do not touch become connected modules again.
    eroded = cv2.erode(gray, kernel)
    return _zxing(np.ascontiguousarray(cv2.GaussianBlur(eroded, (0, 0), sigma)), stage, formats)


def _stage_erode_blur(gray: Gray, formats: Formats = _ALL) -> list[Code]:
    return _eroded(gray, np.ones((3, 3), np.uint8), 1.0, "erode_blur", formats)


_CLAHE = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(8, 8))


def _stage_clahe_blur(gray: Gray, formats: Formats = _ALL) -> list[Code]:
    # Local contrast equalisation lifts a code out of a shadow or a dark frame; the blur keeps it
    # from lifting the noise as much.
    equalised = _CLAHE.apply(gray)
    return _zxing(np.ascontiguousarray(cv2.GaussianBlur(equalised, (0, 0), 1.0)), "clahe_blur",
                  formats)


_CODE128 = zxingcpp.BarcodeFormats([_B.Code128])
# Gradients of a 1-D code all point across its bars; a 2-D code, text or texture points every way.
_BARS_MIN_COHERENCE = 0.6


def _bars_angle(gray: Gray) -> float | None:
    """The angle (degrees) that turns the bars of a 1-D code upright, or ``None`` when the
    region's gradients do not share one direction (a 2-D code, text, texture)."""
    small = _resize(gray, 0.5) if min(gray.shape) > 3 * _MIN_SIDE else gray
    gx = cv2.Sobel(small, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(small, cv2.CV_32F, 0, 1, ksize=3)
    # The structure tensor summed over the region: its main axis is the common gradient
    # direction, and its anisotropy how common that direction is.
    jxx, jyy, jxy = float((gx * gx).sum()), float((gy * gy).sum()), float((gx * gy).sum())
    spread = jxx + jyy
    if spread <= 0.0 or np.hypot(jxx - jyy, 2 * jxy) < _BARS_MIN_COHERENCE * spread:
        return None
    return float(np.degrees(0.5 * np.arctan2(2 * jxy, jxx - jyy)))


def _stage_bars(gray: Gray, formats: Formats = _ALL) -> list[Code]:
    # A Code 128 label turned and blurred: turned upright, upscaled x2 across the bars and
    # averaged along them, each scan line sees the bars as a print head laid them down, with the
    # noise, JPEG blocks and blur of one row averaged away over many. The mod-103 check digit and
    # the quiet zones keep a wrong read out. A region searched without Code 128 is one whose
    # gradients the caller already found not to line up.
    angle = _bars_angle(gray) if _B.Code128 in formats else None
    if angle is None:
        return []
    height, width = gray.shape
    cos, sin = abs(np.cos(np.radians(angle))), abs(np.sin(np.radians(angle)))
    out_w, out_h = int(width * cos + height * sin), int(width * sin + height * cos)
    turn = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    turn[:, 2] += (out_w / 2 - width / 2, out_h / 2 - height / 2)  # the whole frame in view
    turn[0] *= 2.0  # across the bars: a module of 1.4 px becomes one the binariser can place
    upright = cv2.warpAffine(gray, turn, (2 * out_w, out_h), flags=cv2.INTER_CUBIC,
                             borderMode=cv2.BORDER_REPLICATE)
    averaged = np.ascontiguousarray(cv2.blur(upright, (1, 15)), dtype=np.uint8)
    return _zxing(averaged, "bars", _CODE128, try_rotate=False, try_downscale=False)


def _stage_adaptive(gray: Gray, formats: Formats = _ALL) -> list[Code]:
    # A threshold against the mean of each pixel's own 15x15 neighbourhood: a module under a
    # shadow edge, a glare fringe or a dark corner is judged against its neighbours only.
    soft = cv2.GaussianBlur(gray, (0, 0), 1.0)
    binary = cv2.adaptiveThreshold(soft, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 15, 2)
    return _zxing(np.ascontiguousarray(binary), "adaptive", formats,
                  binarizer=zxingcpp.Binarizer.BoolCast)



def _stage_flatten(gray: Gray, formats: Formats = _ALL) -> list[Code]:
    # Divided by its own blurred self, a frame loses its shading (a light ramp, metal's
    # streaks at a larger scale than a module) and keeps the modules.
    frame = gray.astype(np.float32)
    shading = cv2.GaussianBlur(frame, (0, 0), 8.0)
    flat = cv2.normalize(frame / np.maximum(shading, 1.0), None, 0, 255, cv2.NORM_MINMAX)
    soft = cv2.GaussianBlur(flat.astype(np.uint8), (0, 0), 1.0)
    return _zxing(np.ascontiguousarray(soft), "flatten", formats)


def _stage_upscale_soft(gray: Gray, formats: Formats = _ALL) -> list[Code]:
    return _upscaled_blurred(gray, 1.0, "upscale_soft", formats)


_DOT = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))


def _stage_erode_wide(gray: Gray, formats: Formats = _ALL) -> list[Code]:
    # Dot-peen dots further apart than erode_blur's 3x3 closes: a round 5x5 erosion joins them.
    return _eroded(gray, _DOT, 1.5, "erode_wide", formats)


def _stage_sharp(gray: Gray, formats: Formats = _ALL) -> list[Code]:
    # A strong unsharp mask at the region's own size: edges a defocus or a shake softened.
    return _zxing(_sharpen(gray, 2.0, 2.0), "sharp", formats)


def _stage_finder(gray: Gray, formats: Formats = _ALL) -> list[Code]:
    # A highlight or a finger over one corner takes a finder pattern with it, and zxing-cpp does
    # not locate a QR code by two: paint the third back where it can be, likeliest place first.
    for repaired in finder.repairs(gray):
        codes = _zxing(repaired, "finder", _QR_ONLY) or _stage_erasure(repaired)
        if codes:
            return codes
    return []


def _stage_erasure(gray: Gray, formats: Formats = _ALL) -> list[Code]:
    # A QR code located but past its error correction as read: read again with the modules of a
    # uniform patch (an occluder, a saturated highlight) as erasures, which cost half as much.
    found = zxingcpp.read_barcodes(gray, formats=_QR_ONLY, text_mode=zxingcpp.TextMode.Plain,
                                   return_errors=True)
    for barcode in found:
        if barcode.error is None or barcode.format != _B.QRCode:
            continue
        extra = barcode.extra if isinstance(barcode.extra, dict) else {}
        version, level, mask = extra.get("Version"), extra.get("ECLevel"), extra.get("DataMask")
        if not (isinstance(version, str) and version.isdigit() and isinstance(level, str)
                and isinstance(mask, int)):
            continue
        p = barcode.position
        corners = [(float(c.x), float(c.y))
                   for c in (p.top_left, p.top_right, p.bottom_right, p.bottom_left)]
        clean = erasure.repair(gray, corners, int(version), level, mask)
        if clean is not None:
            codes = _zxing(clean, "erasure", _QR_ONLY, **_AS_IS)
            if codes:
                return codes
    return []


def _zbar_codes(gray: Gray, stage: str, formats: Formats) -> list[Code]:
    codes = []
    code128 = _B.Code128 in formats
    for text, fmt, gs1 in zbar.decode(_cap(gray, _ZBAR_MAX_SIDE), code128=code128):
        codes.append(Code(_gs1_text(text, fmt) if gs1 else text, fmt, stage))
    return codes


def _stage_zbar(gray: Gray, formats: Formats = _ALL) -> list[Code]:
    return _zbar_codes(gray, "zbar", formats)


def _stage_zbar_half(gray: Gray, formats: Formats = _ALL) -> list[Code]:
    small = _half(gray)
    return [] if small is None else _zbar_codes(small, "zbar_half", formats)


# Whole-frame stages run before the code is looked for; region stages run on each region that
# looks like a code (see _regions), where they cost a fraction of the whole frame; the fallback
# runs on the whole frame for a code the region finder missed.
FRAME_STAGES: tuple[Stage, ...] = (("half", _stage_half),)
REGION_STAGES: tuple[Stage, ...] = (
    ("region_bars", _stage_bars),
    ("region_erasure", _stage_erasure),
    ("region_adaptive", _stage_adaptive),
    ("region_erode_blur", _stage_erode_blur),
    ("region_zbar_half", _stage_zbar_half),
    ("region", _stage_full),
    ("region_finder", _stage_finder),
    ("region_half_blur", _stage_half_blur),
    ("region_upscale_soft", _stage_upscale_soft),
    ("region_clahe_blur", _stage_clahe_blur),
    ("region_flatten", _stage_flatten),
    ("region_upscale3_sharp", _stage_upscale3_sharp),
    ("region_sharp", _stage_sharp),
    ("region_upscale_sharp", _stage_upscale_sharp),
    ("region_upscale_blur", _stage_upscale_blur),
    ("region_zbar", _stage_zbar),
    ("region_erode_wide", _stage_erode_wide),
)
# A region whose gradients line up holds a 1-D code: the stages that read Code 128 best go first
# there (turned upright and averaged, then upscaled and sharpened), the others after.
_LINEAR_FIRST = ("region_bars", "region_upscale_sharp")
LINEAR_REGION_STAGES: tuple[Stage, ...] = (
    *(stage for name in _LINEAR_FIRST for stage in REGION_STAGES if stage[0] == name),
    *(stage for stage in REGION_STAGES if stage[0] not in _LINEAR_FIRST),
)
FALLBACK_STAGES: tuple[Stage, ...] = (
    ("full", _stage_full),
    ("erasure", _stage_erasure),
    ("finder", _stage_finder),
    ("zbar", _stage_zbar),
    ("zbar_half", _stage_zbar_half),
)
STAGES = FRAME_STAGES + REGION_STAGES + FALLBACK_STAGES

# The region finder works on a frame of at most this many pixels a side.
_FIND_SIDE = 400
_MAX_REGIONS = 3


def _regions(gray: Gray) -> list[Roi]:
    """Boxes (in frame pixels) around the areas dense with contrast that a code makes: local
    standard deviation well above the frame's own noise, in a blob too thick to be a line or an
    edge. Largest first; none for a frame without such an area."""
    height, width = gray.shape
    scale = min(1.0, _FIND_SIDE / max(height, width))
    small = gray if scale == 1.0 else _resize(gray, scale)
    mean = cv2.boxFilter(small, cv2.CV_32F, (7, 7))
    var = cv2.sqrBoxFilter(small, cv2.CV_32F, (7, 7)) - mean * mean
    std = cv2.sqrt(cv2.max(var, 0.0))
    # The frame's own noise: what the quietest tenth of it shows. (A median would be the code
    # itself in a close-up that the code fills.)
    floor = float(np.percentile(std, 10))
    dense = (std > max(_REGION_MIN_STD, 2.5 * floor)).astype(np.uint8)
    closed = cv2.morphologyEx(dense, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    mask = cv2.morphologyEx(closed, cv2.MORPH_OPEN, np.ones((9, 9), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    boxes = []
    for index in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[index])
        # A code is a solid patch of detail; the band along a label's edge or a cable is not.
        if min(w, h) < _REGION_MIN_SIDE or area < _REGION_MIN_FILL * w * h:
            continue
        boxes.append((area, x, y, w, h))
    boxes.sort(reverse=True)
    out: list[Roi] = []
    for _, x, y, w, h in boxes[:_MAX_REGIONS]:
        # A margin for the quiet zone and the modules at the edge the filter rounded off.
        margin = 0.15 * max(w, h) + 6
        x0, y0 = max(0.0, (x - margin) / scale), max(0.0, (y - margin) / scale)
        x1 = min(float(width), (x + w + margin) / scale)
        y1 = min(float(height), (y + h + margin) / scale)
        out.append((int(x0), int(y0), int(x1 - x0), int(y1 - y0)))
    return out


_REGION_MIN_STD = 5.0
_REGION_MIN_SIDE = 10
_REGION_MIN_FILL = 0.4


def decode_gray(gray: Gray, budget_s: float | None = BUDGET_S
                ) -> tuple[list[Code], str | None]:
    """Run the stages on a grey frame; return the first stage's codes and its name (``None``
    when none found anything). No stage starts once ``budget_s`` has passed (``None``: no
    budget); a frame with no area that looks like a code stops after the first stage."""
    # The budget counts this thread's CPU time, not the clock: on a machine busy with other work
    # the clock runs on while the decoder waits for a core, and which stages run (so what is
    # read) would then depend on the load. On an idle tablet the two are the same.
    start = time.thread_time()

    def spent() -> bool:
        return budget_s is not None and time.thread_time() - start > budget_s

    for name, stage in FRAME_STAGES:
        codes = _unique(stage(gray, _QR_128), name)
        if codes:
            return codes, name
    regions = _regions(gray)
    if not regions and float(gray.std()) < _REGION_MIN_STD:
        return [], None  # a blank frame: nothing that could be a code
    # The largest region is the code on nearly every frame of the corpus (121 of 123 frames read
    # in a region): it gets every region stage, the others the first two.
    for rank, roi in enumerate(regions):
        part = crop(gray, roi)
        linear = _bars_angle(part) is not None
        formats = _ALL if linear else _2D
        stages = LINEAR_REGION_STAGES if linear else REGION_STAGES
        for name, stage in stages if rank == 0 else stages[:2]:
            if spent():
                return [], None
            codes = _unique(stage(part, formats), name)
            if codes:
                return codes, name
    for name, stage in FALLBACK_STAGES:
        if spent():
            break
        codes = _unique(stage(gray, _ALL), name)
        if codes:
            return codes, name
    return [], None


def decode_image(data: bytes | npt.NDArray[Any], roi: Roi | None = None) -> list[Code]:
    """Read every code in an image: encoded bytes (PNG, JPEG, …) or an OpenCV-style array.

    ``roi`` limits the search to a region ``(x, y, width, height)`` of the frame (a camera's
    aiming box): clipped to the frame, an error if nothing of it lies inside. Returns ``[]``
    when the image holds no readable code; raises :class:`~sidecar.errors.ImageInvalid` when
    ``data`` is not an image at all.
    """
    gray = to_gray(data)
    if roi is not None:
        gray = crop(gray, roi)
    codes, _ = decode_gray(gray)
    return codes


def crop(gray: Gray, roi: Roi) -> Gray:
    """The part of ``gray`` inside ``roi``, clipped to the frame."""
    x, y, width, height = roi
    if width <= 0 or height <= 0:
        raise ImageInvalid(f"region of interest {roi} is empty", roi=list(roi))
    frame_h, frame_w = gray.shape
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(frame_w, x + width), min(frame_h, y + height)
    if x1 <= x0 or y1 <= y0:
        raise ImageInvalid(f"region of interest {roi} lies outside the {frame_w}x{frame_h} frame",
                           roi=list(roi))
    return np.ascontiguousarray(gray[y0:y1, x0:x1])


def _unique(codes: list[Code], stage: str) -> list[Code]:
    # A frame showing the same label twice yields the same code twice; callers want it once.
    return [replace(code, stage=stage) for code in dict.fromkeys(codes)]
