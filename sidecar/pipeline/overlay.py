"""Where a pipeline's findings lie on the photo it judged: shapes in the photo's own pixels.

A step reports positions in the image it was given, which may be a crop or a resize of the photo
(the anomaly map of a 224×224 copy, a detector's letterboxed input). Each step's frame maps its
coordinates back onto the photo as decoded (EXIF orientation applied, as a browser shows it):
``x_photo = ax * x + bx``, ``y_photo = ay * y + by``, over a ``w``×``h`` image. Frames follow the
values the steps actually produced (a crop's box, a resize's scale and offset), so the shapes land
where the pipeline looked. A step whose frame cannot be told (its inputs come from two different
images) draws nothing rather than something in the wrong place.

Which output is which shape is the op's to say, not the output's name: a ``measure_circle``'s
``circle``, an ``ocr``'s ``lines``, a ``heatmap_stats``'s ``bbox``, ``peak`` and ``heatmap``,
an ``nms``'s ``detections`` and ``boxes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from schema.formats.pipeline import PipelineDefinition, Selector, Step


@dataclass(frozen=True)
class Frame:
    ax: float
    ay: float
    bx: float
    by: float
    w: float
    h: float

    def x(self, v: float) -> float:
        return self.ax * v + self.bx

    def y(self, v: float) -> float:
        return self.ay * v + self.by


@dataclass
class Overlay:
    """Shapes in the photo's pixels (JSON-ready), and heat maps to encode, each with its place."""

    width: int
    height: int
    shapes: list[dict[str, Any]] = field(default_factory=list)
    heatmaps: list[tuple[np.ndarray[Any, Any], dict[str, float]]] = field(default_factory=list)
    drawn: list[str] = field(default_factory=list)


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float | np.integer | np.floating):
        f = float(v)
        return f if np.isfinite(f) else None
    return None


def _shape_of(img: Any) -> tuple[int, int] | None:
    if isinstance(img, np.ndarray) and img.ndim >= 2:
        return int(img.shape[1]), int(img.shape[0])
    return None


class _Frames:
    def __init__(self, definition: PipelineDefinition, bound: Mapping[str, Any],
                 values: Mapping[str, Mapping[str, Any]]) -> None:
        self.steps = {s.name: s for s in definition.steps}
        self.bound = bound
        self.values = values
        self._out: dict[str, Frame | None] = {}

    def of_selector(self, sel: Selector) -> Frame | None:
        if sel.source == "inputs":
            size = _shape_of(self.bound.get(sel.name))
            return Frame(1.0, 1.0, 0.0, 0.0, *size) if size else None
        return self.out(sel.name)

    def into(self, step: Step) -> Frame | None:
        """The frame of the image ``step`` works on."""
        if "image" in step.inputs:
            return self.of_selector(step.inputs["image"])
        frames = {self.of_selector(sel) for sel in step.inputs.values()}
        frames.discard(None)
        return frames.pop() if len(frames) == 1 else None

    def out(self, name: str) -> Frame | None:
        if name in self._out:
            return self._out[name]
        self._out[name] = None  # a cycle cannot happen in a checked plan; this only ends one
        step = self.steps.get(name)
        values = self.values.get(name, {})
        parent = self.into(step) if step is not None else None
        frame = parent
        if parent is not None and step is not None:
            size = _shape_of(values.get("image"))
            if step.type == "crop":
                box = values.get("box")
                if isinstance(box, list | tuple) and len(box) == 4 and size:
                    frame = Frame(parent.ax, parent.ay, parent.x(float(box[0])),
                                  parent.y(float(box[1])), *size)
                else:
                    frame = None
            elif step.type == "resize":
                scale, offset = values.get("scale"), values.get("offset")
                try:
                    sx, sy = float(scale[0]), float(scale[1])  # type: ignore[index]
                    ox, oy = float(offset[0]), float(offset[1])  # type: ignore[index]
                except (TypeError, IndexError, ValueError):
                    sx = sy = 0.0
                    ox = oy = 0.0
                if sx > 0 and sy > 0 and size:
                    frame = Frame(parent.ax / sx, parent.ay / sy, parent.bx - parent.ax * ox / sx,
                                  parent.by - parent.ay * oy / sy, *size)
                else:
                    frame = None
            elif size:
                frame = Frame(parent.ax, parent.ay, parent.bx, parent.by, *size)
        self._out[name] = frame
        return frame


