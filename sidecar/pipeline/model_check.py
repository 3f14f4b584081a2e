"""``kensa model check``: a model file and its pipeline, checked before they are published.

The pipeline goes through :func:`schema.formats.pipeline.validate_definition`, the check the
server makes when a definition is published, so a pipeline this passes is one the server takes.
Then what only the model file tells:

- the file: present, a complete ONNX ModelProto (a copy cut short is named as one, before ONNX
  Runtime's bare "Protobuf parsing failed"), its IR version, opsets and producer;
- opsets: ``ai.onnx`` below 7 (ONNX Runtime no longer guarantees those operators) or above what
  this ONNX Runtime implements;
- the pipeline: some step runs this very file (its ``sha256:`` reference), each model input is
  wired, and the tensors fed match the declared shapes and dtypes (``sidecar.pipeline.validate``,
  as a tablet compiles it);
- providers: which ones this ONNX Runtime has and which the session actually got; one asked
  for by name (``--provider cuda``) that did not start is a failure, not a note;
- images: each is an image, then runs through the whole pipeline, with its outputs and timings.

Every failure is a :class:`~sidecar.errors.KensaError` naming the file or the step.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schema.formats.pipeline import validate_definition
from sidecar.errors import ImageInvalid, KensaError
from sidecar.pipeline.errors import (
    DefinitionInvalid,
    ModelCorrupt,
    ModelIncompatible,
    ModelUnavailable,
    from_formats,
)
from sidecar.pipeline.nodes.base import TensorSpec

# ONNX Runtime only guarantees the default domain's operators from opset 7 on.
MIN_OPSET = 7
DEFAULT_DOMAIN = "ai.onnx"

_validate_definition = from_formats(validate_definition)

# ModelProto's fields (onnx.proto3) and their wire types: 0 varint, 2 length-delimited.
_MODEL_FIELDS = {1: ("ir_version", 0), 2: ("producer_name", 2), 3: ("producer_version", 2),
                 4: ("domain", 2), 5: ("model_version", 0), 6: ("doc_string", 2),
                 7: ("graph", 2), 8: ("opset_import", 2), 14: ("metadata_props", 2),
                 20: ("training_info", 2), 25: ("functions", 2), 26: ("configuration", 2)}


@dataclass(frozen=True)
class ModelHeader:
    """What a model file says of itself, read without ONNX Runtime."""

    ir_version: int
    opsets: dict[str, int]
    producer: str


class _Malformed(ValueError):
    pass


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise _Malformed(f"the file ends inside a number at byte {pos:,}")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _Malformed(f"a number at byte {pos:,} is longer than protobuf allows")


def _fields(data: memoryview, known: dict[int, tuple[str, int]] | None = None,
            ) -> Iterator[tuple[int, int | memoryview]]:
    """(field number, value) of one protobuf message; ``known`` fields must have their type."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if known is not None:
            name, want = known.get(number, (f"field {number}", -1))
            if want == -1 or wire != want:
                raise _Malformed(f"byte {pos:,} holds {name} with wire type {wire}, "
                                 "which no ONNX model has")
        value: int | memoryview
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            size, pos = _varint(data, pos)
            if pos + size > len(data):
                label = known[number][0] if known is not None else f"field {number}"
                raise _Malformed(
                    f"the {label} needs {size:,} bytes from byte {pos:,} but the file ends "
                    f"at {len(data):,}: it is truncated")
            value = data[pos:pos + size]
            pos += size
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
            if pos > len(data):
                raise _Malformed("the file ends inside a fixed-size value: it is truncated")
            value = 0
        else:
            raise _Malformed(f"wire type {wire} at byte {pos:,} is not protobuf")
        yield number, value


def read_header(path: Path, data: bytes) -> ModelHeader:
    """The IR version, opsets and producer of an ONNX file; ``ModelCorrupt`` for anything that is
    not a whole ModelProto (a truncated copy, another kind of file)."""
    ir_version = 0
    opsets: dict[str, int] = {}
    producer: list[str] = []
    has_graph = False
    try:
        for number, value in _fields(memoryview(data), _MODEL_FIELDS):
            if number == 1 and isinstance(value, int):
                ir_version = value
            elif number in (2, 3) and isinstance(value, memoryview):
                producer.append(bytes(value).decode("utf-8", "replace"))
            elif number == 7:
                has_graph = True
            elif number == 8 and isinstance(value, memoryview):
                domain, version = "", 0
                for sub, v in _fields(value):
                    if sub == 1 and isinstance(v, memoryview):
                        domain = bytes(v).decode("utf-8", "replace")
                    elif sub == 2 and isinstance(v, int):
                        version = v
                key = domain or DEFAULT_DOMAIN
                opsets[key] = max(opsets.get(key, 0), version)
    except _Malformed as exc:
        raise ModelCorrupt(f"{path.name} is not a complete ONNX model: {exc}",
                           path=str(path)) from exc
    if not has_graph or ir_version == 0:
        missing = "graph" if not has_graph else "IR version"
        raise ModelCorrupt(f"{path.name} is not a complete ONNX model: it has no {missing}",
                           path=str(path))
    return ModelHeader(ir_version=ir_version, opsets=opsets,
                       producer=" ".join(p for p in producer if p))


