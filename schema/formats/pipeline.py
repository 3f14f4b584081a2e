"""The pipeline-definition format, the catalogue of ops, and every check made before anything runs.

Shared by both ends: the server refuses at publish exactly the definitions the tablet would refuse
at load, because both call :func:`check_definition` here. What only the tablet can check — a
tensor shape or dtype the model file takes, a shape an op's code cannot handle — stays in
``sidecar.pipeline.validate``, which starts from this module's result.

A definition is what the server keeps in ``pipelines.definition`` and the tablet caches::

    {"id": "brk100-v-scratch", "name": "surface-scratch", "version": 3,
     "inputs": [{"name": "image", "kind": "image"}],
     "steps": [
       {"name": "prep", "type": "resize", "params": {"width": 224, "height": 224},
        "image": "$inputs.image"},
       {"name": "model", "type": "onnx", "params": {"model": "sha256:..."},
        "input": "$steps.tensor.tensor"}],
     "outputs": {"defect_probability": "$steps.model.probs[0][1]"},
     "artifacts": {"heatmap": "$steps.stats.heatmap"},
     "units": {"bore_mm": "mm"}}

Every key of a step other than ``name``, ``type``, ``params`` and ``description`` wires one of the
step's inputs to a *selector*: ``$inputs.<name>`` or ``$steps.<step>.<output>``, optionally
followed by indexes and keys (``[0][1]``, ``.text``). ``inputs`` may also be an object, for ops
with named inputs (``onnx``).

Each error is a :class:`schema.errors.DefinitionInvalid` naming the step (``node``) and, where
there is one, the ``field``, ``param``, ``input`` or ``selector``:

- structure: not an object, name, version, inputs, steps, a selector's syntax, duplicate names,
  outputs, units;
- unknown op; unknown, missing or mistyped parameter; parameters that do not go together (a
  colour conversion the op does not implement);
- missing input, unknown input, a selector that points at no input / step / output (dangling);
- a cycle (the steps on it are named);
- a value of the wrong kind (a tensor where an image is expected...), or of a shape an op cannot
  take (mean/std for another channel count), as far as the ops' shape rules tell without a
  model.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from schema.errors import DefinitionInvalid

# -- values and parameters -------------------------------------------------------------------

# What a value flowing between steps is: an image (H, W, C uint8), a tensor (an array with a
# dtype), raw bytes, any JSON-ish value, or "any": not known before the step runs.
Kind = Literal["image", "tensor", "bytes", "value", "any"]
MODEL_REF = re.compile(r"^sha256:([0-9a-f]{64})$")
INPUT_KINDS = frozenset({"image", "bytes", "tensor", "value"})
PARAM_TYPES = frozenset({"int", "number", "bool", "str", "model", "list[float]", "list[str]"})


@dataclass(frozen=True)
class Param:
    """A parameter: ``type`` is one of :data:`PARAM_TYPES`; ``choices`` restricts str values."""

    type: str
    required: bool = False
    default: Any = None
    choices: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.type not in PARAM_TYPES:
            raise AssertionError(f"unknown parameter type {self.type!r}")


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
    if t == "number":
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
        if not isinstance(value, str) or MODEL_REF.fullmatch(value) is None:
            raise bad("a model reference 'sha256:<64 lowercase hex digits>'")
        return value
    if t.startswith("list["):
        inner = t[5:-1]
        if not isinstance(value, list):
            raise bad(f"a list of {inner}")
        if inner == "float" and not all(_is_number(v) for v in value):
            raise bad("a list of numbers")
        if inner == "str" and not all(isinstance(v, str) for v in value):
            raise bad("a list of strings")
        return [float(v) for v in value] if inner == "float" else list(value)
    raise AssertionError(f"unknown param type {t}")


# -- the catalogue of ops --------------------------------------------------------------------


@dataclass(frozen=True)
class OpDecl:
    """What a definition may say about an op: its inputs (with the kind each takes), outputs and
    typed parameters. The tablet's op library registers exactly these (``sidecar.pipeline.nodes``)
    and adds the code that runs them."""

    type: str
    inputs: Mapping[str, Kind]
    outputs: tuple[str, ...]
    params: Mapping[str, Param] = field(default_factory=dict)
    optional_inputs: Mapping[str, Kind] = field(default_factory=dict)
    # Ops whose inputs/outputs are the model's own (onnx) accept any names.
    dynamic_io: bool = False

    def model_params(self) -> tuple[str, ...]:
        return tuple(k for k, p in self.params.items() if p.type == "model")


_TOPK_OUT = ("ranked", "label", "index", "score")

OPS: Mapping[str, OpDecl] = {d.type: d for d in (
    OpDecl("decode", inputs={"data": "bytes"},
           outputs=("image", "width", "height"),
           params={"mode": Param("str", default="color", choices=("color", "grayscale"))}),
    OpDecl("crop", inputs={"image": "image"}, outputs=("image", "box"),
           params={"x": Param("number", default=0.0), "y": Param("number", default=0.0),
                   "w": Param("number", required=True), "h": Param("number", required=True),
                   "relative": Param("bool", default=False)}),
    OpDecl("resize", inputs={"image": "image"},
           outputs=("image", "scale", "offset"),
           params={"width": Param("int", required=True), "height": Param("int", required=True),
                   "mode": Param("str", default="stretch", choices=("stretch", "letterbox")),
                   "interpolation": Param("str", default="linear",
                                          choices=("linear", "area", "nearest", "cubic")),
                   "pad_value": Param("int", default=114)}),
    OpDecl("color", inputs={"image": "image"}, outputs=("image",),
           params={"to": Param("str", required=True, choices=("rgb", "bgr", "gray", "hsv")),
                   "from": Param("str", default="bgr", choices=("rgb", "bgr", "gray"))}),
    OpDecl("normalize", inputs={"image": "image"}, outputs=("tensor",),
           params={"mean": Param("list[float]", default=[0.0, 0.0, 0.0]),
                   "std": Param("list[float]", default=[1.0, 1.0, 1.0]),
                   "scale": Param("number", default=1 / 255),
                   "layout": Param("str", default="NCHW", choices=("NCHW", "NHWC")),
                   "dtype": Param("str", default="float32", choices=("float32", "float16")),
                   "batch": Param("bool", default=True)}),
    OpDecl("onnx", inputs={}, outputs=("output", "outputs"), dynamic_io=True,
           params={"model": Param("model", required=True)}),
    OpDecl("heatmap_stats", inputs={"map": "tensor"}, optional_inputs={"image": "image"},
           outputs=("score", "mean", "p99", "peak", "area", "bbox", "heatmap"),
           params={"threshold": Param("number"), "blur": Param("int", default=0),
                   "heatmap": Param("bool", default=True)}),
    OpDecl("measure_circle", inputs={"image": "image"},
           outputs=("found", "diameter_px", "diameter_mm", "center", "roundness", "circle",
                    "mm_per_px", "scale"),
           # The scale is the tablet's calibration of ``camera`` where it has one; the
           # pipeline's ``mm_per_px`` is the nominal scale until a supervisor calibrates.
           params={"mm_per_px": Param("number"), "camera": Param("str", default="default"),
                   "method": Param("str", default="contour", choices=("contour", "hough")),
                   "polarity": Param("str", default="dark", choices=("dark", "bright")),
                   "min_diameter_mm": Param("number"), "max_diameter_mm": Param("number"),
                   "refine": Param("bool", default=True)}),
    OpDecl("ocr", inputs={"image": "image"}, outputs=("text", "lines", "score", "count"),
           params={"det_model": Param("model", required=True),
                   "rec_model": Param("model", required=True),
                   "limit_side": Param("int", default=960),
                   "det_thresh": Param("number", default=0.3),
                   "box_thresh": Param("number", default=0.5),
                   "unclip_ratio": Param("number", default=1.6),
                   "min_size": Param("number", default=3.0),
                   "max_lines": Param("int", default=16),
                   "rec_height": Param("int", default=48),
                   "rec_min_width": Param("int", default=160),
                   "min_score": Param("number", default=0.5),
                   "join": Param("str", default=" ")}),
    OpDecl("softmax", inputs={"x": "tensor"}, outputs=("probs",),
           params={"axis": Param("int", default=-1)}),
    OpDecl("calibrate", inputs={"x": "tensor"},
           outputs=("probs", "confidence", "label", "index"),
           params={"method": Param("str", required=True, choices=("temperature", "isotonic")),
                   "input": Param("str", default="probs", choices=("probs", "logits")),
                   "temperature": Param("number"),
                   "points_x": Param("list[float]"), "points_y": Param("list[float]"),
                   "labels": Param("list[str]")}),
    OpDecl("topk", inputs={"x": "tensor"}, outputs=_TOPK_OUT,
           params={"k": Param("int", default=5), "labels": Param("list[str]")}),
    OpDecl("argmax", inputs={"x": "tensor"}, outputs=_TOPK_OUT,
           params={"labels": Param("list[str]")}),
    OpDecl("threshold", inputs={"x": "tensor"}, outputs=("result", "mask", "any", "count"),
           params={"value": Param("number", required=True),
                   "operator": Param("str", default="GE", choices=("GT", "GE", "LT", "LE"))}),
    OpDecl("nms", inputs={"boxes": "tensor", "scores": "tensor"},
           outputs=("detections", "count", "boxes", "scores", "classes"),
           params={"iou": Param("number", default=0.45),
                   "score_threshold": Param("number", default=0.25),
                   "max_detections": Param("int", default=100),
                   "format": Param("str", default="xyxy", choices=("xyxy", "cxcywh")),
                   "class_aware": Param("bool", default=True),
                   "labels": Param("list[str]")}),
)}


# Colour conversions the ``color`` op implements, (from, to); from a colour to itself is none.
COLOR_CONVERSIONS = frozenset({
    ("bgr", "rgb"), ("rgb", "bgr"), ("bgr", "gray"), ("rgb", "gray"), ("gray", "bgr"),
    ("gray", "rgb"), ("bgr", "hsv"), ("rgb", "hsv"),
})


# -- what is known of a value before anything runs ------------------------------------------


@dataclass(frozen=True)
class Meta:
    """Static knowledge of a value: its kind and, where known, shape (None = any size) and dtype."""

    kind: Kind = "any"
    shape: tuple[int | None, ...] | None = None
    dtype: str | None = None


ANY = Meta()


def image_meta(shape: tuple[int | None, ...] | None) -> Meta:
    return Meta(kind="image", shape=shape, dtype="uint8")


# An op's shape rule: what it makes of what it is fed, given its parameters, without touching a
# pixel; a ValueError says what it cannot take. Ops without a rule make values of unknown kind;
# the model's op (onnx) has its rule on the tablet, where the model is.
ShapeRule = Callable[[Mapping[str, Meta], Mapping[str, Any]], dict[str, Meta]]


def _channels(src: Meta | None) -> tuple[int | None, ...]:
    return src.shape[2:] if src is not None and src.shape is not None else (None,)


def _decode_shape(inputs: Mapping[str, Meta], p: Mapping[str, Any]) -> dict[str, Meta]:
    return {"image": image_meta((None, None) if p["mode"] == "grayscale" else (None, None, 3))}


def _crop_shape(inputs: Mapping[str, Meta], p: Mapping[str, Any]) -> dict[str, Meta]:
    channels = _channels(inputs.get("image"))
    if not p["relative"]:
        return {"image": image_meta((int(p["h"]), int(p["w"]), *channels))}
    return {"image": image_meta((None, None, *channels))}


def _resize_shape(inputs: Mapping[str, Meta], p: Mapping[str, Any]) -> dict[str, Meta]:
    return {"image": image_meta((p["height"], p["width"], *_channels(inputs.get("image"))))}


def _color_shape(inputs: Mapping[str, Meta], p: Mapping[str, Any]) -> dict[str, Meta]:
    src = inputs.get("image")
    hw = src.shape[:2] if src is not None and src.shape is not None else (None, None)
    return {"image": image_meta((*hw,) if p["to"] == "gray" else (*hw, 3))}


def _normalize_shape(inputs: Mapping[str, Meta], p: Mapping[str, Any]) -> dict[str, Meta]:
    src = inputs.get("image")
    h: int | None = None
    w: int | None = None
    ch: int | None = None
    if src is not None and src.shape is not None:
        h, w = src.shape[0], src.shape[1]
        ch = src.shape[2] if len(src.shape) > 2 else 1
    n = len(p["mean"])
    if ch is not None and n not in (1, ch):
        raise ValueError(f"'mean' has {n} values but the image has {ch} channels")
    dims: tuple[int | None, ...] = (ch, h, w) if p["layout"] == "NCHW" else (h, w, ch)
    if p["batch"]:
        dims = (1, *dims)
    return {"tensor": Meta(kind="tensor", shape=dims, dtype=p["dtype"])}


def _softmax_shape(inputs: Mapping[str, Meta], p: Mapping[str, Any]) -> dict[str, Meta]:
    return {"probs": Meta("tensor", inputs["x"].shape if "x" in inputs else None, "float32")}


def _calibrate_shape(inputs: Mapping[str, Meta], p: Mapping[str, Any]) -> dict[str, Meta]:
    """A calibration that cannot be applied is refused before any photo: a temperature above
    zero, or isotonic points rising in x, not falling in y, within [0, 1]."""
    if p["method"] == "temperature":
        t = p["temperature"]
        if t is None or not math.isfinite(t) or t <= 0:
            raise ValueError("method 'temperature' needs 'temperature', a number above 0")
    else:
        xs, ys = p["points_x"], p["points_y"]
        if xs is None or ys is None or len(xs) != len(ys) or len(xs) < 2:
            raise ValueError("method 'isotonic' needs 'points_x' and 'points_y', two or more "
                             "of each and as many of one as of the other")
        if any(not 0 <= v <= 1 for v in (*xs, *ys)):
            raise ValueError("isotonic points must lie in [0, 1]")
        if any(b <= a for a, b in itertools.pairwise(xs)):
            raise ValueError("'points_x' must rise")
        if any(b < a for a, b in itertools.pairwise(ys)):
            raise ValueError("'points_y' must not fall (a calibration keeps the order)")
    return {"probs": Meta("tensor", inputs["x"].shape if "x" in inputs else None, "float32")}


def _heatmap_shape(inputs: Mapping[str, Meta], p: Mapping[str, Any]) -> dict[str, Meta]:
    return {"heatmap": image_meta((None, None, 3))}


SHAPE_RULES: Mapping[str, ShapeRule] = {
    "decode": _decode_shape, "crop": _crop_shape, "resize": _resize_shape,
    "color": _color_shape, "normalize": _normalize_shape, "softmax": _softmax_shape,
    "heatmap_stats": _heatmap_shape, "calibrate": _calibrate_shape,
}


# -- the definition's structure --------------------------------------------------------------

_NAME = r"[A-Za-z_][A-Za-z0-9_\-]*"
_SELECTOR = re.compile(
    rf"^\$(?P<source>inputs|steps)\.(?P<name>{_NAME})(?:\.(?P<field>{_NAME}))?"
    rf"(?P<path>(?:\[-?\d+\]|\.{_NAME})*)$"
)
_PATH_PART = re.compile(rf"\[(-?\d+)\]|\.({_NAME})")
_STEP_KEYS = frozenset({"name", "type", "params", "description"})


@dataclass(frozen=True)
class Selector:
    """A reference to a pipeline input or a step's output, with an optional index/key path."""

    raw: str
    source: Literal["inputs", "steps"]
    name: str
    field: str | None
    path: tuple[int | str, ...] = ()

    @property
    def step(self) -> str | None:
        return self.name if self.source == "steps" else None


