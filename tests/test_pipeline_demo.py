"""The demo pipelines for BRK-100, run by the engine on freshly generated images no model saw,
must give the expected judgments; and a missing or corrupt model is a clear error naming the
step."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from schema.formats.criteria import Verdict
from scripts.devkit import DEMO_MODELS_DIR, demo_store, ocr_models_dir, synthetic
from scripts.devkit.modelgen import HELD_OUT_SEED
from sidecar.pipeline.engine import PipelineEngine
from sidecar.pipeline.errors import ModelCorrupt, ModelUnavailable
from sidecar.pipeline.store import ModelStore

MANIFEST = DEMO_MODELS_DIR / "manifest.json"
pytestmark = pytest.mark.skipif(not MANIFEST.is_file(),
                                reason="demo models not built (scripts/make-demo-models)")
OCR = ocr_models_dir() is not None
TARGET = {"target": {"product_id": "BRK-100", "batch_id": "A12-3456", "serial": "0098172"}}


def pipeline(pid: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (DEMO_MODELS_DIR / "pipelines" / f"{pid}.json").read_text(encoding="utf-8"))
    return data


def criteria(code: str) -> dict[str, Any]:
    items = json.loads((DEMO_MODELS_DIR / "brk-100-items.json").read_text(encoding="utf-8"))
    return next(i["criteria"] for i in items["items"] if i["item_code"] == code)


@pytest.fixture(scope="module")
def engine() -> PipelineEngine:
    e = PipelineEngine(demo_store())
    yield e  # type: ignore[misc]
    e.close()


def verdict(engine: PipelineEngine, pid: str, code: str, image: bytes,
            context: dict[str, Any] | None = None) -> Verdict:
    result, j = engine.inspect(pipeline(pid), image, criteria(code), context)
    assert j.measurement in result.outputs
    return j.result


def surface(i: int, kind: synthetic.Defect | None) -> bytes:
    return synthetic.encode(synthetic.make_surface(HELD_OUT_SEED + 10 * i + (
        0 if kind is None else 1 + synthetic.DEFECTS.index(kind)), kind))


CLEAR_CASES = [(None, "OK"), ("scratch", "NG"), ("spot", "NG"), ("missing", "NG")]


@pytest.mark.parametrize(("kind", "want"), CLEAR_CASES)
def test_v_scratch_classifier(engine: PipelineEngine, kind: Any, want: str) -> None:
    got = [verdict(engine, "brk100-v-scratch", "V-SCRATCH", surface(i, kind)) for i in range(4)]
    assert got == [Verdict(want)] * 4


@pytest.mark.parametrize(("kind", "want"), CLEAR_CASES)
def test_v_foreign_anomaly(engine: PipelineEngine, kind: Any, want: str) -> None:
    got = [verdict(engine, "brk100-v-foreign", "V-FOREIGN", surface(i, kind)) for i in range(4)]
    assert got == [Verdict(want)] * 4


def test_dents_are_mostly_caught(engine: PipelineEngine) -> None:
    # Dents are shallow shading: the hardest defect; the manifest records per-defect AUROC.
    imgs = [surface(i, "dent") for i in range(8)]
    caught = sum(verdict(engine, "brk100-v-foreign", "V-FOREIGN", im) == Verdict.NG
                 for im in imgs)
    assert caught >= 5


def test_foreign_matter_heat_map_points_at_the_spot(engine: PipelineEngine) -> None:
    img = synthetic.make_surface(HELD_OUT_SEED + 500, None)
    spotted = img.copy()
    yy, xx = np.mgrid[0:256, 0:256]
    spotted[(yy - 180) ** 2 + (xx - 70) ** 2 < 64] = (30, 45, 60)  # a dark chip at (70, 180)
    result = engine.run(pipeline("brk100-v-foreign"), synthetic.encode(spotted))
    px, py = result.outputs["anomaly_peak"]
    assert abs(px * 256 - 70) < 24 and abs(py * 256 - 180) < 24
    heat = result.artifacts["heatmap"]
    assert heat.shape == (224, 224, 3) and heat.dtype == np.uint8
    assert result.outputs["anomaly_area"] > 0


@pytest.mark.skipif(not OCR, reason="rapidocr is not installed")
@pytest.mark.parametrize(("marking", "batch", "want"), [
    ("LOT A12-3456", "A12-3456", "OK"),
    ("LOT A12-3456", "A12-3457", "NG"),  # legible, but another batch's part
    ("LOT B07-2231", "B07-2231", "OK"),
    ("A12-3456", "A12-3456", "NG"),  # no "LOT" prefix: not the format
])
def test_t_marking_ocr(engine: PipelineEngine, marking: str, batch: str, want: str) -> None:
    img = synthetic.encode(synthetic.make_marking(marking, seed=HELD_OUT_SEED + len(marking)))
    ctx = {"target": {"batch_id": batch}}
    assert verdict(engine, "brk100-t-marking", "T-MARKING", img, ctx) == Verdict(want)


@pytest.mark.skipif(not OCR, reason="rapidocr is not installed")
def test_t_marking_unreadable_is_ng(engine: PipelineEngine) -> None:
    img = synthetic.encode(synthetic.make_marking("", seed=5, legible=False))
    result, j = engine.inspect(pipeline("brk100-t-marking"), img, criteria("T-MARKING"), TARGET)
    assert result.outputs["text"] == "" and j.result == Verdict.NG


@pytest.mark.parametrize(("diameter", "want"), [
    (12.0, "OK"), (11.97, "OK"), (12.03, "OK"), (11.9, "NG"), (12.1, "NG"), (12.3, "NG"),
])
def test_d_bore_measurement(engine: PipelineEngine, diameter: float, want: str) -> None:
    img = synthetic.encode(synthetic.make_bore(diameter, seed=HELD_OUT_SEED + int(diameter * 100)))
    result, j = engine.inspect(pipeline("brk100-d-bore"), img, criteria("D-BORE"))
    assert result.outputs["bore_mm"] == pytest.approx(diameter, abs=0.01)
    assert result.units == {"bore_mm": "mm"}
    assert j.result == Verdict(want) and j.measurement == "bore_mm"


def test_d_bore_without_a_bore_goes_to_review(engine: PipelineEngine) -> None:
    img = synthetic.encode(synthetic.make_marking("", seed=8, legible=False, size=(400, 400)))
    _, j = engine.inspect(pipeline("brk100-d-bore"), img, criteria("D-BORE"))
    assert j.result == Verdict.PENDING_REVIEW and "could not be measured" in j.reason


def test_camera_frame_jpeg_with_roi(engine: PipelineEngine) -> None:
    """A 1920×1080 JPEG from the tablet camera, the part in a region of interest."""
    frame = np.full((1080, 1920, 3), 90, np.uint8)
    frame[400:656, 800:1056] = synthetic.make_surface(HELD_OUT_SEED + 900, "scratch")
    d = pipeline("brk100-v-scratch")
    d["steps"][0]["params"] = {"x": 800 / 1920, "y": 400 / 1080, "w": 256 / 1920,
                               "h": 256 / 1080, "relative": True}
    result, j = engine.inspect(d, synthetic.encode(frame, ".jpg", 92), criteria("V-SCRATCH"))
    assert j.result == Verdict.NG
    assert result.stage_ms["decode"] > 0


def test_result_records_versions_hashes_and_timings(engine: PipelineEngine) -> None:
    manifest = json.loads(MANIFEST.read_text())
    clf_sha = next(m["sha256"] for m in manifest["models"] if m["kind"] == "classifier")
    result, j = engine.inspect(pipeline("brk100-v-scratch"), surface(0, None),
                               criteria("V-SCRATCH"))
    assert j.result == Verdict.OK
    assert (result.pipeline_id, result.pipeline_version) == ("brk100-v-scratch", 1)
    assert result.models == {"model": clf_sha}
    assert result.providers[clf_sha] in ("CPUExecutionProvider", "CUDAExecutionProvider")
    assert set(result.stage_ms) == {"decode", "pre", "infer", "post", "judge"}
    assert all(v >= 0 for v in result.stage_ms.values()) and result.stage_ms["infer"] > 0
    assert [t.node for t in result.node_timings] == ["roi", "prep", "rgb", "tensor", "model",
                                                     "label"]
    assert result.outputs["label"] == "ok"
    record = json.loads(json.dumps(result.record()))  # storable as JSON
    assert record["pipeline"]["version"] == 1 and record["models"]["model"] == clf_sha
    assert len(record["steps"]) == 6


def test_independent_branches_run_concurrently(engine: PipelineEngine) -> None:
    """Classifier and anomaly model on the same preprocessing, as one definition."""
    scratch, foreign = pipeline("brk100-v-scratch"), pipeline("brk100-v-foreign")
    steps = scratch["steps"] + [
        {**s, "name": "an_" + s["name"]} for s in foreign["steps"][4:]]
    steps[-2]["input"] = "$steps.tensor.tensor"
    steps[-1]["map"] = "$steps.an_model.anomaly_map"
    steps[-1]["image"] = "$steps.prep.image"
    both = {"id": "both", "name": "both", "version": 1, "steps": steps,
            "outputs": {"defect_probability": "$steps.model.probs[0][1]",
                        "anomaly_score": "$steps.an_stats.score"}}
    plan = engine.compile(both)
    assert plan.width == 2
    img = surface(3, "spot")
    result = engine.run(both, img)
    alone_p = engine.run(scratch, img).outputs["defect_probability"]
    alone_a = engine.run(foreign, img).outputs["anomaly_score"]
    assert result.outputs["defect_probability"] == pytest.approx(alone_p, rel=1e-5)
    assert result.outputs["anomaly_score"] == pytest.approx(alone_a, rel=1e-5)
    assert {t.node for t in result.node_timings} >= {"model", "an_model", "an_stats", "label"}
    assert len(result.models) == 2


def test_sessions_are_created_once_and_reused(engine: PipelineEngine) -> None:
    d = pipeline("brk100-v-scratch")
    engine.run(d, surface(1, None))
    before = {m.sha256: m for m in engine.pool.loaded()}
    engine.run(json.dumps(d), surface(2, None))  # same content as text: same compiled plan
    after = {m.sha256: m for m in engine.pool.loaded()}
    assert before.keys() == after.keys()
    assert all(before[k] is after[k] for k in before)
    assert engine.compile(d) is engine.compile(json.dumps(d))


def _copy_models(tmp: Path) -> tuple[Path, str]:
    manifest = json.loads(MANIFEST.read_text())
    entry = next(m for m in manifest["models"] if m["kind"] == "classifier")
    shutil.copy(DEMO_MODELS_DIR / entry["file"], tmp / f"{entry['sha256']}.onnx")
    return tmp / f"{entry['sha256']}.onnx", entry["sha256"]


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    engine = PipelineEngine(ModelStore(roots=[tmp_path]))  # an empty model folder
    with pytest.raises(ModelUnavailable, match=r"step 'model'.*not on this device") as err:
        engine.run(pipeline("brk100-v-scratch"), surface(0, None))
    assert err.value.code == "model_unavailable" and err.value.detail["node"] == "model"


def test_corrupt_model_is_a_clear_error(tmp_path: Path) -> None:
    path, _ = _copy_models(tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    path.write_bytes(bytes(data))
    engine = PipelineEngine(ModelStore(roots=[tmp_path]))
    with pytest.raises(ModelCorrupt, match=r"step 'model'.*corrupt") as err:
        engine.run(pipeline("brk100-v-scratch"), surface(0, None))
    assert err.value.code == "model_corrupt" and err.value.status_code == 422


def test_truncated_model_file_is_a_clear_error(tmp_path: Path) -> None:
    """A file whose hash matches its name but which ORT cannot parse (bad export)."""
    import hashlib

    junk = b"this is not an onnx model"
    sha = hashlib.sha256(junk).hexdigest()
    (tmp_path / sha).write_bytes(junk)
    d = pipeline("brk100-v-scratch")
    d["steps"][4]["params"]["model"] = f"sha256:{sha}"
    with pytest.raises(ModelCorrupt, match=r"step 'model'.*could not be loaded"):
        PipelineEngine(ModelStore(roots=[tmp_path])).compile(d)


def test_manifest_lists_files_hashes_sizes_and_accuracy() -> None:
    manifest = json.loads(MANIFEST.read_text())
    for m in manifest["models"]:
        assert {"file", "sha256", "size", "kind"} <= set(m)
        if m["committed"]:
            path = DEMO_MODELS_DIR / m["file"]
            assert path.stat().st_size == m["size"] < 5_000_000
    clf = next(m for m in manifest["models"] if m["kind"] == "classifier")
    anomaly = next(m for m in manifest["models"] if m["kind"] == "anomaly")
    assert clf["metrics"]["onnx_accuracy"] > 0.9 and clf["metrics"]["onnx_auroc"] > 0.95
    assert anomaly["metrics"]["auroc"] > 0.95
