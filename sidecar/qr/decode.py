"""Find and read the codes in a photo or camera frame: QR, Data Matrix (ECC200) and Code 128.

The frame goes through a chain of stages and the first stage that reads anything wins:

1. ``half``: zxing-cpp (QR and Code 128) on the frame at half size. Area-averaging removes
   sensor noise, JPEG blocks and texture inside modules, and a quarter of the pixels makes it the
   cheapest stage; most frames end here.
2. The region finder (``_regions``) marks the areas dense with contrast that a code makes. A frame
   without one, and without contrast at all (a blank label, a wall), ends here: the cheap exit.
3. Region stages on the largest region (the code on nearly every frame that gets this far), each
   answering a condition of the corpus: the region at full size with every zxing-cpp option
   (perspective, inverted, Data Matrix), blurred at half size (dot-peen, low light), ZBar at
   half size (photo-textured modules), upscaled and sharpened x2 and x3 (modules of two pixels
   or less), upscaled and blurred (dot-peen dots), eroded and blurred (marks whose modules do not
   touch), CLAHE and blurred (shadows, glare, low light), ZBar (curved print). Other regions get
   the first two.
4. Fallback stages on the whole frame for a code the region finder missed: zxing-cpp, ZBar.

No stage starts once ``BUDGET_S`` of this thread's CPU time has passed, which bounds a frame with
no code, or one nothing can read.

Stages were chosen on the degraded-frame corpus of ``tests/support/qr_corpus.py`` with seed 1;
``scripts/bench qr`` reports them on seed 2, which they were not chosen on, and on the 388 frames
of ``shared/data/qr-zxing``. Every engine returns only what its checksums verify, and the chain
adds no guessing of its own: a frame read wrongly is worse than a frame not read.

``scripts/bench qr`` (``KENSA_QR_SEED=2``, 40 frames per condition; frames read, all with zero
wrong reads):

===========  ==========  ===============  ==========
condition    this chain  zxing-cpp alone  ZBar alone
===========  ==========  ===============  ==========
blur         34          29               24
glare        25          20               14
lowlight     36          24               5
perspective  40          40               30
cylinder     40          37               29
jpeg         40          40               35
occlusion    23          21               22
inverted     40          40               0
small        32          25               4
uneven       37          25               16
laser        39          37               24
dotpeen      29          1                0
datamatrix   36          26               0
code128      37          25               30
all (560)    488 (87 %)  390 (70 %)       233 (42 %)
shared set   384 / 388   372 / 388        333 / 388
===========  ==========  ===============  ==========

Most of what stays unread is beyond any decoder: of the glare and occlusion frames missed, zxing-cpp
locates most symbols and then their Reed-Solomon check fails (more modules lost than the error
correction restores). The four shared-set frames are qrcode-2/13, which the chain reads as
"photography" with 83 % of its error correction unused, where the set's text file says
"photograph". Time per frame holding a code, process CPU: p50 5.4 ms, p95 29 ms (zxing-cpp alone
6.8 / 24 ms on the same frames; on the shared set 0.4 / 3.2 ms). A frame with no code costs about
25 ms (the 20 ms budget and the stage under way when it ran out), unless it holds no detail that
could be a code (a blank label, a wall): then about 5 ms. Measured on a machine shared with other
work.
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
from sidecar.qr import zbar
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


Stage = tuple[str, Callable[[Gray], list[Code]]]
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
    return [_code(b, stage) for b in found]


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


def _stage_half(gray: Gray) -> list[Code]:
    # Area-averaging to half size averages away sensor noise, JPEG blocks, dot-peen gaps and
    # photo texture inside modules, and a quarter of the pixels makes it the cheapest stage.
    small = _half(gray)
    return [] if small is None else _zxing(small, "half", _QR_128)


def _stage_full(gray: Gray) -> list[Code]:
    # Every zxing-cpp option: perspective, light-on-dark codes, its own pyramid.
    return _zxing(gray, "full", _ALL)


def _stage_half_blur(gray: Gray) -> list[Code]:
    # A further blur of the half frame joins dot-peen dots into modules and quietens the grain of
    # metal and of low light.
    small = _half(gray)
    if small is None:
        return []
    return _zxing(np.ascontiguousarray(cv2.GaussianBlur(small, (0, 0), 0.8)), "half_blur", _ALL)


def _upscaled(gray: Gray, factor: float) -> Gray | None:
    # Only a small region is worth upscaling: a code with modules of two pixels or less spans
    # at most a couple of hundred pixels, and a bigger one has modules large enough already.
    if max(gray.shape) * factor > _UPSCALE_MAX_SIDE:
        return None
    return _resize(gray, factor, cv2.INTER_CUBIC)


def _sharpen(gray: Gray, sigma: float) -> Gray:
    soft = cv2.GaussianBlur(gray, (0, 0), sigma)
    return np.ascontiguousarray(cv2.addWeighted(gray, 2.0, soft, -1.0, 0), dtype=np.uint8)


# An upscaled frame is searched at its own size and polarity only: downscaling it again would
# undo the upscale, and inverted codes are read by the stages before.
_AS_IS = {"try_downscale": False, "try_invert": False}


def _stage_upscale_sharp(gray: Gray, factor: float = 2.0) -> list[Code]:
    # Modules of two pixels or less: zxing-cpp's binariser needs a few pixels per module, and
    # an unsharp mask after the cubic upscale restores the edges between modules.
    big = _upscaled(gray, factor)
    if big is None:
        return []
    return _zxing(_sharpen(big, factor), "upscale_sharp", _ALL, **_AS_IS)


def _stage_upscale3_sharp(gray: Gray) -> list[Code]:
    return _stage_upscale_sharp(gray, 3.0)


def _stage_upscale_blur(gray: Gray) -> list[Code]:
    # Dot-peen dots, upscaled then blurred, run together into the square modules the binariser
    # expects.
    big = _upscaled(gray, 2.0)
    if big is None:
        return []
    return _zxing(np.ascontiguousarray(cv2.GaussianBlur(big, (0, 0), 1.5)), "upscale_blur",
                  _ALL, **_AS_IS)


def _stage_erode_blur(gray: Gray) -> list[Code]:
    # Grey erosion grows dark marks into their neighbours: dot-peen dots and laser marks whose
    # modules do not touch become connected modules again.
    eroded = cv2.erode(gray, np.ones((3, 3), np.uint8))
    return _zxing(np.ascontiguousarray(cv2.GaussianBlur(eroded, (0, 0), 1.0)), "erode_blur",
                  _ALL)


_CLAHE = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(8, 8))


def _stage_clahe_blur(gray: Gray) -> list[Code]:
    # Local contrast equalisation lifts a code out of a shadow or a dark frame; the blur keeps it
    # from lifting the noise as much.
    equalised = _CLAHE.apply(gray)
    return _zxing(np.ascontiguousarray(cv2.GaussianBlur(equalised, (0, 0), 1.0)), "clahe_blur",
                  _ALL)


def _zbar_codes(gray: Gray, stage: str) -> list[Code]:
    codes = []
    for text, fmt, gs1 in zbar.decode(_cap(gray, _ZBAR_MAX_SIDE), code128=True):
        codes.append(Code(_gs1_text(text, fmt) if gs1 else text, fmt, stage))
    return codes


def _stage_zbar(gray: Gray) -> list[Code]:
    return _zbar_codes(gray, "zbar")


def _stage_zbar_half(gray: Gray) -> list[Code]:
    small = _half(gray)
    return [] if small is None else _zbar_codes(small, "zbar_half")


# Whole-frame stages run before the code is looked for; region stages run on each region that
# looks like a code (see _regions), where they cost a fraction of the whole frame; the fallback
# runs on the whole frame for a code the region finder missed.
FRAME_STAGES: tuple[Stage, ...] = (("half", _stage_half),)
REGION_STAGES: tuple[Stage, ...] = (
    ("region", _stage_full),
    ("region_half_blur", _stage_half_blur),
    ("region_zbar_half", _stage_zbar_half),
    ("region_upscale_sharp", _stage_upscale_sharp),
    ("region_erode_blur", _stage_erode_blur),
    ("region_upscale_blur", _stage_upscale_blur),
    ("region_clahe_blur", _stage_clahe_blur),
    ("region_zbar", _stage_zbar),
    ("region_upscale3_sharp", _stage_upscale3_sharp),
)
FALLBACK_STAGES: tuple[Stage, ...] = (
    ("full", _stage_full),
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
        codes = _unique(stage(gray), name)
        if codes:
            return codes, name
    regions = _regions(gray)
    if not regions and float(gray.std()) < _REGION_MIN_STD:
        return [], None  # a blank frame: nothing that could be a code
    # The largest region is the code on nearly every frame of the corpus (121 of 123 frames read
    # in a region): it gets every region stage, the others the first two.
    for rank, roi in enumerate(regions):
        part = crop(gray, roi)
        for name, stage in REGION_STAGES if rank == 0 else REGION_STAGES[:2]:
            if spent():
                return [], None
            codes = _unique(stage(part), name)
            if codes:
                return codes, name
    for name, stage in FALLBACK_STAGES:
        if spent():
            break
        codes = _unique(stage(gray), name)
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
