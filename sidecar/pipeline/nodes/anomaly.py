"""Anomaly maps → numbers a criterion can judge, and a heat map a person can look at."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np

from sidecar.pipeline.nodes.base import RunContext, as_tensor, declared, op


def map_2d(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """[1, 1, H, W] / [1, H, W] / [H, W] → [H, W] float32."""
    while x.ndim > 2 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 2:
        raise ValueError(f"expected one anomaly map, got shape {x.shape}")
    return x.astype(np.float32, copy=False)


def heatmap_stats(amap: np.ndarray[Any, Any], threshold: float | None) -> dict[str, Any]:
    h, w = amap.shape
    flat = amap.ravel()
    peak = int(flat.argmax())
    out: dict[str, Any] = {
        "score": float(flat[peak]),
        "mean": float(flat.mean()),
        "p99": float(np.percentile(flat, 99)),
        # Peak as fractions of the map, so it maps onto any resolution of the photographed image.
        "peak": [((peak % w) + 0.5) / w, ((peak // w) + 0.5) / h],
        "area": None,
        "bbox": None,
    }
    if threshold is not None:
        hot = amap > threshold
        out["area"] = float(hot.mean())
        if hot.any():
            ys, xs = np.nonzero(hot)
            out["bbox"] = [xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h]
    return out


def render_heatmap(
    amap: np.ndarray[Any, Any], lo: float, hi: float, image: np.ndarray[Any, Any] | None,
    size: tuple[int, int],
) -> np.ndarray[Any, Any]:
    """JET colours over ``image`` (or alone), scaled so that ``lo``→blue and ``hi``→red."""
    norm = np.clip((amap - lo) / max(hi - lo, 1e-6), 0, 1)
    small = (norm * 255).astype(np.uint8)
    big = cv2.resize(small, size, interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap(big, cv2.COLORMAP_JET)
    if image is None:
        return np.asarray(colour)
    base = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return np.asarray(cv2.addWeighted(base, 0.55, colour, 0.45, 0))


def _run(inputs: Mapping[str, Any], params: Mapping[str, Any], ctx: RunContext) -> dict[str, Any]:
    amap = map_2d(as_tensor(inputs["map"]))
    if params["blur"] > 1:
        k = params["blur"] | 1
        amap = cv2.GaussianBlur(amap, (k, k), 0)
    stats = heatmap_stats(amap, params["threshold"])
    if params["heatmap"]:
        image = inputs.get("image")
        size = (image.shape[1], image.shape[0]) if isinstance(image, np.ndarray) else (224, 224)
        # Colour scale: up to the threshold is "normal" (blue..green), so red means over it.
        hi = 2 * params["threshold"] if params["threshold"] else float(amap.max())
        stats["heatmap"] = render_heatmap(amap, float(amap.min()), hi, image if isinstance(
            image, np.ndarray) else None, size)
    else:
        stats["heatmap"] = None
    return stats


op(declared(
    "heatmap_stats", stage="post", run=_run,
    doc="Anomaly map statistics (max score, mean, p99, area over threshold, peak) and heat map.",
))
