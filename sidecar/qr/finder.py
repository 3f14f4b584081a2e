"""Paint back the third finder pattern of a QR code whose other two show.

A specular highlight that saturates one corner of a label, or a finger or a strip of tape over
it, takes one of the three finder patterns (the nested squares at three corners) with it. The
data modules the code needs are mostly still there, and Reed-Solomon would restore the few lost,
but zxing-cpp's detector starts from three finders: with two it does not locate the symbol at
all. :func:`repairs` finds the finders that show and, when exactly two of one symbol do, returns
copies of the frame with an ideal finder painted where the third can be; the caller reads each
copy with zxing-cpp, likeliest first.

Finding: an adaptive threshold, then contours nested three deep (dark ring, light hole, dark
centre) whose hole and centre are concentric squares of the right ratio. The module size is the
sum of the hole's and the centre's side over 8, which the threshold's bias cancels out of; a
line fitted to each side of the hole gives the finder's two side directions and the module size
along each, so that a tilted label's third corner is placed along its real sides.

Placing: two finders along one side of the symbol (the span square to their sides) have the
third a span away along the sides of either, on the side where the symbol's modules are; two at
opposite corners have it where a side line of one meets a side line of the other. The fourth
corner of the square is a candidate too (nothing tells it apart but its detail): candidates
go from the least busy place (the washed-out or covered finder) to the most. A candidate whose
finder would cross the frame's edge is left out. Two finders do not show how far a label leans
back: the third is stepped off at their module size, which holds to a module on a label whose
far edge is up to about 4 % shorter than its near one (a tilt of some 7 degrees for a label a
third as wide as its distance from the camera); beyond that a third finder on the near side
lands short.

Painting never makes a wrong read by itself: the codewords still have to pass the symbol's
Reed-Solomon check, and a finder painted at the wrong corner gives a grid that fails it.

Measured on the frames of the degraded-frame corpus (``tests/support/qr_corpus.py``, seeds 1
and 3, 40 a condition) that the decoding chain of :mod:`sidecar.qr.decode` misses (22 glare, 18
occlusion and 74 other frames), each repair read by zxing-cpp with every format:

* repairs of the largest region (``decode._regions``), read at full size: 7 glare frames read
  (seed 1: 3 of 7, seed 3: 4 of 15), 4 occlusion (3 of 10, 1 of 8), 1 other (an uneven-light
  frame); the first repair alone reads 11 of the 12. Halving the repaired region reads 6, and
  the repairs of the whole frame 9 (6 halved): none that the region at full size misses.
* on seed 2, which nothing here was chosen on (the chain's 66 misses: 15 glare, 15 occlusion,
  36 others): repairs of the region read 4 (all occlusion), of the whole frame 7 (2 glare, 4
  occlusion, 1 other), 7 in all.
* no wrong read: the repairs of every frame of seeds 1 and 3 (1120 frames, 80 without a code),
  read at full and half size (542 reads), gave no text but the frame's own (seed 2: 362
  reads, none wrong); nor did 400 frames of two finders in random modules (574 reads).
* time per call (``time.thread_time``, on a machine shared with other work): on the region,
  p50 1.0 ms, p95 2.9 ms, at most 6.4 ms over those 1120 frames (0.9 / 2.2 ms on frames
  without a code, which seldom hold a pair); on the whole 800x600 frame p50 2.6 ms, p95 6.6 ms.
  Repairing the region and reading the repairs until one reads, on the missed frames: p50
  1.0 ms, p95 3.5 ms, at most 4.9 ms with zxing-cpp's QR formats only (a painted finder helps
  no other symbology); p50 1.3 ms, p95 6.6 ms, at most 17 ms with every format.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from sidecar.errors import ImageInvalid
from sidecar.qr.image import Gray

__all__ = ["Finder", "find_finders", "repairs"]

Vec = tuple[float, float]
Contour = npt.NDArray[Any]


@dataclass(frozen=True, slots=True)
class Finder:
    """A finder pattern in the frame: its centre, its two side directions (unit vectors, ``u``
    at about 0-90 degrees from the x axis, ``v`` about a quarter turn on) and its module size, in
    pixels."""

    x: float
    y: float
    u: Vec
    v: Vec
    module: float

    @property
    def angle(self) -> float:
        return math.atan2(self.u[1], self.u[0]) % (math.pi / 2)


# A finder's hole (the light ring, 5x5 modules) against its dark centre (3x3): 25/9 for a perfect
# print; a threshold that moves every edge by a quarter module in either direction gives 1.6 to
# 4.8.
_HOLE_CENTRE_RATIO = (1.4, 6.0)
# Below this the threshold no longer keeps a finder's rings apart; the chain's upscaling stages
# are for such codes.
_MIN_MODULE_PX = 1.2
# A frame narrower than this holds no symbol (21 modules) at that module size.
_MIN_SIDE = 21
# More nested squares than this are a pattern (a chequered sticker, a keypad), not a code.
_MAX_FINDERS = 12
# A pixel is dark only this many grey levels below its neighbourhood's mean: paper and noise then
# make no contours at all. With none, a noisy frame gives thousands of specks, and tracing them
# costs several times the rest.
_OFFSET = 6
# A side of a finder pair showing less than this share of the other side's detail is the label
# beyond the symbol, not the symbol: no third finder is painted there.
_SIDE_RATIO = 0.8
# Two finders of one symbol differ in module size by a tilt's foreshortening at most.
_SIZE_RATIO = 1.35
_ANGLE_TOL = math.radians(14)
# Finder centres of a version-1 symbol lie 14 modules apart; some slack for an estimated module.
_MIN_SPAN_MODULES = 11.0
_MAX_SPAN_MODULES = 180.0


def _check(gray: Gray) -> None:
    if not isinstance(gray, np.ndarray) or gray.ndim != 2 or gray.dtype != np.uint8:
        raise ImageInvalid("expected a grey uint8 frame",
                           shape=list(getattr(gray, "shape", ())),
                           dtype=str(getattr(gray, "dtype", type(gray).__name__)))


def _block(gray: Gray) -> int:
    # The threshold's window: a fraction of the frame (a region round a code is a few finders
    # wide), at least a whole finder of the smallest modules, at most a little more than one of
    # the largest (7 modules of 7 px).
    side = min(gray.shape)
    block = int(side / 8) | 1
    return max(15, min(block, 61))


def find_finders(gray: Gray) -> list[Finder]:
    """Finder patterns (dark square, light ring, dark centre) in ``gray``: none where more than
    a dozen show (a pattern of squares, not a code). Raises :class:`ImageInvalid` for anything but
    a 2-D ``uint8`` frame."""
    _check(gray)
    if min(gray.shape) < _MIN_SIDE:
        return []
    smooth = cv2.GaussianBlur(gray, (0, 0), 0.8)
    dark = cv2.adaptiveThreshold(smooth, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV,
                                 _block(gray), _OFFSET)
    contours, hierarchy = cv2.findContours(dark, cv2.RETR_TREE, cv2.CHAIN_APPROX_NONE)
    if hierarchy is None:
        return []
    tree = hierarchy[0]  # per contour: next, previous, first child, parent
    parent = tree[:, 3]
    grand = np.where(parent >= 0, parent[np.maximum(parent, 0)], -1)
    # A dark centre: no hole of its own, inside a hole, which lies inside a dark ring.
    picks = np.nonzero((tree[:, 2] < 0) & (grand >= 0))[0]
    found: list[Finder] = []
    for index in picks.tolist():
        finder = _finder(contours[int(parent[index])], contours[index])
        if finder is not None:
            found.append(finder)
            if len(found) > _MAX_FINDERS:
                return []
    return found


def _finder(hole: Contour, centre: Contour) -> Finder | None:
    a_centre = cv2.contourArea(centre)
    a_hole = cv2.contourArea(hole)
    if a_centre < 4 or a_hole <= 0:
        return None
    ratio = a_hole / a_centre
    if not _HOLE_CENTRE_RATIO[0] <= ratio <= _HOLE_CENTRE_RATIO[1]:
        return None
    (hx, hy), (hw, hh), hangle = cv2.minAreaRect(hole)
    (cx, cy), (cw, ch), _ = cv2.minAreaRect(centre)
    if min(hw, hh) <= 0 or min(cw, ch) <= 0:
        return None
    if max(hw, hh) / min(hw, hh) > 1.6 or max(cw, ch) / min(cw, ch) > 1.8:
        return None
    # Squares, not rings of some other shape: each fills most of its rectangle.
    if a_hole < 0.6 * hw * hh or a_centre < 0.55 * cw * ch:
        return None
    side = math.sqrt(a_hole)
    if math.hypot(hx - cx, hy - cy) > 0.2 * side:
        return None
    # The hole is 5 modules less twice the threshold's bias, the centre 3 plus twice: their sum
    # is 8 modules whatever the bias.
    module = (math.sqrt(a_hole) + math.sqrt(a_centre)) / 8
    if module < _MIN_MODULE_PX:
        return None
    x, y = (hx + cx) / 2, (hy + cy) / 2
    t = math.radians(hangle) % (math.pi / 2)
    u = (math.cos(t), math.sin(t))
    v = (-u[1], u[0])
    sides = _sides(hole, x, y, u, v)
    if sides is not None:
        u, v = sides
    return Finder(x, y, u, v, module)


def _sides(hole: Contour, x: float, y: float, u: Vec, v: Vec) -> tuple[Vec, Vec] | None:
    """The hole's side directions from a line fitted to each of its four sides: under a tilt
    the finder is no square, and its sides are what a third finder lines up with. (Its widths
    are left alone: the few per cent a tilt changes them by is less than they can be measured
    to, and a third finder placed by them lands further off than by the module size.)"""
    pts = hole.reshape(-1, 2).astype(np.float32) - np.array((x, y), np.float32)
    s = pts @ np.array(u, np.float32)
    r = pts @ np.array(v, np.float32)
    # Points near a corner belong to neither side for sure.
    margin = 0.15 * float(np.abs(s).max())
    lines = []
    for mask in (s > np.abs(r) + margin, -s > np.abs(r) + margin,
                 r > np.abs(s) + margin, -r > np.abs(s) + margin):
        side = pts[mask]
        if len(side) < 3:
            return None
        vx, vy, x0, y0 = (float(c) for c in cv2.fitLine(side, cv2.DIST_L2, 0, 0.01, 0.01).ravel())
        lines.append((vx, vy, x0, y0))
    # Sides across u run along v and the other way round.
    v_dir = _mean_dir(lines[0], lines[1], v)
    u_dir = _mean_dir(lines[2], lines[3], u)
    wu = abs((lines[0][2] - lines[1][2]) * v_dir[1] - (lines[0][3] - lines[1][3]) * v_dir[0])
    wv = abs((lines[2][2] - lines[3][2]) * u_dir[1] - (lines[2][3] - lines[3][3]) * u_dir[0])
    if wu <= 0 or wv <= 0 or not 0.6 < wu / wv < 1.6:
        return None  # a fit gone astray (a side lost to noise): the rectangle's sides will do
    return u_dir, v_dir


def _mean_dir(a: tuple[float, float, float, float], b: tuple[float, float, float, float],
              near: Vec) -> Vec:
    ax, ay = (a[0], a[1]) if a[0] * near[0] + a[1] * near[1] >= 0 else (-a[0], -a[1])
    bx, by = (b[0], b[1]) if b[0] * near[0] + b[1] * near[1] >= 0 else (-b[0], -b[1])
    nx, ny = ax + bx, ay + by
    norm = math.hypot(nx, ny)
    return (nx / norm, ny / norm)


def _angle_diff(a: float, b: float) -> float:
    """Difference of two directions modulo a quarter turn, in [0, pi/4]."""
    d = (a - b) % (math.pi / 2)
    return min(d, math.pi / 2 - d)


def _dot(a: Vec, b: Vec) -> float:
    return a[0] * b[0] + a[1] * b[1]


def _intersect(p: Vec, d: Vec, q: Vec, e: Vec) -> Vec | None:
    det = d[0] * (-e[1]) - d[1] * (-e[0])
    if abs(det) < 0.5:
        return None
    rx, ry = q[0] - p[0], q[1] - p[1]
    t = (rx * (-e[1]) - ry * (-e[0])) / det
    return (p[0] + t * d[0], p[1] + t * d[1])


def _thirds(a: Finder, b: Finder) -> list[Finder]:
    """Where the third finder of a symbol whose other two are ``a`` and ``b`` can be."""
    if max(a.module, b.module) > _SIZE_RATIO * min(a.module, b.module):
        return []
    if _angle_diff(a.angle, b.angle) > _ANGLE_TOL:
        return []
    dx, dy = b.x - a.x, b.y - a.y
    span = math.hypot(dx, dy)
    e = (dx / span, dy / span)
    off = _angle_diff(math.atan2(dy, dx), a.angle)
    out: list[Finder] = []
    if off < _ANGLE_TOL:
        # Adjacent corners: the third lies along the side of either that is square to the span.
        across = (-e[1], e[0])
        steps = []
        for f in (a, b):
            w = f.u if abs(_dot(f.u, e)) < abs(_dot(f.v, e)) else f.v
            # Both steps point to the same side of the span.
            steps.append(w if _dot(w, across) >= 0 else (-w[0], -w[1]))
        modules = span / ((a.module + b.module) / 2)
        if not _MIN_SPAN_MODULES <= modules <= _MAX_SPAN_MODULES:
            return []
        for f, w in zip((a, b), steps, strict=True):
            dist = modules * f.module
            for sign in (1.0, -1.0):
                out.append(Finder(f.x + sign * dist * w[0], f.y + sign * dist * w[1],
                                  f.u, f.v, f.module))
    elif abs(off - math.pi / 4) < _ANGLE_TOL:
        # Opposite corners: the third is where a side line of one meets a side line of the
        # other (the fourth corner of the square is the other meeting point).
        modules = span / math.sqrt(2) / ((a.module + b.module) / 2)
        if not _MIN_SPAN_MODULES <= modules <= _MAX_SPAN_MODULES:
            return []
        # b's side along a's u: its own u, or its v when the two angles straddle a right angle.
        bu, bv = (b.u, b.v) if abs(_dot(a.u, b.u)) >= abs(_dot(a.u, b.v)) else (b.v, b.u)
        for da, db in ((a.u, bv), (a.v, bu)):
            point = _intersect((a.x, a.y), da, (b.x, b.y), db)
            if point is not None:
                out.append(Finder(point[0], point[1], a.u, a.v, (a.module + b.module) / 2))
    return out


def _quad(f: Finder, half: float) -> npt.NDArray[np.int32]:
    hu = hv = half * f.module
    corners = [(-hu, -hv), (hu, -hv), (hu, hv), (-hu, hv)]
    pts = [(f.x + p * f.u[0] + q * f.v[0], f.y + p * f.u[1] + q * f.v[1]) for p, q in corners]
    return np.round(np.array(pts) * 16).astype(np.int32)


def _level(gray: Gray, x: float, y: float, r: int) -> float:
    h, w = gray.shape
    xi, yi = round(x), round(y)
    patch = gray[max(0, yi - r):min(h, yi + r + 1), max(0, xi - r):min(w, xi + r + 1)]
    return float(np.median(patch)) if patch.size else 0.0


def _levels(gray: Gray, finders: list[Finder]) -> tuple[float, float]:
    """The ink and the paper as the found finders show them: their centres and light rings."""
    dark, light = [], []
    for f in finders:
        r = max(0, int(f.module / 2))
        dark.append(_level(gray, f.x, f.y, r))
        for su, sv in ((2, 0), (-2, 0), (0, 2), (0, -2)):
            light.append(_level(gray, f.x + (su * f.u[0] + sv * f.v[0]) * f.module,
                                f.y + (su * f.u[1] + sv * f.v[1]) * f.module, r))
    return float(np.median(dark)), float(np.median(light))


def _paint(gray: Gray, f: Finder, dark: float, light: float) -> Gray:
    out = gray.copy()
    for half, value in ((4.5, light), (3.5, dark), (2.5, light), (1.5, dark)):
        cv2.fillConvexPoly(out, _quad(f, half), round(value), lineType=cv2.LINE_AA,
                           shift=4)
    return out


def _busy(gray: Gray, x: float, y: float, r: float) -> float:
    """Grey-level spread in a square of half-side ``r`` around a point (every other pixel)."""
    h, w = gray.shape
    x0, x1 = max(0, int(x - r)), min(w, int(x + r) + 1)
    y0, y1 = max(0, int(y - r)), min(h, int(y + r) + 1)
    patch = gray[y0:y1:2, x0:x1:2]
    return float(patch.std()) if patch.size else 0.0


def _ranked(gray: Gray, a: Finder, b: Finder, thirds: list[Finder]) -> list[Finder]:
    """The candidates likeliest first: on the side of the span where the code's modules are, and
    where the frame shows the least detail (the washed-out or covered finder) before the busy
    corner of data modules."""
    span = math.hypot(b.x - a.x, b.y - a.y)
    if len(thirds) == 4:
        # Adjacent corners: candidates 0 and 2 lie on one side of the span, 1 and 3 on the
        # other. The symbol fills the square on its side; beyond the other lie its quiet zone
        # and the label.
        mx, my = (a.x + b.x) / 2, (a.y + b.y) / 2
        sides = []
        for first, second in ((0, 2), (1, 3)):
            cx = (thirds[first].x + thirds[second].x + 2 * mx) / 4
            cy = (thirds[first].y + thirds[second].y + 2 * my) / 4
            sides.append(_busy(gray, cx, cy, span / 4))
        keep = [i for i in range(4) if sides[i % 2] >= _SIDE_RATIO * max(sides)]
        thirds = [thirds[i] for i in keep]
    return sorted(thirds, key=lambda f: _busy(gray, f.x, f.y, 3.5 * f.module))


def repairs(gray: Gray) -> list[Gray]:
    """Copies of ``gray`` with an ideal finder pattern painted where a QR code's third finder
    would be, when exactly two finders of one symbol show; ``[]`` otherwise (no code, a whole
    one, a Data Matrix or Code 128, a frame too small). The likeliest place comes first. Dark
    modules on a light ground only. Raises :class:`ImageInvalid` for anything but a 2-D
    ``uint8`` frame."""
    finders = find_finders(gray)
    if len(finders) != 2:
        return []
    a, b = finders
    thirds = _thirds(a, b)
    if not thirds:
        return []
    h, w = gray.shape
    # A finder cut by the frame's edge is no finder to zxing-cpp's detector either.
    inside = [f for f in _ranked(gray, a, b, thirds)
              if 3.5 * f.module <= f.x <= w - 3.5 * f.module
              and 3.5 * f.module <= f.y <= h - 3.5 * f.module]
    dark, light = _levels(gray, finders)
    return [_paint(gray, f, dark, light) for f in inside]