def parse_selector(raw: object, *, node: str | None, where: str) -> Selector:
    """Parse ``$inputs.image`` or ``$steps.model.probs[0][1]``; ``where`` names the key."""
    if not isinstance(raw, str):
        raise DefinitionInvalid(
            f"{where} must be a selector string like '$steps.<step>.<output>', got {raw!r}",
            node=node, field=where,
        )
    m = _SELECTOR.fullmatch(raw)
    if m is None:
        raise DefinitionInvalid(
            f"{where}: {raw!r} is not a selector ('$inputs.<name>' or '$steps.<step>.<output>')",
            node=node, field=where,
        )
    source = m.group("source")
    name_field = m.group("field")
    if source == "steps" and name_field is None:
        raise DefinitionInvalid(
            f"{where}: {raw!r} names a step but not which of its outputs", node=node, field=where
        )
    path: list[int | str] = []
    for idx, key in _PATH_PART.findall(m.group("path")):
        path.append(int(idx) if key == "" else key)
    if source == "inputs" and name_field is not None:
        # "$inputs.image.width" is not a thing: inputs have no fields, only paths into their value.
        path.insert(0, name_field)
        name_field = None
    return Selector(
        raw=raw,
        source="inputs" if source == "inputs" else "steps",
        name=m.group("name"),
        field=name_field,
        path=tuple(path),
    )


