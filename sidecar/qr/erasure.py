"""Read a QR code that zxing-cpp locates but cannot correct: the unreadable modules as erasures.

A finger, a strip of tape or a specular highlight over a label hides a patch of modules. A
decoder that reads every module as dark or light turns each hidden one into a guess, and Reed-
Solomon corrects at most half as many wrong codewords as it has check codewords: a patch of 6 %
of a level-M symbol already exhausts that. Told *where* the unreadable codewords are, the same
code restores twice as many (an erasure costs one check codeword, an error two), and the patch
is easy to see: its modules are all alike (an opaque occluder, a saturated highlight) where a
symbol's modules alternate.

:func:`repair` takes what zxing-cpp reports for a symbol whose check failed (its four corners,
version, error-correction level and mask), samples the module grid through the corners, marks
the modules inside uniform patches as erased, corrects each Reed-Solomon block with its erasures
(``reedsolo``), and draws the corrected symbol as a clean image. The caller reads that image with
zxing-cpp, which parses the segments and checks every block again. A block is accepted only with
check codewords to spare (``2 * errors + erasures < check codewords``); a symbol whose grid does
not sample its own timing patterns back is not touched. A frame read wrongly is worse than a
frame not read.

Layout (function patterns, codeword order, masks, block structure) comes from the ``qrcode``
package, the encoder the server already uses for enrollment codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np
import numpy.typing as npt
import qrcode.base
import qrcode.constants
import qrcode.main
import qrcode.util
from reedsolo import ReedSolomonError, RSCodec

from sidecar.qr.image import Gray

__all__ = ["repair"]

Point = tuple[float, float]

_LEVELS = {
    "L": qrcode.constants.ERROR_CORRECT_L,
    "M": qrcode.constants.ERROR_CORRECT_M,
    "Q": qrcode.constants.ERROR_CORRECT_Q,
    "H": qrcode.constants.ERROR_CORRECT_H,
}
# Versions above this are not worth the sampling: their modules are too small to sample through
# four corners alone on a camera frame (zxing-cpp needs the alignment patterns for them).
_MAX_VERSION = 15
# Where in a module the sampler looks (fractions of a module): the centre and around it, away
# from the edges a blur smears into the neighbours.
_OFFSETS = (0.3, 0.5, 0.7)
# A module is in a uniform patch when the modules around it (5x5) vary by less than this share
# of the symbol's own contrast.
_FLAT = 0.25
# Modules within this many of a uniform patch are erased too.
_GROW = 1
# Timing-pattern modules that must sample back right for the grid to be trusted.
_MIN_TIMING_AGREEMENT = 0.8
_MODULE_PX = 4
_QUIET = 4


class _Layout:
    """Where a version's data modules are and in which order, and its Reed-Solomon blocks."""

    def __init__(self, version: int, level: int) -> None:
        self.version, self.level = version, level
        self.size = version * 4 + 17
        code = qrcode.main.QRCode(version=version, error_correction=level)
        code.modules_count = self.size
        code.modules = [[None] * self.size for _ in range(self.size)]
        code.setup_position_probe_pattern(0, 0)
        code.setup_position_probe_pattern(self.size - 7, 0)
        code.setup_position_probe_pattern(0, self.size - 7)
        code.setup_position_adjust_pattern()
        code.setup_timing_pattern()
        code.setup_type_info(False, 0)
        if version >= 7:
            code.setup_type_number(False)
        self.order = _data_order(code.modules, self.size)
        self.blocks = [(b.total_count, b.data_count)
                       for b in qrcode.base.rs_blocks(version, level)]


def _data_order(modules: list[list[bool | None]], size: int) -> list[tuple[int, int]]:
    """The data modules in the order their bits are placed: two-column strips from the right,
    up and down in turn, skipping the vertical timing column (as ``QRCode.map_data`` does)."""
    order: list[tuple[int, int]] = []
    row, step = size - 1, -1
    for col in range(size - 1, 0, -2):
        if col <= 6:
            col -= 1
        while True:
            for c in (col, col - 1):
                if modules[row][c] is None:
                    order.append((row, c))
            row += step
            if row < 0 or row >= size:
                row -= step
                step = -step
                break
    return order


@lru_cache(maxsize=64)
def _layout(version: int, level: int) -> _Layout:
    return _Layout(version, level)


@lru_cache(maxsize=32)
def _codec(check_words: int) -> RSCodec:
    # QR's Reed-Solomon: GF(256) with x^8+x^4+x^3+x^2+1, generator roots a^0 .. a^(n-1).
    return RSCodec(check_words, nsize=255, fcr=0, prim=0x11D, generator=2, c_exp=8)


