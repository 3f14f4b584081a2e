"""Definition validation: every bad-definition case is an error that names the step at fault."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from sidecar.errors import PipelineError
from sidecar.pipeline.definition import parse_definition
from sidecar.pipeline.errors import DefinitionInvalid, ModelCorrupt, ModelUnavailable
from sidecar.pipeline.runtime import SessionPool
from sidecar.pipeline.store import ModelStore
from sidecar.pipeline.validate import validate
from tests.support.definitions import tiny_definition

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402


def tiny_model(dir_: Path) -> str:
    """x [1,3,8,8] float → y = mean over H, W [1,3]; stored under its SHA-256; returns the ref."""
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=0)], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
    )
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                             ir_version=8).SerializeToString()
    sha = hashlib.sha256(data).hexdigest()
    (dir_ / f"{sha}.onnx").write_bytes(data)
    return f"sha256:{sha}"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> tuple[SessionPool, str]:
    d = tmp_path_factory.mktemp("models")
    ref = tiny_model(d)
    return SessionPool(ModelStore(roots=[d])), ref


def good(ref: str) -> dict[str, Any]:
    return tiny_definition(ref)


def check(env: tuple[SessionPool, str], mutate: Any, node: str | None, match: str,
          exc: type[PipelineError] = DefinitionInvalid) -> PipelineError:
    pool, ref = env
    d = copy.deepcopy(good(ref))
    mutate(d)
    with pytest.raises(exc, match=match) as err:
        validate(parse_definition(d), pool.info)
    if node is not None:
        assert err.value.detail.get("node") == node
        assert f"step '{node}'" in err.value.message
    return err.value


def test_the_good_definition_validates(env: tuple[SessionPool, str]) -> None:
    pool, ref = env
    plan = validate(parse_definition(good(ref)), pool.info)
    assert [s.name for s in plan.steps] == ["prep", "tensor", "model", "score"]
    assert plan.width == 1 and plan.models == (ref,)
    assert plan.warm_shapes[ref] == {"x": (1, 3, 8, 8)}


def test_unknown_op(env: tuple[SessionPool, str]) -> None:
    e = check(env, lambda d: d["steps"][0].update(type="resise"), "prep", "unknown op 'resise'")
    assert "did you mean 'resize'" in e.message


def test_missing_input(env: tuple[SessionPool, str]) -> None:
    check(env, lambda d: d["steps"][0].pop("image"), "prep", "missing input 'image'")


def test_input_the_op_does_not_have(env: tuple[SessionPool, str]) -> None:
    check(env, lambda d: d["steps"][0].update(mask="$inputs.image"), "prep", "no input 'mask'")


def test_dangling_step_reference(env: tuple[SessionPool, str]) -> None:
    check(env, lambda d: d["steps"][1].update(image="$steps.prepp.image"), "tensor",
          "step 'prepp', which does not exist")


def test_dangling_output_reference(env: tuple[SessionPool, str]) -> None:
    check(env, lambda d: d["steps"][1].update(image="$steps.prep.img"), "tensor",
          "output 'img' of step 'prep'")


def test_undeclared_pipeline_input(env: tuple[SessionPool, str]) -> None:
    check(env, lambda d: d["steps"][0].update(image="$inputs.photo"), "prep",
          "pipeline input 'photo'")


def test_dangling_pipeline_output(env: tuple[SessionPool, str]) -> None:
    check(env, lambda d: d["outputs"].update(q="$steps.nothing.x"), None, "output 'q'")


def test_cycle(env: tuple[SessionPool, str]) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["steps"][0]["image"] = "$steps.tensor.tensor"  # prep ← tensor ← prep
    e = check(env, mutate, None, "cycle")
    assert e.detail["node"] in ("prep", "tensor")
    assert set(e.detail["cycle"]) >= {"prep", "tensor"}


def test_self_reference_is_a_cycle(env: tuple[SessionPool, str]) -> None:
    check(env, lambda d: d["steps"][3].update(x="$steps.score.probs"), "score", "cycle")


@pytest.mark.parametrize(("params", "match"), [
    ({"width": "224", "height": 8}, "'width' must be an integer"),
    ({"width": 8.5, "height": 8}, "'width' must be an integer"),
    ({"width": True, "height": 8}, "'width' must be an integer"),
    ({"width": 8}, "missing required parameter 'height'"),
    ({"width": 8, "height": 8, "mode": "crop"}, "'mode' must be one of"),
    ({"width": 8, "height": 8, "colour": "x"}, "unknown parameter 'colour'"),
])
def test_parameter_of_the_wrong_type(env: tuple[SessionPool, str], params: dict[str, Any],
                                     match: str) -> None:
    check(env, lambda d: d["steps"][0].update(params=params), "prep", match)


def test_list_parameter_type(env: tuple[SessionPool, str]) -> None:
    check(env, lambda d: d["steps"][1]["params"].update(mean=[0.5, "x", 0.5]), "tensor",
          "'mean' must be a list of numbers")


def test_model_reference_syntax(env: tuple[SessionPool, str]) -> None:
    check(env, lambda d: d["steps"][2]["params"].update(model="classifier.onnx"), "model",
          "'model' must be a model reference")


def test_a_model_reference_with_a_trailing_newline_is_no_reference(
    env: tuple[SessionPool, str],
) -> None:
    # A reference names a file in the model store: "$" alone let "…\n" through.
    check(env, lambda d: d["steps"][2]["params"].update(model="sha256:" + "0" * 64 + "\n"),
          "model", "'model' must be a model reference")


def test_tensor_shape_that_cannot_match_the_model(env: tuple[SessionPool, str]) -> None:
    e = check(env, lambda d: d["steps"][0]["params"].update(width=224, height=224), "model",
              r"expects shape \[1, 3, 8, 8\] but is fed \[1, 3, 224, 224\]")
    assert e.code == "pipeline_definition_invalid"


def test_layout_that_cannot_match_the_model(env: tuple[SessionPool, str]) -> None:
    check(env, lambda d: d["steps"][1]["params"].update(layout="NHWC"), "model",
          r"expects shape \[1, 3, 8, 8\] but is fed \[1, 8, 8, 3\]")


def test_rank_that_cannot_match_the_model(env: tuple[SessionPool, str]) -> None:
    check(env, lambda d: d["steps"][1]["params"].update(batch=False), "model", "rank 3 vs 4")


def test_dtype_that_cannot_match_the_model(env: tuple[SessionPool, str]) -> None:
    check(env, lambda d: d["steps"][1]["params"].update(dtype="float16"), "model",
          "expects float32 but is fed float16")


def test_channel_count_that_cannot_match_the_model(env: tuple[SessionPool, str]) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["steps"].insert(1, {"name": "grey", "type": "color", "params": {"to": "gray"},
                              "image": "$steps.prep.image"})
        d["steps"][2]["image"] = "$steps.grey.image"
        d["steps"][2]["params"] = {"mean": [0.5], "std": [0.5]}
    check(env, mutate, "model", r"\[1, 1, 8, 8\]")


def test_image_fed_straight_to_a_model(env: tuple[SessionPool, str]) -> None:
    check(env, lambda d: d["steps"][2].update(input="$steps.prep.image"), "model",
          "add a 'normalize' step")


def test_model_input_that_does_not_exist(env: tuple[SessionPool, str]) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["steps"][2].pop("input")
        d["steps"][2]["inputs"] = {"images": "$steps.tensor.tensor"}
    check(env, mutate, "model", "the model has no input 'images'")


def test_wrong_kind_into_an_op(env: tuple[SessionPool, str]) -> None:
    check(env, lambda d: d["steps"][3].update(x="$steps.prep.image"), "score",
          "expects tensor but '\\$steps.prep.image' is image")


def test_missing_model_file_names_the_step(env: tuple[SessionPool, str]) -> None:
    missing = "sha256:" + "0" * 64
    e = check(env, lambda d: d["steps"][2]["params"].update(model=missing), "model",
              "not on this device", ModelUnavailable)
    assert e.code == "model_unavailable"


def test_corrupt_model_file_names_the_step(tmp_path: Path) -> None:
    ref = tiny_model(tmp_path)
    path = tmp_path / f"{ref[7:]}.onnx"
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    pool = SessionPool(ModelStore(roots=[tmp_path]))
    with pytest.raises(ModelCorrupt, match=r"step 'model'.*corrupt") as err:
        validate(parse_definition(good(ref)), pool.info)
    assert err.value.code == "model_corrupt"


@pytest.mark.parametrize(("raw", "match"), [
    ("{", "not valid JSON"),
    ({"version": 1, "steps": [], "outputs": {}}, "needs a 'name'"),
    ({"name": "x", "version": 0, "steps": [{}], "outputs": {}}, "'version' must be a positive"),
    ({"name": "x", "version": "3", "steps": [{}], "outputs": {}}, "'version' must be a positive"),
    ({"name": "x", "version": 1, "steps": [], "outputs": {}}, "'steps' must be a non-empty"),
    ({"name": "x", "version": 1, "steps": [{"type": "crop"}], "outputs": {}}, "needs a 'name'"),
    ({"name": "x", "version": 1, "steps": [{"name": "a"}], "outputs": {}}, "step 'a'.*'type'"),
    ({"name": "x", "version": 1, "inputs": [{"name": "i", "kind": "video"}],
      "steps": [{"name": "a", "type": "crop"}], "outputs": {}}, "kind 'video'"),
    ({"name": "x", "version": 1,
      "steps": [{"name": "a", "type": "crop", "image": "inputs.image"}], "outputs": {}},
     "step 'a'.*not a selector"),
    ({"name": "x", "version": 1,
      "steps": [{"name": "a", "type": "crop", "image": "$inputs.image\n"}], "outputs": {}},
     "step 'a'.*not a selector"),
    ({"name": "x", "version": 1,
      "steps": [{"name": "a", "type": "crop", "image": "$steps.b"}], "outputs": {}},
     "but not which of its outputs"),
    ({"name": "x", "version": 1, "steps": [{"name": "a", "type": "crop", "params": []}],
      "outputs": {}}, "'params' must be an object"),
    ({"name": "x", "version": 1, "steps": [{"name": "a", "type": "crop"},
                                           {"name": "a", "type": "crop"}], "outputs": {}},
     "step 'a': step name is used twice"),
    ({"name": "x", "version": 1, "steps": [{"name": "a", "type": "crop"}], "outputs": {}},
     "at least one measurement"),
])
def test_structural_errors(raw: Any, match: str) -> None:
    with pytest.raises(DefinitionInvalid, match=match):
        parse_definition(raw if isinstance(raw, str) else json.dumps(raw))


def test_independent_branches_are_planned_in_parallel(env: tuple[SessionPool, str]) -> None:
    pool, ref = env
    d = good(ref)
    d["steps"].append({"name": "crop2", "type": "crop", "params": {"w": 4, "h": 4},
                       "image": "$inputs.image"})
    d["outputs"]["box"] = "$steps.crop2.box"
    plan = validate(parse_definition(d), pool.info)
    assert plan.width == 2
    assert plan.dependents["prep"] == ("tensor",)


def test_definition_digest_identifies_content() -> None:
    a = {"name": "x", "version": 1, "steps": [{"name": "a", "type": "crop"}],
         "outputs": {"b": "$steps.a.box"}}
    b = json.loads(json.dumps(a))
    assert parse_definition(a).digest == parse_definition(json.dumps(b)).digest
    b["version"] = 2
    assert parse_definition(a).digest != parse_definition(b).digest
