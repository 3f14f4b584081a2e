"""Load-time validation of a definition against the op library and the models: a :class:`Plan`.

Pure: the only outside knowledge is ``models``, a function from a ``sha256:`` reference to
:class:`ModelInfo` (the engine passes its session pool's; tests pass a dictionary's). Each error is
a :class:`DefinitionInvalid` (or the store's ModelUnavailable / ModelCorrupt) naming the step:

- unknown op; unknown, missing or mistyped parameter;
- missing input, unknown input, a selector that points at no input / step / output (dangling);
- a cycle (the steps on it are named);
- a value of the wrong kind (a tensor where an image is expected...);
- a tensor whose statically known shape or dtype cannot match the model's declared input.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sidecar.errors import KensaError
from sidecar.pipeline import nodes  # noqa: F401  (registers the ops)
from sidecar.pipeline.definition import PipelineDefinition, Selector, Step
from sidecar.pipeline.errors import DefinitionInvalid
from sidecar.pipeline.nodes.base import (
    ANY,
    REGISTRY,
    Meta,
    ModelInfo,
    ModelLookup,
    OpSpec,
    StaticContext,
    check_param,
)


@dataclass(frozen=True)
class PlannedStep:
    name: str
    spec: OpSpec
    params: Mapping[str, Any]
    inputs: Mapping[str, Selector]
    deps: frozenset[str]
    models: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    """A validated definition: steps in a topological order, with resolved parameters."""

    definition: PipelineDefinition
    steps: tuple[PlannedStep, ...]
    dependents: Mapping[str, tuple[str, ...]]
    width: int  # most steps that could run at once; 1 means a chain
    metas: Mapping[tuple[str, str], Meta] = field(default_factory=dict)
    # Per model: input name → shape known statically (for a warm-up at the real size).
    warm_shapes: Mapping[str, Mapping[str, tuple[int | None, ...]]] = field(default_factory=dict)

    @property
    def models(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for s in self.steps:
            for m in s.models:
                seen.setdefault(m)
        return tuple(seen)


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _spec_for(step: Step) -> OpSpec:
    spec = REGISTRY.get(step.type)
    if spec is None:
        raise DefinitionInvalid(
            f"unknown op '{step.type}'{_suggest(step.type, sorted(REGISTRY))}; "
            f"known ops: {', '.join(sorted(REGISTRY))}",
            node=step.name, op=step.type,
        )
    return spec


def _params(step: Step, spec: OpSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in step.params:
        if key not in spec.params:
            raise DefinitionInvalid(
                f"unknown parameter '{key}' for op '{spec.type}'"
                f"{_suggest(key, sorted(spec.params))}", node=step.name, param=key)
    for key, p in spec.params.items():
        if key in step.params and step.params[key] is not None:
            out[key] = check_param(step.name, key, p, step.params[key])
        elif p.required:
            raise DefinitionInvalid(f"missing required parameter '{key}'", node=step.name,
                                    param=key)
        else:
            out[key] = p.default
    return out


def _check_inputs(step: Step, spec: OpSpec) -> None:
    if spec.dynamic_io:
        if not step.inputs:
            raise DefinitionInvalid("no input is wired (use 'input' or 'inputs')", node=step.name)
        return
    for key in spec.inputs:
        if key not in step.inputs:
            raise DefinitionInvalid(f"missing input '{key}'", node=step.name, input=key)
    allowed = {*spec.inputs, *spec.optional_inputs}
    for key in step.inputs:
        if key not in allowed:
            raise DefinitionInvalid(
                f"op '{spec.type}' has no input '{key}' (inputs: {', '.join(sorted(allowed))})",
                node=step.name, input=key)


def _check_ref(
    sel: Selector, node: str | None, where: str, definition: PipelineDefinition,
    specs: Mapping[str, OpSpec],
) -> None:
    if sel.source == "inputs":
        names = [i.name for i in definition.inputs]
        if sel.name not in names:
            raise DefinitionInvalid(
                f"{where} refers to pipeline input '{sel.name}', which is not declared "
                f"(inputs: {', '.join(names) or 'none'})", node=node, selector=sel.raw)
        return
    if sel.name not in specs:
        raise DefinitionInvalid(
            f"{where} refers to step '{sel.name}', which does not exist"
            f"{_suggest(sel.name, sorted(specs))}", node=node, selector=sel.raw)
    target = specs[sel.name]
    if sel.field is not None and not target.dynamic_io and sel.field not in target.outputs:
        raise DefinitionInvalid(
            f"{where} refers to output '{sel.field}' of step '{sel.name}', but op "
            f"'{target.type}' outputs {', '.join(target.outputs)}", node=node, selector=sel.raw)


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


def _kind_ok(want: str, got: Meta) -> bool:
    if want == "any" or got.kind == "any":
        return True
    if want == "tensor":
        return got.kind in ("tensor", "value")  # lists of numbers are accepted as tensors
    if want == "value":
        return True
    return want == got.kind


def _meta_of(sel: Selector, definition: PipelineDefinition,
             metas: Mapping[tuple[str, str], Meta]) -> Meta:
    if sel.path:
        return ANY  # an element of an output: kind unknown statically
    if sel.source == "inputs":
        kind = next(i.kind for i in definition.inputs if i.name == sel.name)
        if kind == "image":
            return Meta("image", (None, None, 3), "uint8")
        return Meta("bytes") if kind == "bytes" else ANY
    return metas.get((sel.name, sel.field or ""), ANY)


def _levels(order: list[str], deps: Mapping[str, frozenset[str]]) -> int:
    depth: dict[str, int] = {}
    for n in order:
        depth[n] = 1 + max((depth[d] for d in deps[n]), default=-1)
    counts: dict[int, int] = {}
    for d in depth.values():
        counts[d] = counts.get(d, 0) + 1
    return max(counts.values(), default=1)


def validate(definition: PipelineDefinition, models: ModelLookup | None = None) -> Plan:
    """Check everything that can be checked before an image arrives; return the run plan."""
    specs = {s.name: _spec_for(s) for s in definition.steps}
    params = {s.name: _params(s, specs[s.name]) for s in definition.steps}
    deps: dict[str, frozenset[str]] = {}
    for s in definition.steps:
        _check_inputs(s, specs[s.name])
        for key, sel in s.inputs.items():
            _check_ref(sel, s.name, f"input '{key}'", definition, specs)
        deps[s.name] = frozenset(sel.name for sel in s.inputs.values() if sel.source == "steps")
    for out_name, sel in definition.outputs.items():
        _check_ref(sel, None, f"output '{out_name}'", definition, specs)
    for art_name, sel in definition.artifacts.items():
        _check_ref(sel, None, f"artifact '{art_name}'", definition, specs)
    order = _order(definition, deps)

    infos: dict[str, ModelInfo] = {}

    def lookup(node: str) -> ModelLookup:
        def get(ref: str) -> ModelInfo:
            if ref not in infos:
                if models is None:
                    raise AssertionError("no model lookup")
                try:
                    infos[ref] = models(ref)
                except KensaError as exc:  # missing / corrupt: same error, naming the step
                    detail = {**exc.detail, "node": node}
                    raise type(exc)(f"step '{node}': {exc.message}", **detail) from exc
            return infos[ref]
        return get

    metas: dict[tuple[str, str], Meta] = {}
    warm: dict[str, dict[str, tuple[int | None, ...]]] = {}
    planned: list[PlannedStep] = []
    by_name = {s.name: s for s in definition.steps}
    for name in order:
        step, spec = by_name[name], specs[name]
        in_metas = {k: _meta_of(sel, definition, metas) for k, sel in step.inputs.items()}
        if not spec.dynamic_io:
            for key, meta in in_metas.items():
                want = spec.inputs.get(key) or spec.optional_inputs.get(key, "any")
                if not _kind_ok(want, meta):
                    raise DefinitionInvalid(
                        f"input '{key}' expects {want} but '{step.inputs[key].raw}' is "
                        f"{meta.kind}", node=name, input=key)
        refs = tuple(params[name][k] for k in spec.model_params() if params[name].get(k))
        get = lookup(name) if models is not None else None
        if get is not None:
            for ref in refs:
                get(ref)
        try:
            out = spec.infer(in_metas, StaticContext(node=name, params=params[name], models=get))
        except KensaError:
            raise
        except (ValueError, TypeError) as exc:
            raise DefinitionInvalid(str(exc), node=name) from exc
        for field_name, meta in out.items():
            metas[(name, field_name)] = meta
        if spec.type == "onnx" and get is not None:
            info = get(params[name]["model"])
            first = info.inputs[0].name
            warm[params[name]["model"]] = {
                (first if k == "input" else k): m.shape
                for k, m in in_metas.items() if m.shape is not None
            }
        planned.append(PlannedStep(name=name, spec=spec, params=params[name], inputs=step.inputs,
                                   deps=deps[name], models=refs))
    dependents: dict[str, list[str]] = {s.name: [] for s in definition.steps}
    for ps in planned:
        for d in ps.deps:
            dependents[d].append(ps.name)
    return Plan(
        definition=definition,
        steps=tuple(planned),
        dependents={k: tuple(v) for k, v in dependents.items()},
        width=_levels(order, deps),
        metas=metas,
        warm_shapes=warm,
    )
