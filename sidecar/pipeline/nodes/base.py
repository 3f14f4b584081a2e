"""What an op is: its inputs, outputs, typed parameters, stage, run function and static shape rule.

Ops register themselves in :data:`REGISTRY` with :func:`op`. The validator uses the declarations
(and each op's ``infer`` rule, which propagates shapes without touching pixels) to reject a
definition before any image arrives; the engine uses ``run``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from sidecar.pipeline.errors import DefinitionInvalid

Stage = Literal["decode", "pre", "infer", "post"]
STAGES: tuple[str, ...] = ("decode", "pre", "infer", "post", "judge")
MODEL_REF = re.compile(r"^sha256:([0-9a-f]{64})$")

# What a value flowing between steps is, for validation: an image (H, W, C uint8 BGR/RGB/grey), a
# tensor (ndarray with a dtype), raw bytes, or any JSON-ish value.
Kind = Literal["image", "tensor", "bytes", "value", "any"]


@dataclass(frozen=True)
class Meta:
    """Static knowledge of a value: its kind and, where known, shape (None = any size) and dtype."""

    kind: Kind = "any"
    shape: tuple[int | None, ...] | None = None
    dtype: str | None = None


ANY = Meta()


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | None, ...]
    dtype: str  # numpy dtype name: "float32", "float16", "uint8", "int64"...


@dataclass(frozen=True)
class ModelInfo:
    """What validation needs to know about a model, without running it."""

    sha256: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    metadata: Mapping[str, str] = field(default_factory=dict)


ModelLookup = Callable[[str], ModelInfo]


@dataclass(frozen=True)
class Param:
    """A parameter: ``type`` is one of int, float, number, bool, str, model, list[float], list[str],
    list[int], object; ``choices`` restricts str values."""

    type: str
    required: bool = False
    default: Any = None
    choices: tuple[str, ...] | None = None


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def check_param(node: str, key: str, spec: Param, value: object) -> Any:
    """Return ``value`` (normalised: ints accepted where floats are) or raise naming the step."""

    def bad(expected: str) -> DefinitionInvalid:
        return DefinitionInvalid(
            f"parameter '{key}' must be {expected}, got {value!r}", node=node, param=key
        )

    t = spec.type
    if t == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise bad("an integer")
        return value
    if t in ("float", "number"):
        if not _is_number(value):
            raise bad("a number")
        return float(value)  # type: ignore[arg-type]
    if t == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if t == "str":
        if not isinstance(value, str):
            raise bad("a string")
        if spec.choices is not None and value not in spec.choices:
            raise bad("one of " + ", ".join(repr(c) for c in spec.choices))
        return value
    if t == "model":
        if not isinstance(value, str) or MODEL_REF.match(value) is None:
            raise bad("a model reference 'sha256:<64 lowercase hex digits>'")
        return value
    if t.startswith("list["):
        inner = t[5:-1]
        if not isinstance(value, list):
            raise bad(f"a list of {inner}")
        if inner == "float" and not all(_is_number(v) for v in value):
            raise bad("a list of numbers")
        if inner == "int" and not all(isinstance(v, int) and not isinstance(v, bool)
                                      for v in value):
            raise bad("a list of integers")
        if inner == "str" and not all(isinstance(v, str) for v in value):
            raise bad("a list of strings")
        return [float(v) for v in value] if inner == "float" else list(value)
    if t == "object":
        if not isinstance(value, Mapping):
            raise bad("an object")
        return dict(value)
    raise AssertionError(f"unknown param type {t}")


class RunContext(Protocol):
    """What a running op may ask of the engine."""

    def session(self, model_ref: str) -> Any:
        """The ``LoadedModel`` for a ``sha256:`` reference, created once and reused."""

    def add_stage_time(self, stage: str, ms: float) -> None:
        """Attribute part of this op's time to another stage (OCR does pre, infer and post)."""


@dataclass(frozen=True)
class StaticContext:
    node: str
    params: Mapping[str, Any]
    models: ModelLookup | None


RunFn = Callable[[Mapping[str, Any], Mapping[str, Any], RunContext], dict[str, Any]]
InferFn = Callable[[Mapping[str, Meta], StaticContext], dict[str, Meta]]


def _no_infer(inputs: Mapping[str, Meta], ctx: StaticContext) -> dict[str, Meta]:
    return {}


@dataclass(frozen=True)
class OpSpec:
    type: str
    stage: Stage
    run: RunFn
    inputs: Mapping[str, Kind]
    outputs: tuple[str, ...]
    params: Mapping[str, Param] = field(default_factory=dict)
    optional_inputs: Mapping[str, Kind] = field(default_factory=dict)
    # Ops whose inputs/outputs depend on the model (onnx) accept any names; validate checks them.
    dynamic_io: bool = False
    infer: InferFn = _no_infer
    doc: str = ""

    def model_params(self) -> tuple[str, ...]:
        return tuple(k for k, p in self.params.items() if p.type == "model")


REGISTRY: dict[str, OpSpec] = {}


def op(spec: OpSpec) -> OpSpec:
    if spec.type in REGISTRY:
        raise AssertionError(f"op {spec.type} registered twice")
    REGISTRY[spec.type] = spec
    return spec


def as_image(value: Any, node: str = "") -> np.ndarray[Any, Any]:
    if not isinstance(value, np.ndarray) or value.ndim not in (2, 3) or value.dtype != np.uint8:
        raise TypeError(f"expected an image (H×W[×C] uint8 array), got {describe(value)}")
    return value


def as_tensor(value: Any) -> np.ndarray[Any, Any]:
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, list | tuple | int | float):
        return np.asarray(value, dtype=np.float32)
    raise TypeError(f"expected a tensor, got {describe(value)}")


def describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"array {value.dtype} {tuple(value.shape)}"
    return type(value).__name__


def image_meta(shape: tuple[int | None, ...] | None) -> Meta:
    return Meta(kind="image", shape=shape, dtype="uint8")
