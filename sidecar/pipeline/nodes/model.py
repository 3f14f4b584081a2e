"""The ``onnx`` op: run any model, inputs and outputs by name.

Wiring: ``"input": "$steps.t.tensor"`` feeds the model's only (first) input; named inputs go in an
object, ``"inputs": {"images": "...", "scale": "..."}``. Outputs are the model's own output names,
plus ``output`` for the first one (so a definition need not know a converter's ``fetch_name_0``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from sidecar.pipeline.nodes.base import (
    Meta,
    ModelInfo,
    RunContext,
    StaticContext,
    TensorSpec,
    declared,
    op,
)


def bind_inputs(step_inputs: Mapping[str, Any], model_inputs: list[str]) -> dict[str, str]:
    """Map each step input key to a model input name (``input`` → the first)."""
    binding: dict[str, str] = {}
    for key in step_inputs:
        if key == "input":
            binding[key] = model_inputs[0]
        elif key in model_inputs:
            binding[key] = key
        else:
            raise ValueError(
                f"the model has no input '{key}' (its inputs: {', '.join(model_inputs)})")
    missing = set(model_inputs) - set(binding.values())
    if missing:
        raise ValueError(f"model input(s) {', '.join(sorted(missing))} are not wired")
    return binding


def _run(inputs: Mapping[str, Any], params: Mapping[str, Any], ctx: RunContext) -> dict[str, Any]:
    model = ctx.session(params["model"])
    binding = bind_inputs(inputs, model.input_names)
    feeds: dict[str, Any] = {}
    for key, name in binding.items():
        value = inputs[key]
        if not isinstance(value, np.ndarray):
            value = np.asarray(value)
        feeds[name] = value
    results = model.run(feeds)
    named: dict[str, Any] = dict(zip(model.output_names, results, strict=True))
    return {**named, "output": results[0], "outputs": named}


def check_tensor(node: str, spec: TensorSpec, meta: Meta) -> None:
    """Raise if what the graph feeds cannot match what the model declares."""
    if meta.kind == "image":
        raise ValueError(
            f"model input '{spec.name}' expects a tensor {_fmt(spec.shape)} but is fed an image; "
            "add a 'normalize' step")
    if meta.shape is not None:
        if len(meta.shape) != len(spec.shape):
            raise ValueError(
                f"model input '{spec.name}' expects shape {_fmt(spec.shape)} but is fed "
                f"{_fmt(meta.shape)} (rank {len(meta.shape)} vs {len(spec.shape)})")
        for got, want in zip(meta.shape, spec.shape, strict=True):
            if got is not None and want is not None and got != want:
                raise ValueError(
                    f"model input '{spec.name}' expects shape {_fmt(spec.shape)} but is fed "
                    f"{_fmt(meta.shape)}")
    if meta.dtype is not None and spec.dtype != meta.dtype:
        raise ValueError(
            f"model input '{spec.name}' expects {spec.dtype} but is fed {meta.dtype}")


def _fmt(shape: tuple[int | None, ...]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def _infer(inputs: Mapping[str, Meta], c: StaticContext) -> dict[str, Meta]:
    if c.models is None:
        return {}
    info: ModelInfo = c.models(c.params["model"])
    names = [i.name for i in info.inputs]
    binding = bind_inputs(inputs, names)
    by_name = {i.name: i for i in info.inputs}
    for key, name in binding.items():
        check_tensor(c.node, by_name[name], inputs[key])
    out = {o.name: Meta("tensor", o.shape, o.dtype) for o in info.outputs}
    out["output"] = Meta("tensor", info.outputs[0].shape, info.outputs[0].dtype)
    out["outputs"] = Meta("value")
    return out


op(declared(
    "onnx", stage="infer", run=_run,
    infer=_infer,
    doc="Run an ONNX model (sha256 reference); inputs and outputs by the model's names.",
))
