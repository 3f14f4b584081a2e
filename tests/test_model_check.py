"""``kensa model check``: the demo models pass with their pipelines; each broken model, pipeline or
image is refused with exit 2 and a message naming the file or the step, and the pipeline-level
refusals are the server's publish check's own."""

from __future__ import annotations

import copy
import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
import pytest
from typer.testing import CliRunner

from schema.errors import DefinitionInvalid
from schema.formats.pipeline import validate_definition
from scripts.devkit.synthetic import encode, make_marking, make_surface
from sidecar.pipeline.errors import ModelCorrupt
from sidecar.pipeline.model_check import read_header
from sidecar.pipeline.model_cli import EXIT_INVALID, model_app
from sidecar.pipeline.runtime import cuda_available
from sidecar.pipeline.store import package_models_dir

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "scripts/devkit/models"
CLASSIFIER = MODELS / "brk100-scratch-classifier.onnx"
PADIM = MODELS / "brk100-foreign-padim.onnx"
SCRATCH = json.loads((MODELS / "pipelines/brk100-v-scratch.json").read_text(encoding="utf-8"))
FOREIGN = json.loads((MODELS / "pipelines/brk100-v-foreign.json").read_text(encoding="utf-8"))
runner = CliRunner()


def sha_ref(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def step(defn: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in defn["steps"] if s["name"] == name)
    return found


def write_pipeline(tmp: Path, defn: dict[str, Any], name: str = "pipeline.json") -> Path:
    path = tmp / name
    path.write_text(json.dumps(defn), encoding="utf-8")
    return path


def photos(tmp: Path) -> list[Path]:
    out = []
    for seed, defect in ((11, None), (12, "scratch")):
        path = tmp / f"part-{seed}.jpg"
        path.write_bytes(encode(make_surface(seed, defect), ".jpg"))  # type: ignore[arg-type]
        out.append(path)
    return out


def check(*args: str | Path) -> Any:
    return runner.invoke(model_app, ["check", *(str(a) for a in args)])


def test_demo_classifier_checks_and_runs_its_images(tmp_path: Path) -> None:
    ok, ng = photos(tmp_path)
    pipeline = MODELS / "pipelines/brk100-v-scratch.json"
    result = check(CLASSIFIER, "--pipeline", pipeline, ok, ng, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["model"]["sha256"] == sha_ref(CLASSIFIER)[7:]
    assert report["model"]["opsets"]["ai.onnx"] == 15
    assert report["model"]["inputs"] == [
        {"name": "image", "shape": ["?", 3, 224, 224], "dtype": "float32"}]
    assert report["pipeline"]["model_steps"] == ["model"]
    assert report["providers"]["got"] in report["providers"]["available"]
    by_image = {Path(r["image"]).name: r for r in report["images"]}
    # The synthetic scratch is what the demo classifier was trained to see.
    assert by_image[ok.name]["outputs"]["label"] == "ok"
    assert by_image[ng.name]["outputs"]["label"] == "ng"
    for run in report["images"]:
        assert run["total_ms"] > 0
        assert [s["node"] for s in run["steps"]] == [s["name"] for s in SCRATCH["steps"]]


def test_demo_anomaly_model_prints_outputs_and_timings(tmp_path: Path) -> None:
    [ok, _] = photos(tmp_path)
    result = check(PADIM, "--pipeline", MODELS / "pipelines/brk100-v-foreign.json", ok)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "opsets ai.onnx" in text
    assert "anomaly_map [?, 1, 14, 14] float32" in text
    assert "got CPUExecutionProvider" in text
    assert f"{ok.name}: anomaly_score=" in text
    assert " ms: roi " in text and "model " in text


def test_an_ocr_model_is_checked_with_its_partner_from_the_wheel(tmp_path: Path) -> None:
    # The marking pipeline's one step runs two models: the one checked and the detector, which
    # is found where a tablet finds it, in the rapidocr wheel.
    ocr_models = package_models_dir("rapidocr")
    assert ocr_models is not None
    recogniser = ocr_models / "PP-OCRv6_rec_small.onnx"
    lot = tmp_path / "lot.png"
    lot.write_bytes(encode(make_marking("LOT A12-3456", 7)))
    result = check(recogniser, "--pipeline", MODELS / "pipelines/brk100-t-marking.json", lot,
                   "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["pipeline"]["model_steps"] == ["ocr"]
    assert report["model"]["producer"] == ""
    [run] = report["images"]
    assert run["outputs"]["text"] == "LOT A12-3456"
    assert 0 < run["outputs"]["text_score"] <= 1


def test_the_installed_command_exits_2_on_a_truncated_model(tmp_path: Path) -> None:
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(CLASSIFIER.read_bytes()[: CLASSIFIER.stat().st_size // 2])
    proc = subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "model", "check", str(cut), "--pipeline",
         str(MODELS / "pipelines/brk100-v-scratch.json")],
        capture_output=True, text=True, timeout=120, check=False, cwd=REPO)
    assert proc.returncode == EXIT_INVALID, proc.stderr
    assert "cut.onnx is not a complete ONNX model" in proc.stderr
    assert "truncated" in proc.stderr
    assert proc.stdout == ""


# -- the table of broken models, pipelines and images -----------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    # Builds the command's arguments in a temporary folder.
    build: Callable[[Path], list[str | Path]]
    message: tuple[str, ...]
    # The step a publish-time refusal names, for cases the server's check refuses too.
    publish_step: str | None = None


def scratch_with(tmp: Path, change: Callable[[dict[str, Any]], None],
                 model: Path = CLASSIFIER) -> Path:
    defn = copy.deepcopy(SCRATCH)
    step(defn, "model")["params"]["model"] = sha_ref(model)
    change(defn)
    return write_pipeline(tmp, defn)


def with_opset(tmp: Path, version: int) -> Path:
    model = onnx.load(str(CLASSIFIER))
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = version
    path = tmp / f"opset{version}.onnx"
    onnx.save(model, str(path))
    return path


def _missing_model(tmp: Path) -> list[str | Path]:
    return [tmp / "nope.onnx", "--pipeline", MODELS / "pipelines/brk100-v-scratch.json"]


def _truncated(tmp: Path) -> list[str | Path]:
    cut = tmp / "cut.onnx"
    cut.write_bytes(CLASSIFIER.read_bytes()[:3_000_000])
    return [cut, "--pipeline", scratch_with(tmp, lambda d: None, cut)]


def _header_only(tmp: Path) -> list[str | Path]:
    cut = tmp / "head.onnx"
    cut.write_bytes(CLASSIFIER.read_bytes()[:30])
    return [cut, "--pipeline", scratch_with(tmp, lambda d: None, cut)]


def _not_onnx(tmp: Path) -> list[str | Path]:
    fake = tmp / "photo.onnx"
    fake.write_bytes(encode(make_surface(3), ".jpg"))
    return [fake, "--pipeline", scratch_with(tmp, lambda d: None, fake)]


def _opset_too_old(tmp: Path) -> list[str | Path]:
    model = with_opset(tmp, 5)
    return [model, "--pipeline", scratch_with(tmp, lambda d: None, model)]


def _opset_too_new(tmp: Path) -> list[str | Path]:
    model = with_opset(tmp, 99)
    return [model, "--pipeline", scratch_with(tmp, lambda d: None, model)]


def _missing_pipeline(tmp: Path) -> list[str | Path]:
    return [CLASSIFIER, "--pipeline", tmp / "nope.json"]


def _not_json(tmp: Path) -> list[str | Path]:
    path = tmp / "broken.json"
    path.write_text('{"name": "x", ', encoding="utf-8")
    return [CLASSIFIER, "--pipeline", path]


def _unknown_op(tmp: Path) -> list[str | Path]:
    return [CLASSIFIER, "--pipeline",
            scratch_with(tmp, lambda d: step(d, "label").update(type="argmaxx"))]


def _dangling(tmp: Path) -> list[str | Path]:
    return [CLASSIFIER, "--pipeline",
            scratch_with(tmp, lambda d: step(d, "label").update(x="$steps.modle.probs"))]


def _input_the_model_lacks(tmp: Path) -> list[str | Path]:
    def change(d: dict[str, Any]) -> None:
        model = step(d, "model")
        del model["input"]
        model["inputs"] = {"images": "$steps.tensor.tensor"}
    return [CLASSIFIER, "--pipeline", scratch_with(tmp, change)]


def _wrong_size(tmp: Path) -> list[str | Path]:
    return [CLASSIFIER, "--pipeline", scratch_with(
        tmp, lambda d: step(d, "prep")["params"].update(width=160, height=160))]


def _wrong_dtype(tmp: Path) -> list[str | Path]:
    return [CLASSIFIER, "--pipeline", scratch_with(
        tmp, lambda d: step(d, "tensor")["params"].update(dtype="float16"))]


def _image_into_model(tmp: Path) -> list[str | Path]:
    return [CLASSIFIER, "--pipeline", scratch_with(
        tmp, lambda d: step(d, "model").update(input="$steps.rgb.image"))]


def _output_the_model_lacks(tmp: Path) -> list[str | Path]:
    return [CLASSIFIER, "--pipeline",
            scratch_with(tmp, lambda d: step(d, "label").update(x="$steps.model.probz"))]


def _measurement_the_model_lacks(tmp: Path) -> list[str | Path]:
    return [CLASSIFIER, "--pipeline", scratch_with(
        tmp, lambda d: d["outputs"].update(defect_probability="$steps.model.logits[0][1]"))]


def _another_model(tmp: Path) -> list[str | Path]:
    # The scratch pipeline as published names the classifier, not this file.
    return [PADIM, "--pipeline", MODELS / "pipelines/brk100-v-scratch.json"]


def _not_an_image(tmp: Path) -> list[str | Path]:
    [ok, _] = photos(tmp)
    bad = tmp / "notes.jpg"
    bad.write_text("not a photo", encoding="utf-8")
    return [CLASSIFIER, "--pipeline", MODELS / "pipelines/brk100-v-scratch.json", ok, bad]


def _truncated_image(tmp: Path) -> list[str | Path]:
    cut = tmp / "cut.jpg"
    cut.write_bytes(encode(make_surface(5), ".jpg")[:200])
    return [CLASSIFIER, "--pipeline", MODELS / "pipelines/brk100-v-scratch.json", cut]


def _missing_image(tmp: Path) -> list[str | Path]:
    return [CLASSIFIER, "--pipeline", MODELS / "pipelines/brk100-v-scratch.json",
            tmp / "gone.jpg"]


CASES = [
    Case("missing model", _missing_model, ("nope.onnx: no such model file",)),
    Case("truncated model", _truncated, ("cut.onnx is not a complete ONNX model", "truncated")),
    Case("header only", _header_only, ("head.onnx is not a complete ONNX model",)),
    Case("not onnx", _not_onnx, ("photo.onnx is not a complete ONNX model",)),
    Case("opset too old", _opset_too_old, ("uses opset 5 of ai.onnx", "opset 7 and above")),
    Case("opset too new", _opset_too_new, ("uses opset 99 of ai.onnx", "runs up to opset")),
    Case("missing pipeline", _missing_pipeline, ("nope.json: no such pipeline file",)),
    Case("pipeline not json", _not_json, ("definition is not valid JSON",)),
    Case("unknown op", _unknown_op, ("step 'label'", "unknown op 'argmaxx'"), "label"),
    Case("dangling selector", _dangling, ("step 'label'", "step 'modle', which does not exist"),
         "label"),
    Case("input the model lacks", _input_the_model_lacks,
         ("step 'model'", "the model has no input 'images' (its inputs: image)")),
    Case("wrong tensor size", _wrong_size,
         ("step 'model'", "expects shape [?, 3, 224, 224] but is fed [1, 3, 160, 160]")),
    Case("wrong dtype", _wrong_dtype, ("step 'model'", "expects float32 but is fed float16")),
    Case("image into model", _image_into_model,
         ("step 'model'", "is fed an image; add a 'normalize' step")),
    Case("output the model lacks", _output_the_model_lacks,
         ("step 'label'", "reads output 'probz' of step 'model', which its model does not have "
          "(its outputs: output, outputs, probs)")),
    Case("measurement the model lacks", _measurement_the_model_lacks,
         ("output 'defect_probability' reads output 'logits' of step 'model'",)),
    Case("pipeline runs another model", _another_model,
         ("step 'model'", "no step runs brk100-foreign-padim.onnx", sha_ref(PADIM))),
    Case("not an image", _not_an_image, ("notes.jpg is not an image",)),
    Case("truncated image", _truncated_image, ("cut.jpg is not an image",)),
    Case("missing image", _missing_image, ("gone.jpg: no such image file",)),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_broken_models_pipelines_and_images_exit_2(tmp_path: Path, case: Case) -> None:
    args = case.build(tmp_path)
    result = check(*args)
    assert result.exit_code == EXIT_INVALID, result.output
    assert result.stderr.startswith("error: ")
    for part in case.message:
        assert part in result.stderr, result.stderr
    result = check(*args, "--json")
    assert result.exit_code == EXIT_INVALID
    report = json.loads(result.stdout)
    assert report["ok"] is False and case.message[0] in report["error"]["message"]
    if case.publish_step is not None:
        # The server refuses the same definition at publish, naming the same step.
        pipeline = Path(args[args.index("--pipeline") + 1])
        with pytest.raises(DefinitionInvalid) as refused:
            validate_definition(pipeline.read_text(encoding="utf-8"))
        assert refused.value.detail["node"] == case.publish_step


@pytest.mark.skipif(cuda_available(), reason="CUDA starts here")
def test_a_provider_asked_for_that_does_not_start_is_a_failure() -> None:
    result = check(CLASSIFIER, "--pipeline", MODELS / "pipelines/brk100-v-scratch.json",
                   "--provider", "cuda")
    assert result.exit_code == EXIT_INVALID, result.output
    assert "CUDAExecutionProvider did not start for brk100-scratch-classifier.onnx" in (
        result.stderr)
    assert "its session got CPUExecutionProvider" in result.stderr


def test_header_reads_ir_version_and_opsets_of_a_whole_model() -> None:
    header = read_header(PADIM, PADIM.read_bytes())
    model = onnx.load(str(PADIM), load_external_data=False)
    assert header.ir_version == model.ir_version
    assert header.opsets == {(o.domain or "ai.onnx"): o.version for o in model.opset_import}


@pytest.mark.parametrize("size", [1, 17, 40, 41, 1000, 2_000_000])
def test_header_refuses_every_cut_of_a_model(size: int) -> None:
    with pytest.raises(ModelCorrupt, match="not a complete ONNX model"):
        read_header(CLASSIFIER, CLASSIFIER.read_bytes()[:size])
