"""The ``calibrate`` op and the demo classifier's calibration: a confidence is the model's own
probability made calibrated on held-out photos, as its manifest records, never a made-up one."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from scripts.devkit import DEMO_MODELS_DIR
from scripts.devkit.modelgen import expected_calibration_error, fit_temperature
from sidecar.pipeline.engine import PipelineEngine
from sidecar.pipeline.errors import DefinitionInvalid

BASE: dict[str, Any] = {"method": "temperature", "input": "probs", "temperature": 2.0,
                        "labels": ["ok", "ng"]}


def _pipeline(params: dict[str, Any]) -> dict[str, Any]:
    return {"id": "cal", "name": "cal", "version": 1,
            "inputs": [{"name": "probs", "kind": "tensor"}],
            "steps": [{"name": "cal", "type": "calibrate", "params": params,
                       "x": "$inputs.probs"}],
            "outputs": {"confidence": "$steps.cal.confidence", "label": "$steps.cal.label",
                        "p_ng": "$steps.cal.probs[0][1]"}}


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


# (params over BASE, input, expected confidence, label)
CASES: list[tuple[str, dict[str, Any], list[list[float]], float, str]] = [
    ("temperature 2 softens", {}, [[0.1, 0.9]], _sigmoid(math.log(9) / 2), "ng"),
    ("temperature 0.5 sharpens", {"temperature": 0.5}, [[0.8, 0.2]], _sigmoid(math.log(4) * 2),
     "ok"),
    ("temperature 1 keeps", {"temperature": 1.0}, [[0.3, 0.7]], 0.7, "ng"),
    ("logits in", {"input": "logits", "temperature": 1.0}, [[0.0, math.log(3)]], 0.75, "ng"),
    ("three classes", {"temperature": 1.0, "labels": ["a", "b", "c"]}, [[0.2, 0.5, 0.3]], 0.5,
     "b"),
    ("isotonic maps the top probability", {"method": "isotonic", "points_x": [0.5, 0.9, 1.0],
                                           "points_y": [0.5, 0.7, 0.95]}, [[0.1, 0.9]], 0.7,
     "ng"),
    ("isotonic between points", {"method": "isotonic", "points_x": [0.5, 1.0],
                                 "points_y": [0.6, 1.0]}, [[0.25, 0.75]], 0.8, "ng"),
    ("certain stays finite", {}, [[0.0, 1.0]], _sigmoid(math.log(1e12) / 2), "ng"),
]


@pytest.fixture(scope="module")
def engine() -> Any:
    eng = PipelineEngine()
    yield eng
    eng.close()


@pytest.mark.parametrize(("name", "params", "x", "confidence", "label"), CASES,
                         ids=[c[0] for c in CASES])
def test_calibrate(engine: PipelineEngine, name: str, params: dict[str, Any],
                   x: list[list[float]], confidence: float, label: str) -> None:
    out = engine.run(_pipeline({**BASE, **params}),
                     inputs={"probs": np.asarray(x, np.float32)}).outputs
    assert out["confidence"] == pytest.approx(confidence, abs=1e-5)
    assert out["label"] == label


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("no temperature", {"temperature": None}, "needs 'temperature'"),
    ("temperature 0", {"temperature": 0}, "above 0"),
    ("temperature negative", {"temperature": -1.5}, "above 0"),
    ("unknown method", {"method": "platt"}, "one of"),
    ("isotonic without points", {"method": "isotonic"}, "needs 'points_x'"),
    ("isotonic lengths differ", {"method": "isotonic", "points_x": [0.5, 1.0],
                                 "points_y": [0.5]}, "as many"),
    ("isotonic x falls", {"method": "isotonic", "points_x": [0.9, 0.5],
                          "points_y": [0.5, 0.9]}, "must rise"),
    ("isotonic y falls", {"method": "isotonic", "points_x": [0.5, 0.9],
                          "points_y": [0.9, 0.5]}, "must not fall"),
    ("isotonic out of range", {"method": "isotonic", "points_x": [0.5, 1.5],
                               "points_y": [0.5, 0.9]}, r"\[0, 1\]"),
]


@pytest.mark.parametrize(("name", "params", "message"), BAD, ids=[c[0] for c in BAD])
def test_a_calibration_that_cannot_apply_is_refused_naming_the_step(
        engine: PipelineEngine, name: str, params: dict[str, Any], message: str) -> None:
    merged = {k: v for k, v in {**BASE, **params}.items() if v is not None}
    with pytest.raises(DefinitionInvalid, match=message) as err:
        engine.compile(_pipeline(merged))
    assert err.value.detail.get("node") == "cal"


def test_probabilities_that_are_none_are_refused(engine: PipelineEngine) -> None:
    with pytest.raises(Exception, match="probabilities summing to 1"):
        engine.run(_pipeline(BASE), inputs={"probs": np.asarray([[3.0, 4.0]], np.float32)})


def test_temperature_fit_recovers_a_known_temperature() -> None:
    rng = np.random.default_rng(5)
    z = rng.normal(0, 4, 20_000)
    labels = (rng.random(z.size) < 1 / (1 + np.exp(-z / 2.5))).astype(int)
    p_ng = 1 / (1 + np.exp(-z))  # over-confident by a temperature of 2.5
    t = fit_temperature(p_ng, labels)
    assert t == pytest.approx(2.5, rel=0.05)
    assert expected_calibration_error(p_ng, labels, t) < expected_calibration_error(p_ng, labels)


def test_the_demo_pipeline_applies_the_calibration_its_manifest_records() -> None:
    manifest = json.loads((DEMO_MODELS_DIR / "manifest.json").read_text())
    clf = next(m for m in manifest["models"] if m["kind"] == "classifier")
    cal = clf["calibration"]
    assert cal["fitted_on"]["set"] == "val" and cal["measured_on"]["set"] == "test"
    assert cal["ece"]["after"] <= cal["ece"]["before"]
    definition = json.loads((DEMO_MODELS_DIR / "pipelines" / "brk100-v-scratch.json").read_text())
    (step,) = [s for s in definition["steps"] if s["type"] == "calibrate"]
    assert {k: step["params"][k] for k in ("method", "input", "temperature")} == {
        k: cal[k] for k in ("method", "input", "temperature")}
    assert step["x"] == "$steps.model.probs"
    assert definition["outputs"]["confidence"] == f"$steps.{step['name']}.confidence"
    items = json.loads((DEMO_MODELS_DIR / "brk-100-items.json").read_text())["items"]
    criteria = {i["item_code"]: i["criteria"] for i in items}
    # The items whose outputs are no probability of being right name no confidence.
    assert criteria["V-SCRATCH"]["confidence"] == "confidence"
    assert criteria["T-MARKING"]["confidence"] == "text_score"
    assert "confidence" not in criteria["V-FOREIGN"] and "confidence" not in criteria["D-BORE"]
