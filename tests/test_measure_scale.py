"""The bore measurement names the scale it measured with: the camera's calibration (its id and
time) or the pipeline's nominal mm_per_px, in the step's output and in the pipeline's result."""

from __future__ import annotations

import json
from typing import Any

import pytest

from scripts.devkit import DEMO_MODELS_DIR, synthetic
from sidecar.pipeline.engine import PipelineEngine
from sidecar.pipeline.store import ModelStore

BORE: dict[str, Any] = json.loads(
    (DEMO_MODELS_DIR / "pipelines" / "brk100-d-bore.json").read_text(encoding="utf-8"))
PHOTO = synthetic.make_bore(12.0, 3, 0.05)  # a 12.00 mm bore seen at 0.05 mm per pixel
RECORD = {"mm_per_px": 0.06, "calibration_id": "cal-1",
          "calibrated_at": "2026-12-03T09:00:00+00:00"}


@pytest.mark.parametrize(("calibrations", "bore_mm", "scale"), [
    (None, 12.0, {"mm_per_px": 0.05, "camera": "default", "source": "pipeline",
                  "calibration_id": None, "calibrated_at": None}),
    # Another camera's calibration is not this step's.
    ({"line-2": RECORD}, 12.0, {"mm_per_px": 0.05, "camera": "default", "source": "pipeline",
                                "calibration_id": None, "calibrated_at": None}),
    ({"default": RECORD}, 14.4, {**RECORD, "camera": "default", "source": "calibration"}),
    # A bare scale (a caller without the calibration's row) is still a calibration, unnamed.
    ({"default": 0.06}, 14.4, {"mm_per_px": 0.06, "camera": "default", "source": "calibration",
                               "calibration_id": None, "calibrated_at": None}),
    # Nonsense scales are not used: the nominal one is, and said to be.
    ({"default": {"mm_per_px": -1, "calibration_id": "x"}, "b": True}, 12.0,
     {"mm_per_px": 0.05, "camera": "default", "source": "pipeline", "calibration_id": None,
      "calibrated_at": None}),
])
def test_the_result_names_the_scale_it_used(calibrations: dict[str, Any] | None, bore_mm: float,
                                            scale: dict[str, Any]) -> None:
    context = {"calibrations": calibrations} if calibrations is not None else None
    result = PipelineEngine(ModelStore()).run(BORE, PHOTO, context=context)
    assert result.outputs["bore_mm"] == pytest.approx(bore_mm, abs=0.03)
    assert result.scales == {"bore": scale}
    assert result.record()["scales"] == {"bore": scale}
    assert json.loads(json.dumps(result.record()))["scales"] == {"bore": scale}


def test_a_pipeline_that_measures_nothing_names_no_scale() -> None:
    crop = {"name": "c", "version": 1,
            "steps": [{"name": "roi", "type": "crop", "params": {"w": 5, "h": 5},
                       "image": "$inputs.image"}],
            "outputs": {"box": "$steps.roi.box"}}
    result = PipelineEngine(ModelStore()).run(crop, PHOTO, context={"calibrations": {
        "default": RECORD}})
    assert result.scales == {} and result.record()["scales"] == {}