def _sample(gray: Gray, corners: Sequence[Point], size: int) -> npt.NDArray[np.float32]:
    """Each module's mean grey over a 3x3 lattice inside it, through the homography that takes
    the module grid onto the symbol's four corners (top left, top right, bottom right, bottom
    left, as the symbol reads)."""
    grid = np.array([[0, 0], [size, 0], [size, size], [0, size]], np.float32)
    homography = cv2.getPerspectiveTransform(grid, np.array(corners, np.float32))
    steps = np.asarray(_OFFSETS, np.float32)
    # Sample coordinates in module units: (row, offset) x (column, offset).
    ys = (np.arange(size, dtype=np.float32)[:, None] + steps[None, :]).reshape(-1)
    xs = ys.copy()
    mx, my = np.meshgrid(xs, ys)
    points = np.stack([mx, my], axis=-1).reshape(-1, 1, 2)
    mapped = cv2.perspectiveTransform(points, homography).reshape(len(ys), len(xs), 2)
    values = cv2.remap(gray.astype(np.float32), mapped[..., 0].copy(), mapped[..., 1].copy(),
                       cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    k = len(_OFFSETS)
    return np.asarray(values.reshape(size, k, size, k).mean(axis=(1, 3)), np.float32)


def _classify(values: npt.NDArray[np.float32]
              ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Dark modules against a threshold local to each (a shadow or a glare fringe moves it), and
    the modules that cannot be told: inside a patch where nothing alternates."""
    low, high = np.percentile(values, (5, 95))
    contrast = float(high - low)
    if contrast <= 1.0:
        flat = np.ones(values.shape, bool)
        return np.zeros(values.shape, bool), flat
    local_mean = cv2.blur(values, (9, 9), borderType=cv2.BORDER_REFLECT)
    mean5 = cv2.blur(values, (5, 5), borderType=cv2.BORDER_REFLECT)
    sq5 = cv2.blur(values * values, (5, 5), borderType=cv2.BORDER_REFLECT)
    local_std = np.sqrt(np.maximum(sq5 - mean5 * mean5, 0.0))
    # Half of a random module pattern is dark: its standard deviation is half the contrast.
    flat = (local_std < _FLAT * contrast / 2).astype(np.uint8)
    # The patch's own edge: modules half under it read as anything.
    erased = cv2.dilate(flat, np.ones((2 * _GROW + 1, 2 * _GROW + 1), np.uint8)) > 0
    return values < local_mean, erased


def _timing_agreement(dark: npt.NDArray[np.bool_], size: int) -> float:
    expected = (np.arange(8, size - 8) % 2) == 0
    row = dark[6, 8:size - 8]
    col = dark[8:size - 8, 6]
    return float(((row == expected).mean() + (col == expected).mean()) / 2)


def repair(gray: Gray, corners: Sequence[Point], version: int, level: str, mask: int
           ) -> Gray | None:
    """The symbol at ``corners`` of ``gray`` redrawn clean, its codewords corrected with the
    uniform patches taken as erasures; ``None`` when that is not possible with check codewords to
    spare. ``version`` (1-40), ``level`` (``"L"``, ``"M"``, ``"Q"``, ``"H"``) and ``mask`` (0-7)
    are what the decoder read from the symbol's format and version information."""
    if level not in _LEVELS or not 1 <= version <= _MAX_VERSION or not 0 <= mask <= 7:
        return None
    layout = _layout(version, _LEVELS[level])
    size = layout.size
    values = _sample(gray, corners, size)
    dark, erased = _classify(values)
    if _timing_agreement(dark, size) < _MIN_TIMING_AGREEMENT:
        return None
    masked = qrcode.util.mask_func(mask)
    total = sum(t for t, _ in layout.blocks)
    codewords = [0] * total
    lost = [False] * total
    for index, (row, col) in enumerate(layout.order[: total * 8]):
        word, bit = divmod(index, 8)
        if bool(dark[row, col]) != bool(masked(row, col)):
            codewords[word] |= 0x80 >> bit
        if erased[row, col]:
            lost[word] = True
    corrected = _correct(codewords, lost, layout.blocks)
    if corrected is None:
        return None
    return _draw(layout, corrected, mask)


def _correct(codewords: list[int], lost: list[bool], blocks: list[tuple[int, int]]
             ) -> list[int] | None:
    """Undo the interleaving, correct each block, interleave again."""
    slots: list[list[int]] = [[] for _ in blocks]  # positions in the stream, block by block
    position = 0
    for i in range(max(d for _, d in blocks)):
        for b, (_, data) in enumerate(blocks):
            if i < data:
                slots[b].append(position)
                position += 1
    for i in range(max(t - d for t, d in blocks)):
        for b, (total, data) in enumerate(blocks):
            if i < total - data:
                slots[b].append(position)
                position += 1
    out = list(codewords)
    for (total, data), where in zip(blocks, slots, strict=True):
        check = total - data
        word = bytearray(codewords[p] for p in where)
        erase = [i for i, p in enumerate(where) if lost[p]]
        if len(erase) >= check:
            return None
        try:
            _, fixed, errata = _codec(check).decode(word, erase_pos=erase or None)
        except ReedSolomonError:
            return None
        errors = len(set(errata) - set(erase))
        # A block corrected to its last check codeword may be another valid block: keep a margin.
        if 2 * errors + len(erase) >= check:
            return None
        for i, p in enumerate(where):
            out[p] = fixed[i]
    return out


def _draw(layout: _Layout, codewords: list[int], mask: int) -> Gray:
    code = qrcode.main.QRCode(version=layout.version, error_correction=layout.level)
    code.data_cache = codewords
    code.makeImpl(False, mask)
    modules = np.asarray(code.modules, dtype=bool)
    image = np.where(modules, 0, 255).astype(np.uint8)
    image = np.pad(image, _QUIET, constant_values=255)
    return np.ascontiguousarray(
        cv2.resize(image, None, fx=_MODULE_PX, fy=_MODULE_PX, interpolation=cv2.INTER_NEAREST))