@dataclass(frozen=True)
class InputSpec:
    name: str
    kind: str = "image"


@dataclass(frozen=True)
class Step:
    name: str
    type: str
    params: Mapping[str, Any]
    inputs: Mapping[str, Selector]


@dataclass(frozen=True)
class PipelineDefinition:
    """A parsed definition. ``digest`` identifies its exact content (used to cache compilations)."""

    name: str
    version: int
    inputs: tuple[InputSpec, ...]
    steps: tuple[Step, ...]
    outputs: Mapping[str, Selector]
    artifacts: Mapping[str, Selector] = field(default_factory=dict)
    units: Mapping[str, str] = field(default_factory=dict)
    id: str | None = None
    digest: str = ""

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)


def _require(cond: bool, message: str, node: str | None = None, *, field: str) -> None:
    if not cond:
        raise DefinitionInvalid(message, node=node, field=field)


def _parse_step(raw: object, index: int) -> Step:
    where = f"steps[{index}]"
    _require(isinstance(raw, Mapping), f"{where} must be an object", field=where)
    assert isinstance(raw, Mapping)
    name = raw.get("name")
    _require(
        isinstance(name, str) and re.fullmatch(_NAME, name) is not None,
        f"{where} needs a 'name' of letters, digits, '_' or '-', got {name!r}",
        field=f"{where}.name",
    )
    assert isinstance(name, str)
    op = raw.get("type")
    _require(isinstance(op, str) and op != "", "needs a 'type' (the op to run)", name,
             field="type")
    assert isinstance(op, str)
    params = raw.get("params", {})
    _require(isinstance(params, Mapping), "'params' must be an object", name, field="params")
    inputs: dict[str, Selector] = {}
    for key, value in raw.items():
        if key in _STEP_KEYS:
            continue
        if key == "inputs" and isinstance(value, Mapping):
            for sub, sel in value.items():
                inputs[str(sub)] = parse_selector(sel, node=name, where=f"inputs.{sub}")
        else:
            inputs[key] = parse_selector(value, node=name, where=f"input '{key}'")
    return Step(name=name, type=op, params=dict(params), inputs=inputs)


