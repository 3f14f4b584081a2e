"""What an op is: its declaration, stage, run function and static shape rule.

An op's inputs, outputs and typed parameters are its entry in the catalogue both ends share
(:data:`schema.formats.pipeline.OPS`); :func:`declared` builds the op from it and :func:`op`
registers it in :data:`REGISTRY`, refusing one that is not catalogued as it is declared. The
validator uses the declarations (and each op's ``infer`` rule, which propagates shapes without
touching pixels) to reject a definition before any image arrives; the engine uses ``run``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from schema.formats.pipeline import ANY as ANY
from schema.formats.pipeline import MODEL_REF as MODEL_REF
from schema.formats.pipeline import OPS, SHAPE_RULES, Kind, OpDecl, Param
from schema.formats.pipeline import Meta as Meta
from schema.formats.pipeline import image_meta as image_meta

Stage = Literal["decode", "pre", "infer", "post"]
STAGES: tuple[str, ...] = ("decode", "pre", "infer", "post", "judge")


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
class CameraScale:
    """A camera's calibrated scale, with the calibration it came from (a result names it)."""

    mm_per_px: float
    calibration_id: str | None = None
    calibrated_at: str | None = None  # ISO 8601, when the calibration photo was taken


class RunContext(Protocol):
    """What a running op may ask of the engine."""

    def session(self, model_ref: str) -> Any:
        """The ``LoadedModel`` for a ``sha256:`` reference, created once and reused."""

    def add_stage_time(self, stage: str, ms: float) -> None:
        """Attribute part of this op's time to another stage (OCR does pre, infer and post)."""

    def calibration(self, camera: str) -> CameraScale | None:
        """The tablet's measured scale of ``camera``, if it was calibrated."""


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
    """An op of the shared catalogue (``decl``) with the code that runs it and its shape rule."""

    decl: OpDecl
    stage: Stage
    run: RunFn
    infer: InferFn = _no_infer
    doc: str = ""

    @property
    def type(self) -> str:
        return self.decl.type

    @property
    def inputs(self) -> Mapping[str, Kind]:
        return self.decl.inputs

    @property
    def optional_inputs(self) -> Mapping[str, Kind]:
        return self.decl.optional_inputs

    @property
    def outputs(self) -> tuple[str, ...]:
        return self.decl.outputs

    @property
    def params(self) -> Mapping[str, Param]:
        return self.decl.params

    @property
    def dynamic_io(self) -> bool:
        """Inputs and outputs named by the model (onnx): any names; validate checks them."""
        return self.decl.dynamic_io

    def model_params(self) -> tuple[str, ...]:
        return self.decl.model_params()


REGISTRY: dict[str, OpSpec] = {}


def declared(
    type_: str, *, stage: Stage, run: RunFn, infer: InferFn | None = None, doc: str = ""
) -> OpSpec:
    """The op ``type_`` as the shared catalogue declares it, with the code that runs it; its shape
    rule is the shared one unless the op needs the models to know its shapes (``infer``)."""
    return OpSpec(decl=OPS[type_], stage=stage, run=run,
                  infer=infer if infer is not None else _shared_rule(type_), doc=doc)


def _shared_rule(type_: str) -> InferFn:
    rule = SHAPE_RULES.get(type_)
    if rule is None:
        return _no_infer
    return lambda inputs, ctx: rule(inputs, ctx.params)


def op(spec: OpSpec) -> OpSpec:
    if spec.type in REGISTRY:
        raise AssertionError(f"op {spec.type} registered twice")
    # The server checks definitions against the catalogue alone: an op declared otherwise
    # would accept or refuse what the server does not.
    if OPS.get(spec.type) != spec.decl:
        raise AssertionError(f"op {spec.type} is not declared as schema.formats.pipeline.OPS says")
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


