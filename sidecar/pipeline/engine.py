"""The pipeline engine: compile a definition once, run it on images, report what ran and how long.

    engine = PipelineEngine(ModelStore.for_device(settings.models_dir))
    result = engine.run(definition_json, jpeg_bytes, context={"target": {"batch_id": "A12-3456"}})
    judgment = judge(item_criteria, result.outputs, context, units=result.units)

``run`` accepts a definition as JSON text, a decoded object, a parsed :class:`PipelineDefinition`
or a compiled :class:`Plan`; compilations are cached by the definition's content digest, so callers
may simply pass the cached JSON each time. Compiling validates (naming the step at fault), loads
each model once into the session pool and warms it at the sizes the pipeline will feed it.

A chain of steps runs inline on the caller's thread (no hand-offs: the engine's overhead over
hand-written code is a few dict lookups per step). A definition with independent branches (say a
classifier and an OCR on two crops) runs them concurrently on a small thread pool; ONNX Runtime
releases the GIL while it computes, so branches genuinely overlap.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from schema.formats.criteria import Judgment
from schema.formats.pipeline import PipelineDefinition, Selector
from sidecar.errors import ImageInvalid, KensaError
from sidecar.pipeline.definition import parse_definition
from sidecar.pipeline.errors import NodeFailed
from sidecar.pipeline.judgment import judge
from sidecar.pipeline.nodes.base import CameraScale
from sidecar.pipeline.nodes.image import decode_image
from sidecar.pipeline.overlay import Overlay
from sidecar.pipeline.overlay import build as build_overlay
from sidecar.pipeline.runtime import (
    LoadedModel,
    RuntimeConfig,
    SessionPool,
    engine_version,
    usable_cores,
)
from sidecar.pipeline.store import ModelStore
from sidecar.pipeline.validate import Plan, PlannedStep, validate

DefinitionLike = Plan | PipelineDefinition | Mapping[str, Any] | str | bytes


@dataclass(frozen=True)
class NodeTiming:
    """One step's execution (the seed's ``component_executions``)."""

    node: str
    op: str
    stage: str
    start_ms: float
    ms: float


@dataclass
class PipelineResult:
    pipeline_id: str | None
    pipeline_name: str
    pipeline_version: int
    definition_digest: str
    outputs: dict[str, Any]
    units: dict[str, str]
    artifacts: dict[str, Any]
    node_timings: list[NodeTiming]
    stage_ms: dict[str, float]
    total_ms: float
    models: dict[str, str]  # step → model sha256 (a step's last, where it runs several)
    providers: dict[str, str]  # every model's sha256 → execution provider its ORT session got
    engine_version: str = ""  # kensa's and ONNX Runtime's versions (runtime.engine_version)
    # Where the findings lie on the photo (circles, text lines, boxes, heat maps), in its pixels.
    overlay: Overlay | None = None
    # step → the px→mm scale it measured with: its source (a calibration, by id and time, or
    # the pipeline's nominal mm_per_px).
    scales: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """A JSON-ready summary for storage and sync; array artifacts are described, not inlined."""
        return {
            "pipeline": {"id": self.pipeline_id, "name": self.pipeline_name,
                         "version": self.pipeline_version, "digest": self.definition_digest},
            "measurements": self.outputs,
            "units": self.units,
            "artifacts": {k: _describe(v) for k, v in self.artifacts.items()},
            "models": self.models,
            "providers": self.providers,
            "engine_version": self.engine_version,
            "scales": self.scales,
            "stage_ms": {k: round(v, 3) for k, v in self.stage_ms.items()},
            "total_ms": round(self.total_ms, 3),
            "steps": [
                {"node": t.node, "op": t.op, "stage": t.stage, "start_ms": round(t.start_ms, 3),
                 "ms": round(t.ms, 3)} for t in self.node_timings
            ],
        }


def _describe(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return {"array": list(v.shape), "dtype": str(v.dtype)}
    return jsonable(v)


def jsonable(v: Any) -> Any:
    """numpy scalars/arrays → plain Python, recursively (measurements are stored as JSON)."""
    if v is None or isinstance(v, str | int | float | bool):
        return v
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.item() if v.ndim == 0 else v.tolist()
    if isinstance(v, Mapping):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [jsonable(x) for x in v]
    return v


class _StepContext:
    """Handed to an op while it runs: model sessions, and extra stage attribution."""

    __slots__ = ("calibrations", "extra", "pool")

    def __init__(self, pool: SessionPool, calibrations: Mapping[str, CameraScale]) -> None:
        self.pool = pool
        self.extra: dict[str, float] | None = None
        self.calibrations = calibrations

    def calibration(self, camera: str) -> CameraScale | None:
        return self.calibrations.get(camera)

    def session(self, model_ref: str) -> LoadedModel:
        return self.pool.get(model_ref)

    def add_stage_time(self, stage: str, ms: float) -> None:
        if self.extra is None:
            self.extra = {}
        self.extra[stage] = self.extra.get(stage, 0.0) + ms


def _positive(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v > 0


def _calibrations(context: Mapping[str, Any] | None) -> Mapping[str, CameraScale]:
    """camera → scale, from a number (mm per pixel) or a calibration record
    (``{"mm_per_px", "calibration_id", "calibrated_at"}``, as the job runner hands them)."""
    raw = (context or {}).get("calibrations") or {}
    scales: dict[str, CameraScale] = {}
    for camera, v in raw.items():
        if _positive(v):
            scales[str(camera)] = CameraScale(float(v))
        elif isinstance(v, Mapping) and _positive(v.get("mm_per_px")):
            cid, at = v.get("calibration_id"), v.get("calibrated_at")
            scales[str(camera)] = CameraScale(float(v["mm_per_px"]),
                                              str(cid) if cid is not None else None,
                                              str(at) if at is not None else None)
    return scales


def _resolve(sel: Selector, inputs: Mapping[str, Any], values: Mapping[str, Mapping[str, Any]],
             node: str | None) -> Any:
    try:
        v = inputs[sel.name] if sel.source == "inputs" else values[sel.name][sel.field or ""]
        for part in sel.path:
            v = v[part]
    except (KeyError, IndexError, TypeError) as exc:
        raise NodeFailed(f"{sel.raw} has no value ({type(exc).__name__}: {exc})",
                         node=node, selector=sel.raw) from exc
    return v


class PipelineEngine:
    def __init__(
        self,
        store: ModelStore | None = None,
        config: RuntimeConfig | None = None,
        *,
        pool: SessionPool | None = None,
        max_workers: int | None = None,
    ) -> None:
        self.pool = pool or SessionPool(store or ModelStore(), config or RuntimeConfig())
        self._plans: dict[str, Plan] = {}
        self._plans_lock = threading.Lock()
        self._reports: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
        self._max_workers = max_workers or max(2, min(4, usable_cores()))
        self._executor: ThreadPoolExecutor | None = None

    # -- compile -----------------------------------------------------------------------------
    def compile(self, definition: DefinitionLike) -> Plan:
        """Validate, load and warm up; cached by content, so repeated calls are free."""
        if isinstance(definition, Plan):
            return definition
        parsed = (definition if isinstance(definition, PipelineDefinition)
                  else parse_definition(definition))
        plan = self._plans.get(parsed.digest)
        if plan is not None:
            return plan
        with self._plans_lock:
            plan = self._plans.get(parsed.digest)
            if plan is None:
                plan = validate(parsed, self.pool.info)
                for ref, shapes in plan.warm_shapes.items():
                    self.pool.get(ref).warm(shapes)
                self._plans[parsed.digest] = plan
        return plan

    # -- run ---------------------------------------------------------------------------------
    def run(
        self,
        definition: DefinitionLike,
        image: bytes | np.ndarray[Any, Any] | None = None,
        *,
        inputs: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> PipelineResult:
        """Run on one image (bytes are decoded; an array is used as is) or on named ``inputs``.

        ``context`` is what callers also hand to ``judge`` (``{"target": {...}}``); its
        ``calibrations`` (camera → mm per pixel, the tablet's measured scales) reach the
        measuring ops.
        """
        plan = self.compile(definition)
        d = plan.definition
        t_start = time.perf_counter()
        stage_ms = {"decode": 0.0, "pre": 0.0, "infer": 0.0, "post": 0.0, "judge": 0.0}
        bound: dict[str, Any] = dict(inputs or {})
        if image is not None:
            first = next((i for i in d.inputs if i.kind in ("image", "bytes")), None)
            if first is None:
                raise NodeFailed("this pipeline takes no image input")
            bound[first.name] = image
        for spec in d.inputs:
            if spec.name not in bound:
                raise NodeFailed(f"pipeline input '{spec.name}' was not given")
            value = bound[spec.name]
            if spec.kind == "image" and isinstance(value, bytes | bytearray | memoryview):
                t0 = time.perf_counter()
                bound[spec.name] = decode_image(bytes(value))
                stage_ms["decode"] += (time.perf_counter() - t0) * 1000
            elif spec.kind == "image" and not isinstance(value, np.ndarray):
                raise ImageInvalid(f"pipeline input '{spec.name}' must be image bytes or an array")

        values: dict[str, Mapping[str, Any]] = {}
        timings: list[NodeTiming] = []
        scales = _calibrations(context)
        if plan.width <= 1 or self._max_workers <= 1:
            for step in plan.steps:
                values[step.name] = self._execute(step, bound, values, timings, stage_ms, t_start,
                                                  scales)
        else:
            self._run_parallel(plan, bound, values, timings, stage_ms, t_start, scales)

        outputs = {k: jsonable(_resolve(sel, bound, values, None)) for k, sel in d.outputs.items()}
        # Every scale a measuring step used, whether or not the pipeline outputs it.
        used_scales = {s.name: jsonable(values[s.name]["scale"]) for s in plan.steps
                       if "scale" in s.spec.outputs and s.spec.type == "measure_circle"
                       and isinstance(values.get(s.name, {}).get("scale"), Mapping)}
        artifacts = {k: _resolve(sel, bound, values, None) for k, sel in d.artifacts.items()}
        models, providers = self._model_report(plan)
        return PipelineResult(
            pipeline_id=d.id, pipeline_name=d.name, pipeline_version=d.version,
            definition_digest=d.digest, outputs=outputs, units=dict(d.units), artifacts=artifacts,
            node_timings=timings, stage_ms=stage_ms,
            total_ms=(time.perf_counter() - t_start) * 1000, models=models, providers=providers,
            engine_version=engine_version(),
            overlay=build_overlay(d, bound, values), scales=used_scales,
        )

    def _model_report(self, plan: Plan) -> tuple[dict[str, str], dict[str, str]]:
        """Step → model SHA-256 and SHA-256 → provider; fixed once a plan is compiled."""
        cached = self._reports.get(plan.definition.digest)
        if cached is None:
            loaded = [(s.name, self.pool.get(m)) for s in plan.steps for m in s.models]
            cached = ({name: m.sha256 for name, m in loaded},
                      {m.sha256: m.provider for _, m in loaded})
            self._reports[plan.definition.digest] = cached
        return dict(cached[0]), dict(cached[1])

    def inspect(
        self,
        definition: DefinitionLike,
        image: bytes | np.ndarray[Any, Any],
        criteria: Mapping[str, Any] | str,
        context: Mapping[str, Any] | None = None,
    ) -> tuple[PipelineResult, Judgment]:
        """Run, then judge the measurements against an item's criteria (timed as ``judge``)."""
        result = self.run(definition, image, context=context)
        t0 = time.perf_counter()
        verdict = judge(criteria, result.outputs, context, units=result.units)
        ms = (time.perf_counter() - t0) * 1000
        result.stage_ms["judge"] = ms
        result.total_ms += ms
        return result, verdict

    def _execute(
        self, step: PlannedStep, bound: Mapping[str, Any], values: Mapping[str, Mapping[str, Any]],
        timings: list[NodeTiming], stage_ms: dict[str, float], t_start: float,
        scales: Mapping[str, CameraScale],
    ) -> Mapping[str, Any]:
        ctx = _StepContext(self.pool, scales)
        t0 = time.perf_counter()
        try:
            args = {k: _resolve(sel, bound, values, step.name) for k, sel in step.inputs.items()}
            out = step.spec.run(args, step.params, ctx)
        except KensaError as exc:
            if isinstance(exc, ImageInvalid) or "step '" in exc.message:
                raise
            detail = {**exc.detail, "node": step.name}
            raise type(exc)(f"step '{step.name}' ({step.spec.type}): {exc.message}",
                            **detail) from exc
        except Exception as exc:
            raise NodeFailed(f"step '{step.name}' ({step.spec.type}) failed: {exc}",
                             node=step.name, op=step.spec.type) from exc
        t1 = time.perf_counter()
        ms = (t1 - t0) * 1000
        own = ms
        if ctx.extra:
            for stage, extra_ms in ctx.extra.items():
                stage_ms[stage] += extra_ms
                own -= extra_ms
        stage_ms[step.spec.stage] += max(own, 0.0)
        timings.append(NodeTiming(node=step.name, op=step.spec.type, stage=step.spec.stage,
                                  start_ms=(t0 - t_start) * 1000, ms=ms))
        return out

    def _run_parallel(
        self, plan: Plan, bound: Mapping[str, Any], values: dict[str, Mapping[str, Any]],
        timings: list[NodeTiming], stage_ms: dict[str, float], t_start: float,
        scales: Mapping[str, CameraScale],
    ) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self._max_workers, thread_name_prefix="pipeline")
        pending = {s.name: len(s.deps) for s in plan.steps}
        by_name = {s.name: s for s in plan.steps}
        lock = threading.Lock()  # timings and stage_ms are shared by the branch threads
        running: dict[Future[Mapping[str, Any]], str] = {}

        def task(step: PlannedStep) -> Mapping[str, Any]:
            local_t: list[NodeTiming] = []
            local_s = dict.fromkeys(stage_ms, 0.0)
            out = self._execute(step, bound, values, local_t, local_s, t_start, scales)
            with lock:
                timings.extend(local_t)
                for k, v in local_s.items():
                    stage_ms[k] += v
            return out

        def submit(name: str) -> None:
            running[self._executor.submit(task, by_name[name])] = name  # type: ignore[union-attr]

        for name, n in pending.items():
            if n == 0:
                submit(name)
        try:
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    name = running.pop(fut)
                    values[name] = fut.result()
                    for nxt in plan.dependents[name]:
                        pending[nxt] -= 1
                        if pending[nxt] == 0:
                            submit(nxt)
        except BaseException:
            for fut in running:
                fut.cancel()
            raise
        timings.sort(key=lambda t: t.start_ms)

    # -- reporting ---------------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        return self.pool.report()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


__all__ = ["NodeTiming", "PipelineEngine", "PipelineResult", "jsonable"]