def _box(f: Frame, x1: Any, y1: Any, x2: Any, y2: Any) -> dict[str, Any] | None:
    v = [_num(x1), _num(y1), _num(x2), _num(y2)]
    if any(n is None for n in v):
        return None
    a, b, c, e = (float(n) for n in v)  # type: ignore[arg-type]
    return {"kind": "box", "x1": f.x(min(a, c)), "y1": f.y(min(b, e)), "x2": f.x(max(a, c)),
            "y2": f.y(max(b, e))}


def _shapes(step: Step, fld: str, value: Any, frames: _Frames) -> list[dict[str, Any]] | None:
    """The shapes one output of one step draws, or None when it is no shape."""
    f = frames.into(step)
    if f is None:
        return None
    if step.type == "measure_circle" and fld == "circle":
        if not isinstance(value, list | tuple) or len(value) != 3:
            return [] if value is None else None
        cx, cy, r = (_num(v) for v in value)
        if cx is None or cy is None or r is None:
            return None
        return [{"kind": "circle", "cx": f.x(cx), "cy": f.y(cy), "rx": abs(f.ax) * r,
                 "ry": abs(f.ay) * r}]
    if step.type == "ocr" and fld == "lines":
        if not isinstance(value, list):
            return None
        out: list[dict[str, Any]] = []
        for line in value:
            pts = line.get("box") if isinstance(line, Mapping) else None
            if not isinstance(pts, list) or len(pts) < 3:
                continue
            points = [[f.x(float(p[0])), f.y(float(p[1]))] for p in pts
                      if isinstance(p, list | tuple) and len(p) == 2
                      and _num(p[0]) is not None and _num(p[1]) is not None]
            if len(points) >= 3:
                out.append({"kind": "polygon", "points": points,
                            "label": str(line.get("text", ""))})
        return out
    if step.type == "heatmap_stats" and fld == "bbox":
        if value is None:
            return []
        if not isinstance(value, list | tuple) or len(value) != 4:
            return None
        # Fractions of the map, which covers the image the step was given.
        box = _box(f, *(float(v) * (f.w if i % 2 == 0 else f.h) for i, v in enumerate(value)))
        return [box] if box else None
    if step.type == "heatmap_stats" and fld == "peak":
        if not isinstance(value, list | tuple) or len(value) != 2:
            return None
        px, py = _num(value[0]), _num(value[1])
        if px is None or py is None:
            return None
        return [{"kind": "point", "x": f.x(px * f.w), "y": f.y(py * f.h)}]
    if step.type == "nms" and fld == "detections":
        if not isinstance(value, list):
            return None
        out = []
        for det in value:
            b = det.get("box") if isinstance(det, Mapping) else None
            if isinstance(b, list | tuple) and len(b) == 4:
                box = _box(f, *b)
                if box:
                    out.append({**box, "label": str(det.get("label", ""))})
        return out
    if step.type == "nms" and fld == "boxes":
        arr = np.asarray(value, dtype=np.float64) if value is not None else None
        if arr is None or arr.ndim != 2 or arr.shape[1] != 4:
            return None
        return [b for b in (_box(f, *row) for row in arr.tolist()) if b]
    return None


def build(definition: PipelineDefinition, bound: Mapping[str, Any],
          values: Mapping[str, Mapping[str, Any]]) -> Overlay | None:
    """The overlay of one run, or None when the pipeline took no image."""
    first = next((i for i in definition.inputs if i.kind == "image"), None)
    size = _shape_of(bound.get(first.name)) if first is not None else None
    if size is None:
        return None
    frames = _Frames(definition, bound, values)
    steps = {s.name: s for s in definition.steps}
    overlay = Overlay(width=size[0], height=size[1])
    named = [*definition.outputs.items(), *definition.artifacts.items()]
    for name, sel in named:
        step = steps.get(sel.name) if sel.source == "steps" else None
        if step is None or sel.field is None or sel.path:
            continue
        value = values.get(step.name, {}).get(sel.field)
        if step.type == "heatmap_stats" and sel.field == "heatmap":
            f = frames.into(step)
            if f is not None and isinstance(value, np.ndarray) and value.ndim in (2, 3):
                rect = {"x": f.x(0.0), "y": f.y(0.0), "w": f.ax * f.w, "h": f.ay * f.h}
                overlay.heatmaps.append((value, rect))
                overlay.drawn.append(name)
            continue
        shapes = _shapes(step, sel.field, value, frames)
        if shapes is None:
            continue
        overlay.shapes.extend({**s, "source": name} for s in shapes)
        overlay.drawn.append(name)
    return overlay