def _parse_selectors(raw: object, key: str) -> dict[str, Selector]:
    if raw is None:
        return {}
    _require(isinstance(raw, Mapping), f"'{key}' must be an object of name -> selector",
             field=key)
    assert isinstance(raw, Mapping)
    return {
        str(k): parse_selector(v, node=None, where=f"{key}.{k}") for k, v in raw.items()
    }


def parse_definition(data: Mapping[str, Any] | str | bytes) -> PipelineDefinition:
    """Parse a definition (JSON text or an already-decoded object); structural errors only."""
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise DefinitionInvalid(f"definition is not valid JSON: {exc}",
                                    field="definition") from exc
    _require(isinstance(data, Mapping), "definition must be a JSON object", field="definition")
    assert isinstance(data, Mapping)
    digest = hashlib.sha256(
        json.dumps(data, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()
    name = data.get("name")
    _require(isinstance(name, str) and name != "", "definition needs a 'name'", field="name")
    version = data.get("version")
    _require(
        isinstance(version, int) and not isinstance(version, bool) and version >= 1,
        f"'version' must be a positive integer, got {version!r}", field="version",
    )
    assert isinstance(name, str) and isinstance(version, int)
    pid = data.get("id")
    _require(pid is None or isinstance(pid, str | int), "'id' must be a string or integer",
             field="id")

    raw_inputs = data.get("inputs", [{"name": "image", "kind": "image"}])
    _require(isinstance(raw_inputs, list), "'inputs' must be a list", field="inputs")
    inputs: list[InputSpec] = []
    for i, item in enumerate(raw_inputs):
        if isinstance(item, str):
            item = {"name": item}
        _require(isinstance(item, Mapping) and isinstance(item.get("name"), str),
                 f"inputs[{i}] needs a 'name'", field=f"inputs[{i}].name")
        kind = item.get("kind", "image")
        _require(kind in INPUT_KINDS,
                 f"inputs[{i}] kind {kind!r} is not one of {sorted(INPUT_KINDS)}",
                 field=f"inputs[{i}].kind")
        inputs.append(InputSpec(name=item["name"], kind=kind))
    _require(len({i.name for i in inputs}) == len(inputs), "input names must be unique",
             field="inputs")

    raw_steps = data.get("steps")
    _require(isinstance(raw_steps, list) and len(raw_steps) > 0,
             "'steps' must be a non-empty list", field="steps")
    assert isinstance(raw_steps, list)
    steps = [_parse_step(s, i) for i, s in enumerate(raw_steps)]
    seen: set[str] = set()
    for s in steps:
        _require(s.name not in seen, "step name is used twice", s.name, field="name")
        seen.add(s.name)

    outputs = _parse_selectors(data.get("outputs"), "outputs")
    _require(len(outputs) > 0, "'outputs' must name at least one measurement", field="outputs")
    units = data.get("units", {})
    _require(
        isinstance(units, Mapping) and all(isinstance(v, str) for v in units.values()),
        "'units' must map output names to unit strings", field="units",
    )
    return PipelineDefinition(
        id=None if pid is None else str(pid),
        name=name,
        version=version,
        inputs=tuple(inputs),
        steps=tuple(steps),
        outputs=outputs,
        artifacts=_parse_selectors(data.get("artifacts"), "artifacts"),
        units=dict(units),
        digest=digest,
    )


# -- checks against the catalogue ------------------------------------------------------------


@dataclass(frozen=True)
class CheckedDefinition:
    """A definition that passed every check made before anything runs."""

    definition: PipelineDefinition
    params: Mapping[str, Mapping[str, Any]]  # per step: every parameter, defaults filled in
    deps: Mapping[str, frozenset[str]]  # per step: the steps it reads
    order: tuple[str, ...]  # a topological order, keeping the definition's order where free


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _decl_for(step: Step) -> OpDecl:
    decl = OPS.get(step.type)
    if decl is None:
        raise DefinitionInvalid(
            f"unknown op '{step.type}'{_suggest(step.type, sorted(OPS))}; "
            f"known ops: {', '.join(sorted(OPS))}",
            node=step.name, op=step.type, field="type",
        )
    return decl


def _params(step: Step, decl: OpDecl) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in step.params:
        if key not in decl.params:
            raise DefinitionInvalid(
                f"unknown parameter '{key}' for op '{decl.type}'"
                f"{_suggest(key, sorted(decl.params))}", node=step.name, param=key)
    for key, p in decl.params.items():
        if key in step.params and step.params[key] is not None:
            out[key] = check_param(step.name, key, p, step.params[key])
        elif p.required:
            raise DefinitionInvalid(f"missing required parameter '{key}'", node=step.name,
                                    param=key)
        else:
            out[key] = p.default
    return out


def _check_values(step: Step, params: Mapping[str, Any]) -> None:
    """Rules between an op's parameters that their types alone do not say."""
    if step.type == "color":
        src, dst = params["from"], params["to"]
        if src != dst and (src, dst) not in COLOR_CONVERSIONS:
            raise DefinitionInvalid(f"no conversion from {src} to {dst}", node=step.name,
                                    param="to")


def _check_inputs(step: Step, decl: OpDecl) -> None:
    if decl.dynamic_io:
        if not step.inputs:
            raise DefinitionInvalid("no input is wired (use 'input' or 'inputs')", node=step.name,
                                    input="input")
        return
    for key in decl.inputs:
        if key not in step.inputs:
            raise DefinitionInvalid(f"missing input '{key}'", node=step.name, input=key)
    allowed = {*decl.inputs, *decl.optional_inputs}
    for key in step.inputs:
        if key not in allowed:
            raise DefinitionInvalid(
                f"op '{decl.type}' has no input '{key}' (inputs: {', '.join(sorted(allowed))})",
                node=step.name, input=key)


def _check_ref(
    sel: Selector, node: str | None, where: str, definition: PipelineDefinition,
    decls: Mapping[str, OpDecl],
) -> None:
    if sel.source == "inputs":
        names = [i.name for i in definition.inputs]
        if sel.name not in names:
            raise DefinitionInvalid(
                f"{where} refers to pipeline input '{sel.name}', which is not declared "
                f"(inputs: {', '.join(names) or 'none'})", node=node, selector=sel.raw,
                field=where)
        return
    if sel.name not in decls:
        raise DefinitionInvalid(
            f"{where} refers to step '{sel.name}', which does not exist"
            f"{_suggest(sel.name, sorted(decls))}", node=node, selector=sel.raw, field=where)
    target = decls[sel.name]
    if sel.field is not None and not target.dynamic_io and sel.field not in target.outputs:
        raise DefinitionInvalid(
            f"{where} refers to output '{sel.field}' of step '{sel.name}', but op "
            f"'{target.type}' outputs {', '.join(target.outputs)}", node=node, selector=sel.raw,
            field=where)


def _order(definition: PipelineDefinition, deps: Mapping[str, frozenset[str]]) -> list[str]:
    """Kahn's algorithm, keeping the definition's order among ready steps; names a cycle if any."""
    remaining = {s.name: set(deps[s.name]) for s in definition.steps}
    order: list[str] = []
    while remaining:
        ready = [n for n in remaining if not remaining[n]]
        if not ready:
            cycle = _find_cycle(remaining)
            raise DefinitionInvalid(
                "the steps form a cycle: " + " -> ".join(cycle), node=cycle[0], cycle=cycle)
        for n in ready:
            order.append(n)
            del remaining[n]
        for rest in remaining.values():
            rest.difference_update(ready)
    return order


def _find_cycle(graph: Mapping[str, set[str]]) -> list[str]:
    start = next(iter(graph))
    path: list[str] = []
    node = start
    while node not in path:
        path.append(node)
        node = next(iter(graph[node]))
    return [*path[path.index(node):], node]


def kind_accepts(want: str, got: str) -> bool:
    """Whether an input declared as ``want`` may be fed a value of kind ``got``."""
    if want == "any" or got == "any":
        return True
    if want == "tensor":
        return got in ("tensor", "value")  # lists of numbers are accepted as tensors
    if want == "value":
        return True
    return want == got


def meta_of(sel: Selector, definition: PipelineDefinition,
            metas: Mapping[tuple[str, str], Meta]) -> Meta:
    """What is known of the value a selector reads, from the steps before it."""
    if sel.source == "inputs":
        kind = next(i.kind for i in definition.inputs if i.name == sel.name)
        if sel.path:
            return ANY
        if kind == "image":
            return image_meta((None, None, 3))
        return Meta("bytes") if kind == "bytes" else ANY
    if sel.path:
        return ANY  # an element of an output: kind unknown statically
    return metas.get((sel.name, sel.field or ""), ANY)


def check_kinds(step: Step, decl: OpDecl, fed: Mapping[str, Meta]) -> None:
    """Refuse a value of a kind the op's input does not take (a tensor where an image goes)."""
    if decl.dynamic_io:
        return
    for key, meta in fed.items():
        want = decl.inputs.get(key) or decl.optional_inputs.get(key, "any")
        if not kind_accepts(want, meta.kind):
            raise DefinitionInvalid(
                f"input '{key}' expects {want} but '{step.inputs[key].raw}' is {meta.kind}",
                node=step.name, input=key)


def check_definition(definition: PipelineDefinition) -> CheckedDefinition:
    """Everything that can be checked without a model file or an image, in the order the tablet
    reports it: ops, parameters, wiring, references, cycles, then step by step the kind of each
    value fed and the shapes each op can take (as far as they are known without the model)."""
    decls = {s.name: _decl_for(s) for s in definition.steps}
    params = {s.name: _params(s, decls[s.name]) for s in definition.steps}
    deps: dict[str, frozenset[str]] = {}
    for s in definition.steps:
        _check_values(s, params[s.name])
        _check_inputs(s, decls[s.name])
        for key, sel in s.inputs.items():
            _check_ref(sel, s.name, f"input '{key}'", definition, decls)
        deps[s.name] = frozenset(sel.name for sel in s.inputs.values() if sel.source == "steps")
    for out_name, sel in definition.outputs.items():
        _check_ref(sel, None, f"output '{out_name}'", definition, decls)
    for art_name, sel in definition.artifacts.items():
        _check_ref(sel, None, f"artifact '{art_name}'", definition, decls)
    order = _order(definition, deps)
    by_name = {s.name: s for s in definition.steps}
    metas: dict[tuple[str, str], Meta] = {}
    for name in order:
        step = by_name[name]
        fed = {k: meta_of(sel, definition, metas) for k, sel in step.inputs.items()}
        check_kinds(step, decls[name], fed)
        rule = SHAPE_RULES.get(step.type)
        if rule is None:
            continue
        try:
            made = rule(fed, params[name])
        except (ValueError, TypeError) as exc:
            raise DefinitionInvalid(str(exc), node=name) from exc
        metas.update({(name, out): meta for out, meta in made.items()})
    return CheckedDefinition(definition=definition, params=params, deps=deps, order=tuple(order))


def validate_definition(data: Mapping[str, Any] | str | bytes) -> CheckedDefinition:
    """Parse and check a definition as published: what the server runs before storing one."""
    return check_definition(parse_definition(data))
