"""A camera's scale (millimetres per pixel) from a photo of a reference of known size.

Two references, both cheap to keep at a station:

- a printed **checkerboard** with squares of a known side: its inner corners are found to a
  fraction of a pixel, and the scale is the square's side over the median distance between
  neighbouring corners. A board photographed at a slant has neighbours at unequal distances; past
  ``MAX_SPREAD`` the photo is refused (a slanted board gives no one scale for the plane).
- a **ring** (a gauge ring, a washer) of a known inner diameter: the same circle finder and
  sub-pixel edge the bore measurement uses, so both see the same edge.

Pure: image in, scale out; no database or web framework. Errors are ``CalibrationInvalid``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np

from sidecar.errors import ImageInvalid, Unprocessable
from sidecar.pipeline.nodes.image import decode_image
from sidecar.pipeline.nodes.measure import find_circle_contour, refine_circle

Method = Literal["checkerboard", "ring"]
METHODS: tuple[str, ...] = ("checkerboard", "ring")

# Neighbouring corners further apart than this (relative spread of their distances) mean the
# board is not flat to the camera: one scale would be wrong somewhere on the photo.
MAX_SPREAD = 0.03
# A ring whose edge is less round than this is no ring (or a slanted one).
MIN_ROUNDNESS = 0.9
# References smaller than this many pixels cannot give a scale to the precision a bore needs.
MIN_REFERENCE_PX = 20.0


class CalibrationInvalid(Unprocessable):
    code = "calibration_invalid"


@dataclass(frozen=True)
class Scale:
    mm_per_px: float
    method: str
    reference_mm: float  # the square's side, or the ring's diameter
    reference_px: float  # the same on the photo
    spread: float  # relative spread of the measurements it was taken from (0 for a ring)

    def describe(self) -> dict[str, Any]:
        return {"mm_per_px": self.mm_per_px, "method": self.method,
                "reference_mm": self.reference_mm, "reference_px": round(self.reference_px, 4),
                "spread": round(self.spread, 5)}


def _grey(image: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def _size(value: float, what: str) -> float:
    if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise CalibrationInvalid(f"{what} must be a length in mm above 0, not {value!r}")
    return float(value)


def from_checkerboard(image: np.ndarray[Any, Any], square_mm: float, columns: int,
                      rows: int) -> Scale:
    """``columns`` × ``rows`` inner corners (a board of 8 × 6 squares has 7 × 5)."""
    square = _size(square_mm, "the square's side")
    if columns < 2 or rows < 2:
        raise CalibrationInvalid("a checkerboard needs at least 2 × 2 inner corners")
    grey = _grey(image)
    found, corners = cv2.findChessboardCornersSB(
        grey, (columns, rows), flags=cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_ACCURACY)
    if not found:
        raise CalibrationInvalid(
            f"no checkerboard of {columns} × {rows} inner corners on the photo: the whole board "
            "must be in the picture, sharp and evenly lit")
    grid = corners.reshape(rows, columns, 2).astype(np.float64)
    across = np.linalg.norm(np.diff(grid, axis=1), axis=2).ravel()
    down = np.linalg.norm(np.diff(grid, axis=0), axis=2).ravel()
    steps = np.concatenate([across, down])
    median = float(np.median(steps))
    spread = float((steps.max() - steps.min()) / median)
    if median < MIN_REFERENCE_PX:
        raise CalibrationInvalid(
            f"the squares are {median:.1f} px on the photo: bring the camera closer (at least "
            f"{MIN_REFERENCE_PX:.0f} px a square)")
    if spread > MAX_SPREAD:
        raise CalibrationInvalid(
            f"the squares differ by {spread:.1%} across the photo: hold the board flat and "
            "square to the camera")
    return Scale(square / median, "checkerboard", square, median, spread)


def from_ring(image: np.ndarray[Any, Any], diameter_mm: float, *, dark: bool = True) -> Scale:
    """A ring whose inside (the hole) is ``diameter_mm`` across, darker than its face unless
    ``dark`` is False."""
    diameter = _size(diameter_mm, "the ring's diameter")
    grey = _grey(image)
    coarse = find_circle_contour(grey, dark, MIN_REFERENCE_PX / 2, float(max(grey.shape)))
    if coarse is None:
        raise CalibrationInvalid("no ring on the photo: the whole ring must be in the picture, "
                                 "its hole against a plain background")
    circle, roundness = coarse, 0.0
    for _ in range(2):  # as the bore measurement does: the second pass starts on the true edge
        circle, roundness = refine_circle(grey, circle, dark)
    if roundness < MIN_ROUNDNESS:
        raise CalibrationInvalid(f"the ring's edge is not round ({roundness:.2f}): photograph "
                                 "it square to the camera")
    d_px = 2 * circle[2]
    return Scale(diameter / d_px, "ring", diameter, d_px, 0.0)


def from_photo(data: bytes, method: str, size_mm: float, *, columns: int | None = None,
               rows: int | None = None) -> Scale:
    """The scale from a calibration photo as it was taken (JPEG or PNG bytes)."""
    if method not in METHODS:
        raise CalibrationInvalid(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    try:
        image = decode_image(data)
    except ImageInvalid as exc:
        raise CalibrationInvalid(f"the calibration photo does not open: {exc.message}") from exc
    if method == "checkerboard":
        if columns is None or rows is None:
            raise CalibrationInvalid("a checkerboard needs its inner corners: columns and rows")
        return from_checkerboard(image, size_mm, columns, rows)
    return from_ring(image, size_mm)


__all__ = ["METHODS", "CalibrationInvalid", "Scale", "from_checkerboard", "from_photo",
           "from_ring"]
