"""The pipeline definition format: parsing JSON into typed, immutable objects.

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

Every key of a step other than ``name``, ``type`` and ``params`` wires one of the step's inputs to a
*selector*: ``$inputs.<name>`` or ``$steps.<step>.<output>``, optionally followed by indexes and
keys (``[0][1]``, ``.text``). ``inputs`` may also be an object, for ops with named inputs
(``onnx``).

This module checks structure only (types of the top-level keys, selector syntax, duplicate names).
What needs the op library or the models — unknown ops, wiring, cycles, parameter types, tensor
shapes — is :mod:`sidecar.pipeline.validate`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sidecar.pipeline.errors import DefinitionInvalid

_NAME = r"[A-Za-z_][A-Za-z0-9_\-]*"
_SELECTOR = re.compile(
    rf"^\$(?P<source>inputs|steps)\.(?P<name>{_NAME})(?:\.(?P<field>{_NAME}))?"
    rf"(?P<path>(?:\[-?\d+\]|\.{_NAME})*)$"
)
_PATH_PART = re.compile(rf"\[(-?\d+)\]|\.({_NAME})")
_STEP_KEYS = frozenset({"name", "type", "params", "description"})
INPUT_KINDS = frozenset({"image", "bytes", "tensor", "value"})


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
            node=node,
        )
    m = _SELECTOR.match(raw)
    if m is None:
        raise DefinitionInvalid(
            f"{where}: {raw!r} is not a selector ('$inputs.<name>' or '$steps.<step>.<output>')",
            node=node,
        )
    source = m.group("source")
    name_field = m.group("field")
    if source == "steps" and name_field is None:
        raise DefinitionInvalid(
            f"{where}: {raw!r} names a step but not which of its outputs", node=node
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


def _require(cond: bool, message: str, node: str | None = None) -> None:
    if not cond:
        raise DefinitionInvalid(message, node=node)


def _parse_step(raw: object, index: int) -> Step:
    _require(isinstance(raw, Mapping), f"steps[{index}] must be an object")
    assert isinstance(raw, Mapping)
    name = raw.get("name")
    _require(
        isinstance(name, str) and re.fullmatch(_NAME, name) is not None,
        f"steps[{index}] needs a 'name' of letters, digits, '_' or '-', got {name!r}",
    )
    assert isinstance(name, str)
    op = raw.get("type")
    _require(isinstance(op, str) and op != "", "needs a 'type' (the op to run)", name)
    assert isinstance(op, str)
    params = raw.get("params", {})
    _require(isinstance(params, Mapping), "'params' must be an object", name)
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
    _require(isinstance(raw, Mapping), f"'{key}' must be an object of name -> selector")
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
            raise DefinitionInvalid(f"definition is not valid JSON: {exc}") from exc
    _require(isinstance(data, Mapping), "definition must be a JSON object")
    assert isinstance(data, Mapping)
    digest = hashlib.sha256(
        json.dumps(data, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()
    name = data.get("name")
    _require(isinstance(name, str) and name != "", "definition needs a 'name'")
    version = data.get("version")
    _require(
        isinstance(version, int) and not isinstance(version, bool) and version >= 1,
        f"'version' must be a positive integer, got {version!r}",
    )
    assert isinstance(name, str) and isinstance(version, int)
    pid = data.get("id")
    _require(pid is None or isinstance(pid, str | int), "'id' must be a string or integer")

    raw_inputs = data.get("inputs", [{"name": "image", "kind": "image"}])
    _require(isinstance(raw_inputs, list), "'inputs' must be a list")
    inputs: list[InputSpec] = []
    for i, item in enumerate(raw_inputs):
        if isinstance(item, str):
            item = {"name": item}
        _require(isinstance(item, Mapping) and isinstance(item.get("name"), str),
                 f"inputs[{i}] needs a 'name'")
        kind = item.get("kind", "image")
        _require(kind in INPUT_KINDS,
                 f"inputs[{i}] kind {kind!r} is not one of {sorted(INPUT_KINDS)}")
        inputs.append(InputSpec(name=item["name"], kind=kind))
    _require(len({i.name for i in inputs}) == len(inputs), "input names must be unique")

    raw_steps = data.get("steps")
    _require(isinstance(raw_steps, list) and len(raw_steps) > 0, "'steps' must be a non-empty list")
    assert isinstance(raw_steps, list)
    steps = [_parse_step(s, i) for i, s in enumerate(raw_steps)]
    seen: set[str] = set()
    for s in steps:
        _require(s.name not in seen, "step name is used twice", s.name)
        seen.add(s.name)

    outputs = _parse_selectors(data.get("outputs"), "outputs")
    _require(len(outputs) > 0, "'outputs' must name at least one measurement")
    units = data.get("units", {})
    _require(
        isinstance(units, Mapping) and all(isinstance(v, str) for v in units.values()),
        "'units' must map output names to unit strings",
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
