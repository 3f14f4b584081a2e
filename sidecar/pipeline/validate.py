"""Load-time validation of a definition against the op library and the models: a :class:`Plan`.

Everything that can be checked without a model file or an image — unknown op; unknown, missing
or mistyped parameter; missing, unknown or dangling input; a cycle; a value of a kind or shape an
op cannot take, as far as the ops' shape rules tell without a model — is
:func:`schema.formats.pipeline.check_definition`, the code the server runs when a definition is
published. This module runs the shape rules again with ``models``, a function from a ``sha256:``
reference to :class:`ModelInfo` (the engine passes its session pool's; tests pass a
dictionary's), and adds what only the models tell:

- a value of the wrong kind or shape downstream of a model (a model's output);
- a tensor whose statically known shape or dtype cannot match the model's declared input;
- an output of a model's step that the model does not have (``$steps.model.probz``);
- a missing or corrupt model file (the store's ModelUnavailable / ModelCorrupt).

Each error is a :class:`DefinitionInvalid` (or the store's error) naming the step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from schema.formats.pipeline import (
    OPS,
    PipelineDefinition,
    Selector,
    check_definition,
    check_kinds,
    meta_of,
)
from sidecar.errors import KensaError
from sidecar.pipeline import nodes  # noqa: F401  (registers the ops)
from sidecar.pipeline.errors import DefinitionInvalid, from_formats
from sidecar.pipeline.nodes.base import (
    REGISTRY,
    Meta,
    ModelInfo,
    ModelLookup,
    OpSpec,
    StaticContext,
)

_check_definition = from_formats(check_definition)
_check_kinds = from_formats(check_kinds)


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


def _levels(order: tuple[str, ...], deps: Mapping[str, frozenset[str]]) -> int:
    depth: dict[str, int] = {}
    for n in order:
        depth[n] = 1 + max((depth[d] for d in deps[n]), default=-1)
    counts: dict[int, int] = {}
    for d in depth.values():
        counts[d] = counts.get(d, 0) + 1
    return max(counts.values(), default=1)


def validate(definition: PipelineDefinition, models: ModelLookup | None = None) -> Plan:
    """Check everything that can be checked before an image arrives; return the run plan."""
    checked = _check_definition(definition)
    params, deps, order = checked.params, checked.deps, checked.order
    specs = {s.name: REGISTRY[s.type] for s in definition.steps}

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
    # Outputs of the steps whose outputs only their model names (onnx), once the model is known.
    named_by_model: dict[str, frozenset[str]] = {}

    def check_field(sel: Selector, reader: str | None, where: str) -> None:
        known = named_by_model.get(sel.name) if sel.source == "steps" else None
        if known is not None and sel.field is not None and sel.field not in known:
            raise DefinitionInvalid(
                f"{where} reads output '{sel.field}' of step '{sel.name}', which its model does "
                f"not have (its outputs: {', '.join(sorted(known))})",
                node=reader, selector=sel.raw, field=where)

    for name in order:
        step, spec = by_name[name], specs[name]
        for key, sel in step.inputs.items():
            check_field(sel, name, f"input '{key}'")
        in_metas = {k: meta_of(sel, definition, metas) for k, sel in step.inputs.items()}
        # Again with what the models tell: a model's output is known only here.
        _check_kinds(step, OPS[step.type], in_metas)
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
        if spec.dynamic_io and get is not None:
            named_by_model[name] = frozenset(out)
        if spec.type == "onnx" and get is not None:
            info = get(params[name]["model"])
            first = info.inputs[0].name
            warm[params[name]["model"]] = {
                (first if k == "input" else k): m.shape
                for k, m in in_metas.items() if m.shape is not None
            }
        planned.append(PlannedStep(name=name, spec=spec, params=params[name], inputs=step.inputs,
                                   deps=deps[name], models=refs))
    for out_name, sel in definition.outputs.items():
        check_field(sel, None, f"output '{out_name}'")
    for art_name, sel in definition.artifacts.items():
        check_field(sel, None, f"artifact '{art_name}'")
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