def check_opsets(path: Path, header: ModelHeader) -> None:
    version = header.opsets.get(DEFAULT_DOMAIN)
    if version is not None and version < MIN_OPSET:
        raise ModelIncompatible(
            f"{path.name} uses opset {version} of {DEFAULT_DOMAIN}; ONNX Runtime runs opset "
            f"{MIN_OPSET} and above: export it again with a newer opset (e.g. opset_version=17)",
            path=str(path), opset=version)


_ORT_OPSET = re.compile(r"Opset (\d+) is under development.*?till opset (\d+)", re.S)
_ORT_IR = re.compile(r"Unsupported model IR version: (\d+), max supported IR version: (\d+)")


def _load_failure(path: Path, exc: ModelCorrupt, ort_version: str) -> KensaError:
    """ONNX Runtime's refusal of a model, said in terms of what to export differently."""
    cause = str(exc.__cause__ or exc)
    m = _ORT_OPSET.search(cause)
    if m is not None:
        return ModelIncompatible(
            f"{path.name} uses opset {m.group(1)} of {DEFAULT_DOMAIN}; ONNX Runtime "
            f"{ort_version} runs up to opset {m.group(2)}: export it again with opset "
            f"{m.group(2)} or lower (tablets may run an older ONNX Runtime: 17 is a safe choice)",
            path=str(path), opset=int(m.group(1)), max_opset=int(m.group(2)))
    m = _ORT_IR.search(cause)
    if m is not None:
        return ModelIncompatible(
            f"{path.name} has IR version {m.group(1)}; ONNX Runtime {ort_version} reads up to "
            f"{m.group(2)}: export it with an older onnx package or a lower opset",
            path=str(path), ir_version=int(m.group(1)))
    return ModelCorrupt(f"{path.name} could not be loaded by ONNX Runtime {ort_version}: "
                        f"{cause}", path=str(path))


def _steps_running(definition: Any, ref: str) -> list[str]:
    return [s.name for s in definition.steps
            if any(isinstance(v, str) and v.lower() == ref for v in s.params.values())]


def _tensor(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "shape": [d if d is not None else "?" for d in spec.shape],
            "dtype": spec.dtype}


def _describe(spec: TensorSpec) -> str:
    dims = ", ".join("?" if d is None else str(d) for d in spec.shape)
    return f"{spec.name} [{dims}] {spec.dtype}"


Emit = Callable[[str], None]


