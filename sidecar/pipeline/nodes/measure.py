"""Pixel measurement with a px→mm calibration, for DIMENSION items (e.g. a bore's diameter).

A bore tolerance of ±0.05 mm at a typical 0.05 mm/px is ±1 px in diameter, so the edge must be
found to a fraction of a pixel: a coarse circle (largest round contour, or a Hough circle) is
refined by locating, along rays from its centre, where the intensity crosses halfway between the
inside and the outside levels (linear interpolation between samples), then fitting a circle to
those edge points.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np

from sidecar.pipeline.nodes.base import RunContext, as_image, declared, op

Circle = tuple[float, float, float]  # cx, cy, r in pixels


def _grey(img: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


def find_circle_contour(
    grey: np.ndarray[Any, Any], dark: bool, rmin: float, rmax: float
) -> Circle | None:
    blur = cv2.GaussianBlur(grey, (5, 5), 0)
    mode = cv2.THRESH_BINARY_INV if dark else cv2.THRESH_BINARY
    _, mask = cv2.threshold(blur, 0, 255, mode | cv2.THRESH_OTSU)
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    best: Circle | None = None
    best_area = 0.0
    for c in contours:
        area = cv2.contourArea(c)
        perim = cv2.arcLength(c, True)
        if area <= 0 or perim <= 0:
            continue
        circularity = 4 * np.pi * area / (perim * perim)
        (cx, cy), r = cv2.minEnclosingCircle(c)
        if circularity < 0.75 or not rmin <= r <= rmax:
            continue
        if area > best_area:
            best, best_area = (float(cx), float(cy), float(np.sqrt(area / np.pi))), area
    return best


def find_circle_hough(
    grey: np.ndarray[Any, Any], rmin: float, rmax: float
) -> Circle | None:
    blur = cv2.GaussianBlur(grey, (5, 5), 0)
    circles = cv2.HoughCircles(
        blur, cv2.HOUGH_GRADIENT, dp=1, minDist=max(grey.shape),
        param1=120, param2=40, minRadius=int(rmin), maxRadius=int(np.ceil(rmax)),
    )
    if circles is None:
        return None
    cx, cy, r = circles[0][0]
    return float(cx), float(cy), float(r)


def fit_circle(xs: np.ndarray[Any, Any], ys: np.ndarray[Any, Any]) -> Circle:
    """Least-squares (Kåsa) circle through points."""
    a = np.stack([xs, ys, np.ones_like(xs)], axis=1)
    b = xs * xs + ys * ys
    sol, *_ = np.linalg.lstsq(a, b, rcond=None)
    cx, cy = sol[0] / 2, sol[1] / 2
    r = np.sqrt(sol[2] + cx * cx + cy * cy)
    return float(cx), float(cy), float(r)


def refine_circle(
    grey: np.ndarray[Any, Any], coarse: Circle, dark: bool, rays: int = 180
) -> tuple[Circle, float]:
    """Sub-pixel edge along ``rays`` rays, then a circle fit. Returns (circle, roundness)."""
    cx, cy, r = coarse
    img = cv2.GaussianBlur(grey, (3, 3), 0).astype(np.float32)
    step = 0.25
    radii = np.arange(0.5 * r, 1.5 * r, step, dtype=np.float32)
    angles = np.linspace(0, 2 * np.pi, rays, endpoint=False, dtype=np.float32)
    map_x = (cx + np.cos(angles)[:, None] * radii[None, :]).astype(np.float32)
    map_y = (cy + np.sin(angles)[:, None] * radii[None, :]).astype(np.float32)
    prof = cv2.remap(img, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if not dark:
        prof = -prof
    inside = np.median(prof[:, radii < 0.8 * r])
    outside = np.median(prof[:, (radii > r + 1.5) & (radii < r + 4.0)])
    level = (inside + outside) / 2
    xs, ys = [], []
    for i in range(rays):
        p = prof[i]
        above = np.flatnonzero(p >= level)
        above = above[radii[above] > 0.6 * r]
        if above.size == 0 or above[0] == 0:
            continue
        j = int(above[0])
        p0, p1 = p[j - 1], p[j]
        t = (level - p0) / (p1 - p0) if p1 != p0 else 0.0
        rr = radii[j - 1] + t * step
        xs.append(cx + np.cos(angles[i]) * rr)
        ys.append(cy + np.sin(angles[i]) * rr)
    if len(xs) < rays // 2:
        return coarse, 0.0
    ax, ay = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    fitted = fit_circle(ax, ay)
    dist = np.hypot(ax - fitted[0], ay - fitted[1])
    roundness = float(dist.min() / dist.max()) if dist.max() > 0 else 0.0
    return fitted, roundness


def _run(inputs: Mapping[str, Any], params: Mapping[str, Any], ctx: RunContext) -> dict[str, Any]:
    grey = _grey(as_image(inputs["image"]))
    calibrated = ctx.calibration(params["camera"])
    mm_per_px = calibrated.mm_per_px if calibrated is not None else params["mm_per_px"]
    if mm_per_px is None:
        raise ValueError(f"camera '{params['camera']}' is not calibrated and the pipeline gives "
                         "no mm_per_px: a supervisor takes a calibration photo")
    if mm_per_px <= 0:
        raise ValueError("mm_per_px must be positive")
    # Which scale made the millimetres, so that a result can be traced to its calibration photo
    # (or shown to rest on the pipeline's nominal value).
    scale: dict[str, Any] = {
        "mm_per_px": mm_per_px, "camera": params["camera"],
        "source": "calibration" if calibrated is not None else "pipeline",
        "calibration_id": calibrated.calibration_id if calibrated is not None else None,
        "calibrated_at": calibrated.calibrated_at if calibrated is not None else None,
    }
    rmin = (params["min_diameter_mm"] / mm_per_px / 2) if params["min_diameter_mm"] else 3.0
    rmax = (params["max_diameter_mm"] / mm_per_px / 2) if params["max_diameter_mm"] else float(
        max(grey.shape))
    dark = params["polarity"] == "dark"
    coarse = (find_circle_contour(grey, dark, rmin, rmax) if params["method"] == "contour"
              else find_circle_hough(grey, rmin, rmax))
    if coarse is None:
        return {"found": False, "diameter_px": None, "diameter_mm": None, "center": None,
                "roundness": None, "circle": None, "mm_per_px": mm_per_px, "scale": scale}
    circle, roundness = coarse, 1.0
    if params["refine"]:
        # Twice: a coarse circle off by a few pixels (Hough, or a contour that took a chamfer
        # ring) samples the wrong "outside" level; the second pass starts from the true edge.
        for _ in range(2):
            circle, roundness = refine_circle(grey, circle, dark)
    d_px = 2 * circle[2]
    return {
        "found": True,
        "diameter_px": d_px,
        "diameter_mm": d_px * mm_per_px,
        "center": [circle[0], circle[1]],
        "roundness": roundness,
        "circle": list(circle),
        "mm_per_px": mm_per_px,
        "scale": scale,
    }


op(declared(
    "measure_circle", stage="infer", run=_run,
    doc="Find a circle (bore, pin) and measure its diameter in mm: px × the camera's calibrated "
        "mm per pixel (the pipeline's mm_per_px until it is calibrated); `scale` says which "
        "was used (source calibration, with its id and time, or pipeline).",
))
