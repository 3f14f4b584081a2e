"""Model store, ONNX Runtime sessions, engine errors, and the ``kensa pipeline``/``doctor`` CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from scripts.devkit import DEMO_MODELS_DIR, synthetic
from sidecar.errors import ImageInvalid
from sidecar.pipeline.cli import doctor, pipeline_app
from sidecar.pipeline.engine import PipelineEngine
from sidecar.pipeline.errors import ModelCorrupt, ModelUnavailable, NodeFailed
from sidecar.pipeline.runtime import RuntimeConfig, SessionPool, requested_providers
from sidecar.pipeline.store import ModelStore

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

HAVE_DEMO = (DEMO_MODELS_DIR / "manifest.json").is_file()


def identity_model() -> bytes:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "id",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 4, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    model.metadata_props.add(key="labels", value="a,b")
    return bytes(model.SerializeToString())


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- store -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["{h}", "{h}.onnx"])
def test_store_finds_files_named_by_hash(tmp_path: Path, name: str) -> None:
    data = identity_model()
    (tmp_path / name.format(h=sha(data))).write_bytes(data)
    stored = ModelStore(roots=[tmp_path]).get(f"sha256:{sha(data)}")
    assert stored.sha256 == sha(data) and stored.size == len(data)


def test_store_reads_a_manifest_and_scans_package_folders(tmp_path: Path) -> None:
    data = identity_model()
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "pretty-name.onnx").write_bytes(data)
    (tmp_path / "a" / "manifest.json").write_text(json.dumps(
        {"models": [{"file": "pretty-name.onnx", "sha256": sha(data)}]}))
    assert ModelStore(roots=[tmp_path / "a"]).get(f"sha256:{sha(data)}").path.name == \
        "pretty-name.onnx"
    (tmp_path / "wheel").mkdir()
    (tmp_path / "wheel" / "det.onnx").write_bytes(data)
    store = ModelStore(scan=[tmp_path / "wheel"])
    assert store.get(f"sha256:{sha(data)}").path.name == "det.onnx"
    assert [p.name for _, p in store.entries()] == ["det.onnx"]


def test_store_errors(tmp_path: Path) -> None:
    store = ModelStore(roots=[tmp_path])
    with pytest.raises(ModelUnavailable, match="not a model reference"):
        store.get("md5:abc")
    with pytest.raises(ModelUnavailable, match="not on this device"):
        store.get("sha256:" + "a" * 64)
    data = identity_model()
    (tmp_path / ("b" * 64)).write_bytes(data)  # named by the wrong hash
    with pytest.raises(ModelCorrupt, match="corrupt"):
        store.get("sha256:" + "b" * 64)


# -- runtime -----------------------------------------------------------------------------------

def test_provider_choice_and_report(tmp_path: Path) -> None:
    assert requested_providers(RuntimeConfig(provider="cpu")) == ["CPUExecutionProvider"]
    assert requested_providers(RuntimeConfig())[-1] == "CPUExecutionProvider"
    data = identity_model()
    (tmp_path / sha(data)).write_bytes(data)
    pool = SessionPool(ModelStore(roots=[tmp_path]), RuntimeConfig(intra_op_threads=1))
    m = pool.get(f"sha256:{sha(data)}")
    assert m is pool.get(f"sha256:{sha(data)}")  # created once
    assert m.provider in ("CPUExecutionProvider", "CUDAExecutionProvider")
    assert m.info.inputs[0].shape == (None, 3, 4, 4) and m.info.metadata["labels"] == "a,b"
    assert m.load_ms > 0 and m.warmup_ms > 0  # warmed at creation
    assert m.warm({"x": (1, 3, 4, 4)}) == 0.0  # that shape is already warm
    report = pool.report()
    assert report["intra_op_threads"] == 1 and sha(data) in report["models"]


def test_config_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KENSA_ORT_PROVIDER", "CPU")
    monkeypatch.setenv("KENSA_ORT_THREADS", "3")
    cfg = RuntimeConfig.from_env()
    assert cfg.provider == "cpu" and cfg.threads() == 3
    monkeypatch.setenv("KENSA_ORT_PROVIDER", "")
    assert RuntimeConfig.from_env().provider == "auto"


# -- engine errors -----------------------------------------------------------------------------

CROP = {"name": "c", "version": 1,
        "steps": [{"name": "roi", "type": "crop", "params": {"x": 500, "y": 0, "w": 10, "h": 10},
                   "image": "$inputs.image"}],
        "outputs": {"box": "$steps.roi.box"}}


def test_node_failure_names_the_step() -> None:
    engine = PipelineEngine(ModelStore())
    with pytest.raises(NodeFailed, match="step 'roi' \\(crop\\) failed: crop region") as err:
        engine.run(CROP, np.zeros((20, 20, 3), np.uint8))
    assert err.value.detail["node"] == "roi"


def test_bad_image_bytes_are_image_invalid() -> None:
    engine = PipelineEngine(ModelStore())
    with pytest.raises(ImageInvalid):
        engine.run(CROP, b"\x89PNG broken")


def test_array_input_skips_decode_and_missing_input_is_an_error() -> None:
    engine = PipelineEngine(ModelStore())
    ok = {**CROP, "steps": [{**CROP["steps"][0], "params": {"w": 5, "h": 5}}]}
    r = engine.run(ok, np.zeros((20, 20, 3), np.uint8))
    assert r.outputs == {"box": [0, 0, 5, 5]} and r.stage_ms["decode"] == 0.0
    with pytest.raises(NodeFailed, match="input 'image' was not given"):
        engine.run(ok)


def test_bytes_input_with_explicit_decode_step() -> None:
    d = {"name": "d", "version": 1, "inputs": [{"name": "data", "kind": "bytes"}],
         "steps": [{"name": "dec", "type": "decode", "data": "$inputs.data"}],
         "outputs": {"w": "$steps.dec.width"}}
    r = PipelineEngine(ModelStore()).run(d, synthetic.encode(np.zeros((7, 9, 3), np.uint8)))
    assert r.outputs == {"w": 9} and r.stage_ms["decode"] > 0


# -- CLI ---------------------------------------------------------------------------------------

@pytest.mark.skipif(not HAVE_DEMO, reason="demo models not built")
def test_cli_pipeline_run_judges_images(tmp_path: Path) -> None:
    ok = tmp_path / "ok.png"
    ng = tmp_path / "ng.png"
    ok.write_bytes(synthetic.encode(synthetic.make_surface(9_100_000)))
    ng.write_bytes(synthetic.encode(synthetic.make_surface(9_100_001, "scratch")))
    definition = str(DEMO_MODELS_DIR / "pipelines" / "brk100-v-scratch.json")
    items = json.loads((DEMO_MODELS_DIR / "brk-100-items.json").read_text(encoding="utf-8"))
    criteria = next(i["criteria"] for i in items["items"] if i["item_code"] == "V-SCRATCH")
    models = ["--models", str(DEMO_MODELS_DIR)]
    runner = CliRunner()
    res = runner.invoke(pipeline_app, ["run", definition, str(ok), str(ng), *models,
                                       "--criteria", json.dumps(criteria), "--json"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]
    assert [x["judgment"]["result"] for x in lines] == ["OK", "NG"]
    assert set(lines[0]["stage_ms"]) == {"decode", "pre", "infer", "post", "judge"}
    text = runner.invoke(pipeline_app, ["run", definition, str(ok), *models])
    assert text.exit_code == 0 and "defect_probability=" in text.stdout


@pytest.mark.skipif(not HAVE_DEMO, reason="demo models not built")
def test_cli_validate() -> None:
    res = CliRunner().invoke(pipeline_app, ["validate", str(DEMO_MODELS_DIR / "pipelines" /
                                                            "brk100-d-bore.json")])
    assert res.exit_code == 0 and "ok: bore-diameter v1" in res.stdout


def test_cli_validate_reports_the_step(tmp_path: Path) -> None:
    bad: dict[str, Any] = {"name": "x", "version": 1,
                           "steps": [{"name": "s", "type": "blur", "image": "$inputs.image"}],
                           "outputs": {"y": "$steps.s.image"}}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    res = CliRunner().invoke(pipeline_app, ["validate", str(path)])
    assert res.exit_code == 1 and "step 's': unknown op 'blur'" in res.output


@pytest.mark.skipif(not HAVE_DEMO, reason="demo models not built")
def test_doctor_lists_providers_and_verified_models() -> None:
    import typer

    app = typer.Typer()
    app.command()(doctor)
    res = CliRunner().invoke(app, ["--no-load", "--models", str(DEMO_MODELS_DIR)])
    assert res.exit_code == 0, res.output
    assert "CPUExecutionProvider" in res.stdout
    assert "brk100-scratch-classifier.onnx" in res.stdout and "sha256 ok" in res.stdout


def test_a_value_missing_at_run_time_names_the_step() -> None:
    d = {"name": "m", "version": 1,
         "steps": [{"name": "roi", "type": "crop", "params": {"w": 5, "h": 5},
                    "image": "$inputs.image"},
                   {"name": "top", "type": "argmax", "x": "$steps.roi.box[9]"}],
         "outputs": {"label": "$steps.top.label"}}
    with pytest.raises(NodeFailed, match=r"step 'top' \(argmax\): \$steps.roi.box\[9\]") as err:
        PipelineEngine(ModelStore()).run(d, np.zeros((20, 20, 3), np.uint8))
    assert err.value.detail["node"] == "top"