def check(
    model: Path,
    pipeline: Path,
    images: Sequence[Path] = (),
    *,
    model_dirs: Sequence[Path] = (),
    provider: str = "auto",
    threads: int | None = None,
    emit: Emit = lambda line: None,
) -> dict[str, Any]:
    """Check ``model`` with ``pipeline`` and run ``images``; the report as a JSON-ready dict.

    ``emit`` receives readable lines as each part passes, so a person sees how far it got when
    a later part fails.
    """
    import onnxruntime as ort

    from sidecar.pipeline.engine import PipelineEngine
    from sidecar.pipeline.nodes.image import decode_image
    from sidecar.pipeline.runtime import (
        RuntimeConfig,
        SessionPool,
        provider_choice,
        requested_providers,
    )
    from sidecar.pipeline.store import ModelStore, package_models_dir

    report: dict[str, Any] = {}
    if not model.is_file():
        raise ModelUnavailable(f"{model}: no such model file", path=str(model))
    data = model.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    ref = f"sha256:{sha}"
    header = read_header(model, data)
    del data
    opsets = ", ".join(f"{d} {v}" for d, v in sorted(header.opsets.items())) or "none"
    emit(f"model {model.name}: {ref}")
    emit(f"  IR version {header.ir_version}; opsets {opsets}; "
         f"producer {header.producer or 'unknown'}")
    check_opsets(model, header)
    report["model"] = {"file": str(model), "sha256": sha, "ir_version": header.ir_version,
                       "opsets": header.opsets, "producer": header.producer}

    if not pipeline.is_file():
        raise DefinitionInvalid(f"{pipeline}: no such pipeline file", field="definition")
    try:
        text = pipeline.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DefinitionInvalid(f"{pipeline} is not UTF-8 text: {exc}",
                                field="definition") from exc
    checked = _validate_definition(text)
    d = checked.definition
    emit(f"pipeline {d.name} v{d.version}: the server's publish checks pass "
         f"({len(d.steps)} step{'s' if len(d.steps) != 1 else ''})")
    runs = _steps_running(d, ref)
    if not runs:
        named = {s.name: v for s in d.steps for v in s.params.values()
                 if isinstance(v, str) and v.startswith("sha256:")}
        only = next(iter(named)) if len(named) == 1 else None
        listed = "; ".join(f"'{k}' runs {v[:19]}…" for k, v in named.items()) or "none runs a model"
        raise DefinitionInvalid(
            f"no step runs {model.name} ({ref}); steps: {listed}. Name this model as "
            f"\"model\": \"{ref}\"", node=only, param="model" if only else None)
    report["pipeline"] = {"file": str(pipeline), "id": d.id, "name": d.name,
                          "version": d.version, "steps": [s.name for s in d.steps],
                          "model_steps": runs}

    scan = [p for p in (package_models_dir("rapidocr"),) if p is not None]
    store = ModelStore(roots=list(model_dirs), files={sha: model}, scan=scan)
    config = RuntimeConfig(provider=provider, intra_op_threads=threads)
    pool = SessionPool(store, config)
    try:
        loaded = pool.get(ref)
    except ModelCorrupt as exc:
        raise _load_failure(model, exc, ort.__version__) from exc
    info = loaded.info
    emit("  inputs:  " + "; ".join(_describe(t) for t in info.inputs))
    emit("  outputs: " + "; ".join(_describe(t) for t in info.outputs))
    wanted = requested_providers(config)
    first = provider_choice(config).wanted
    emit(f"providers: available {', '.join(ort.get_available_providers())}; "
         f"asked {', '.join(wanted)}; got {loaded.provider}")
    if loaded.provider != wanted[0] or (provider != "auto" and loaded.provider != first):
        asked = first if provider != "auto" else wanted[0]
        message = (f"{asked} did not start for {model.name}: its session got "
                   f"{loaded.provider} (this ONNX Runtime has "
                   f"{', '.join(ort.get_available_providers())})")
        if provider != "auto":
            # Asked for by name, a silent fall-back would pass a check that did not happen.
            raise ModelIncompatible(message, path=str(model), provider=loaded.provider)
        emit(f"  note: {message}")
    report["model"].update(inputs=[_tensor(t) for t in info.inputs],
                           outputs=[_tensor(t) for t in info.outputs],
                           metadata=dict(info.metadata))
    report["providers"] = {"available": ort.get_available_providers(), "requested": wanted,
                           "got": loaded.provider, "onnxruntime": ort.__version__}

    engine = PipelineEngine(pool=pool)
    try:
        plan = engine.compile(checked.definition)
        loaded_all = [pool.get(m) for m in plan.models]
        report["timings"] = {"load_ms": round(loaded.load_ms, 1),
                             "warmup_ms": round(sum(m.warmup_ms for m in loaded_all), 1)}
        emit(f"shapes: every tensor fed matches what the model declares; load "
             f"{loaded.load_ms:.0f} ms, warm-up {report['timings']['warmup_ms']:.0f} ms")

        photos: list[tuple[Path, bytes]] = []
        for path in images:
            if not path.is_file():
                raise ImageInvalid(f"{path}: no such image file", path=str(path))
            raw = path.read_bytes()
            try:
                decode_image(raw)
            except ImageInvalid as exc:
                raise ImageInvalid(f"{path} is not an image: {exc.message}",
                                   path=str(path)) from exc
            photos.append((path, raw))
        runs_out: list[dict[str, Any]] = []
        for path, raw in photos:
            result = engine.run(plan, raw)
            record = result.record()
            runs_out.append({"image": str(path), "outputs": record["measurements"],
                             "units": record["units"], "total_ms": record["total_ms"],
                             "stage_ms": record["stage_ms"], "steps": record["steps"]})
            emit(f"{path.name}: " + ", ".join(
                f"{k}={_short(v)}{_unit(result.units.get(k))}" for k, v in result.outputs.items()))
            emit(f"  {result.total_ms:.1f} ms: " + ", ".join(
                f"{t.node} {t.ms:.1f}" for t in result.node_timings))
        report["images"] = runs_out
    finally:
        engine.close()
    report["ok"] = True
    return report


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        inner = ", ".join(_short(x) for x in v[:6])
        return f"[{inner}{', …' if len(v) > 6 else ''}]"
    return repr(v) if isinstance(v, str) else str(v)


def _unit(unit: str | None) -> str:
    return f" {unit}" if unit else ""
