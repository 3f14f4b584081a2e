"""Every finding a pipeline makes is placed on the photo where it lies: the heat map, the anomaly
box, the bore's circle, the text lines — in the upright photo's pixels, whatever crop or resize
the pipeline looked through and however the camera turned the file (EXIF orientation)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from scripts.devkit import DEMO_MODELS_DIR, demo_store, ocr_models_dir, synthetic
from sidecar.jobs.runner import _heatmap_png, _overlay
from sidecar.pipeline.engine import PipelineEngine
from tests.support import overlay_fixtures as fx

MANIFEST = DEMO_MODELS_DIR / "manifest.json"
pytestmark = pytest.mark.skipif(not MANIFEST.is_file(),
                                reason="demo models not built (scripts/make-demo-models)")


def pipeline(pid: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (DEMO_MODELS_DIR / "pipelines" / f"{pid}.json").read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def engine() -> Iterator[PipelineEngine]:
    e = PipelineEngine(demo_store())
    yield e
    e.close()


def decode_data_url(src: str) -> np.ndarray[Any, Any]:
    head, b64 = src.split(",", 1)
    assert head.startswith("data:image/")
    img = cv2.imdecode(np.frombuffer(base64.b64decode(b64), np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return np.asarray(img)


def test_a_rendered_heat_map_keeps_both_dimensions() -> None:
    heat = np.zeros((224, 224, 3), np.uint8)
    heat[150:170, 40:60] = (0, 0, 255)  # red at (50, 160)
    png = _heatmap_png(heat)
    assert png is not None
    back = decode_data_url(f"data:image/png;base64,{png}")
    assert back.shape == (224, 224, 3)
    ys, xs = np.nonzero(back[..., 2] > 200)
    assert abs(xs.mean() - 50) < 2 and abs(ys.mean() - 160) < 2


def test_a_bare_anomaly_map_is_coloured_at_its_own_size() -> None:
    amap = np.zeros((1, 1, 28, 40), np.float32)
    amap[0, 0, 20, 5] = 9.0
    png = _heatmap_png(amap)
    assert png is not None
    back = decode_data_url(f"data:image/png;base64,{png}")
    assert back.shape[:2] == (28, 40)
    # JET: dark red at the peak, dark blue elsewhere.
    assert back[20, 5, 2] > 100 and back[20, 5, 0] < 30
    assert back[0, 39, 0] > 100 and back[0, 39, 2] < 30


def test_foreign_matter_heat_map_and_box_after_exif_rotation(
        engine: PipelineEngine, tmp_path: Path) -> None:
    upright, at = fx.foreign_upright()
    data = fx.stored_turned(upright)
    result = engine.run(pipeline("brk100-v-foreign"), data)
    overlay = _overlay(result)
    assert overlay is not None
    assert (overlay["width"], overlay["height"]) == (at["width"], at["height"])
    assert sorted(overlay["drawn"]) == ["anomaly_bbox", "anomaly_peak", "heatmap"]
    heat = next(s for s in overlay["shapes"] if s["kind"] == "heatmap")
    assert (heat["x"], heat["y"], heat["w"], heat["h"]) == (0, 0, at["width"], at["height"])
    img = decode_data_url(heat["src"]).astype(np.int32)
    assert img.shape[0] > 100 and img.shape[1] > 100
    # The reddest part of the heat map, placed on the photo, is the chip.
    redness = cv2.GaussianBlur((img[..., 2] - img[..., 0]).astype(np.float32), (9, 9), 0)
    py, px = np.unravel_index(int(redness.argmax()), redness.shape)
    x = heat["x"] + (px + 0.5) * heat["w"] / img.shape[1]
    y = heat["y"] + (py + 0.5) * heat["h"] / img.shape[0]
    assert abs(x - at["x"]) < 60 and abs(y - at["y"]) < 60, (x, y, at)
    box = next(s for s in overlay["shapes"] if s["kind"] == "box")
    assert box["source"] == "anomaly_bbox"
    assert box["x1"] <= at["x"] <= box["x2"] and box["y1"] <= at["y"] <= box["y2"]
    assert box["x2"] - box["x1"] < at["width"] / 2 and box["y2"] - box["y1"] < at["height"] / 2
    peak = next(s for s in overlay["shapes"] if s["kind"] == "point")
    assert abs(peak["x"] - at["x"]) < 60 and abs(peak["y"] - at["y"]) < 60


def test_bore_circle_after_exif_rotation(engine: PipelineEngine) -> None:
    upright, at = fx.bore_upright()
    result = engine.run(pipeline("brk100-d-bore"), fx.stored_turned(upright))
    overlay = _overlay(result)
    assert overlay is not None
    assert (overlay["width"], overlay["height"]) == (at["width"], at["height"])
    (circle,) = overlay["shapes"]
    assert circle["kind"] == "circle" and circle["source"] == "circle"
    assert abs(circle["cx"] - at["x"]) < 2 and abs(circle["cy"] - at["y"]) < 2
    assert abs(circle["rx"] - at["r"]) < 2 and circle["rx"] == circle["ry"]


def test_shapes_found_in_a_crop_and_resize_land_on_the_whole_photo(
        engine: PipelineEngine) -> None:
    upright, at = fx.bore_upright()
    definition = {
        "id": "bore-in-roi", "name": "bore-in-roi", "version": 1,
        "inputs": [{"name": "image", "kind": "image"}],
        "steps": [
            {"name": "roi", "type": "crop", "params": {"x": 300, "y": 0, "w": 500, "h": 480},
             "image": "$inputs.image"},
            {"name": "half", "type": "resize", "params": {"width": 250, "height": 240},
             "image": "$steps.roi.image"},
            {"name": "bore", "type": "measure_circle",
             "params": {"mm_per_px": 0.1, "min_diameter_mm": 8.0, "max_diameter_mm": 16.0},
             "image": "$steps.half.image"},
        ],
        "outputs": {"bore_mm": "$steps.bore.diameter_mm"},
        "artifacts": {"circle": "$steps.bore.circle"},
    }
    result = engine.run(definition, synthetic.encode(upright))
    overlay = _overlay(result)
    assert overlay is not None
    (circle,) = overlay["shapes"]
    # Half the resolution: within two of the crop's pixels of the bore.
    assert abs(circle["cx"] - at["x"]) < 4 and abs(circle["cy"] - at["y"]) < 4
    assert abs(circle["rx"] - at["r"]) < 4


def test_a_bore_not_found_draws_nothing(engine: PipelineEngine) -> None:
    blank = np.full((300, 400, 3), 128, np.uint8)
    result = engine.run(pipeline("brk100-d-bore"), synthetic.encode(blank))
    overlay = _overlay(result)
    assert overlay is not None and overlay["shapes"] == []


@pytest.mark.skipif(ocr_models_dir() is None, reason="rapidocr is not installed")
def test_ocr_lines_are_drawn_around_the_text(engine: PipelineEngine) -> None:
    canvas, _ = fx.marking_upright()
    result = engine.run(pipeline("brk100-t-marking"), fx.stored_turned(canvas))
    overlay = _overlay(result)
    assert overlay is not None
    assert (overlay["width"], overlay["height"]) == (640, 480)
    polygons = [s for s in overlay["shapes"] if s["kind"] == "polygon"]
    assert polygons and overlay["drawn"] == ["lines"]
    xs = [p[0] for s in polygons for p in s["points"]]
    ys = [p[1] for s in polygons for p in s["points"]]
    assert min(xs) >= 90 and max(xs) <= 590 and min(ys) >= 240 and max(ys) <= 420
    assert "A12-3456" in "".join(s["label"] for s in polygons)
