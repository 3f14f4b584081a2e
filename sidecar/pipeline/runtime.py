"""ONNX Runtime sessions: one per model, created once, warmed up, reused by every run.

Execution provider: an ordered preference (``sidecar.pipeline.providers``): ``auto`` takes CUDA,
DirectML or CoreML where this ONNX Runtime build has one, else the CPU; a provider that fails to
create a session falls back to the CPU, with a log line saying so. The provider a session actually
got is recorded and reported, since ORT also falls back silently.

Threads, chosen deliberately for a tablet that also runs the UI:
- ``intra_op_threads`` (per session) defaults to the usable cores, capped at 4 — small vision models
  stop scaling past that, and it leaves the UI a core;
- one inter-op thread and sequential execution: parallelism between a pipeline's independent
  branches comes from the engine running them concurrently, not from ORT running nodes of one graph
  in parallel;
- spinning off by default: spinning workers burn a core between runs (battery, other sessions'
  threads competing on few cores), for a gain of well under a millisecond per run.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnxruntime as ort

from sidecar.pipeline import providers as prov
from sidecar.pipeline.errors import ModelCorrupt
from sidecar.pipeline.nodes.base import ModelInfo, TensorSpec
from sidecar.pipeline.store import ModelStore

# An ordered preference as ``providers.parse`` reads it: "auto", "cpu", "cuda,cpu", …
Provider = str
_CUDA = prov.CUDA
_CPU = prov.CPU
log = logging.getLogger("kensa.pipeline")
_ORT_TYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(int32)": "int32",
    "tensor(int64)": "int64", "tensor(bool)": "bool",
}


@functools.cache
def engine_version() -> str:
    """What ran a pipeline, as a result records it: kensa's version and ONNX Runtime's."""
    from sidecar import __version__

    return f"kensa/{__version__} onnxruntime/{ort.__version__}"


def ort_build() -> str:
    """The ONNX Runtime distribution that provides the module, with its version. The builds
    (CPU, GPU, DirectML) share the one module, and two installed at once overwrite each other's
    files, which is said rather than hidden."""
    import importlib.metadata as md

    found = []
    for dist in ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml"):
        try:
            found.append(f"{dist} {md.version(dist)}")
        except md.PackageNotFoundError:
            continue
    if len(found) > 1:
        return "CONFLICT: " + " and ".join(found) + " share one module; keep one"
    return found[0] if found else "build not recorded"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class RuntimeConfig:
    provider: Provider = "auto"
    intra_op_threads: int | None = None  # None: usable cores, at most 4
    inter_op_threads: int = 1
    allow_spinning: bool = False
    warmup: bool = True

    @classmethod
    def from_env(cls) -> RuntimeConfig:
        """``KENSA_ORT_PROVIDER`` (auto, or an ordered list such as ``cuda,cpu``; an unknown name
        is refused) and ``KENSA_ORT_THREADS`` override defaults."""
        spec = prov.parse(os.environ.get("KENSA_ORT_PROVIDER", "auto")).spec
        threads = os.environ.get("KENSA_ORT_THREADS")
        return cls(provider=spec,
                   intra_op_threads=int(threads) if threads and threads.isdigit() else None)

    def threads(self) -> int:
        return self.intra_op_threads or max(1, min(4, usable_cores()))


def cuda_available() -> bool:
    return _CUDA in ort.get_available_providers()


def provider_choice(config: RuntimeConfig) -> prov.Choice:
    return prov.choose(prov.parse(config.provider), ort.get_available_providers())


def requested_providers(config: RuntimeConfig) -> list[str]:
    """What sessions are created with: the preferred providers this build has, then the CPU."""
    return list(provider_choice(config).providers)


def session_options(config: RuntimeConfig) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.intra_op_num_threads = config.threads()
    so.inter_op_num_threads = config.inter_op_threads
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3  # errors only: ORT's warnings about fallbacks are reported by us
    if not config.allow_spinning:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


def _spec(arg: Any) -> TensorSpec:
    dims = tuple(d if isinstance(d, int) and d > 0 else None for d in arg.shape)
    return TensorSpec(name=arg.name, shape=dims, dtype=_ORT_TYPES.get(arg.type, arg.type))


@dataclass
class LoadedModel:
    """A ready session and what we know about it."""

    sha256: str
    path: str
    session: ort.InferenceSession
    info: ModelInfo
    provider: str
    load_ms: float
    warmup_ms: float = 0.0
    warmed: set[tuple[tuple[int, ...], ...]] = field(default_factory=set)

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.info.inputs]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.info.outputs]

    def run(self, feeds: Mapping[str, np.ndarray[Any, Any]]) -> list[np.ndarray[Any, Any]]:
        out: list[np.ndarray[Any, Any]] = self.session.run(None, dict(feeds))
        return out

    def warm(self, shapes: Mapping[str, tuple[int | None, ...]] | None = None) -> float:
        """Run once on zeros so that the first real image does not pay for allocations/kernels."""
        feeds: dict[str, np.ndarray[Any, Any]] = {}
        for spec in self.info.inputs:
            hint = (shapes or {}).get(spec.name)
            dims = []
            for i, d in enumerate(spec.shape):
                h = hint[i] if hint is not None and i < len(hint) else None
                dims.append(d or h or (1 if i == 0 else 64))
            feeds[spec.name] = np.zeros(dims, dtype=np.dtype(spec.dtype))
        key = tuple(tuple(v.shape) for v in feeds.values())
        if key in self.warmed:
            return 0.0
        t0 = time.perf_counter()
        self.run(feeds)
        ms = (time.perf_counter() - t0) * 1000
        self.warmed.add(key)
        self.warmup_ms += ms
        return ms


class SessionPool:
    """Sessions keyed by model SHA-256; thread-safe; each model is loaded at most once."""

    def __init__(self, store: ModelStore, config: RuntimeConfig | None = None) -> None:
        self.store = store
        self.config = config or RuntimeConfig()
        self._models: dict[str, LoadedModel] = {}
        self._by_ref: dict[str, LoadedModel] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, ref: str) -> LoadedModel:
        # Fast path for every run after the first: no file system access at all. (The bytes were
        # verified when the session was made; the session does not read the file again.)
        hit = self._by_ref.get(ref)
        if hit is not None:
            return hit
        stored = self.store.get(ref)  # ModelUnavailable / ModelCorrupt, hash checked once
        loaded = self._models.get(stored.sha256)
        if loaded is not None:
            return loaded
        with self._guard:
            lock = self._locks.setdefault(stored.sha256, threading.Lock())
        with lock:
            loaded = self._models.get(stored.sha256)
            if loaded is None:
                loaded = self._create(stored.sha256, str(stored.path))
                self._models[stored.sha256] = loaded
        self._by_ref[ref] = loaded
        return loaded

    def info(self, ref: str) -> ModelInfo:
        return self.get(ref).info

    def _create(self, sha256: str, path: str) -> LoadedModel:
        t0 = time.perf_counter()
        choice = provider_choice(self.config)
        name = os.path.basename(path)
        if choice.explicit and choice.unavailable:
            log.warning("execution provider %s asked for, but this ONNX Runtime has only %s: "
                        "model %s runs on %s", ", ".join(choice.unavailable),
                        ", ".join(ort.get_available_providers()), name, choice.providers[0])
        sess: ort.InferenceSession | None = None
        tries = prov.attempts(choice.providers)
        for i, providers in enumerate(tries):
            try:
                sess = ort.InferenceSession(path, sess_options=session_options(self.config),
                                            providers=list(providers))
                break
            except Exception as exc:  # ORT raises its own Fail/InvalidProtobuf types
                if i + 1 < len(tries):
                    log.warning("execution provider %s could not create a session for model %s "
                                "(%s): falling back to %s", providers[0], name, exc,
                                tries[i + 1][0])
                    continue
                raise ModelCorrupt(
                    f"model file {name} could not be loaded by ONNX Runtime: {exc}",
                    model=f"sha256:{sha256}", path=path,
                ) from exc
        assert sess is not None
        load_ms = (time.perf_counter() - t0) * 1000
        got = sess.get_providers()[0]
        if got != choice.providers[0]:
            log.warning("model %s asked for %s and runs on %s", name, choice.providers[0], got)
        meta = sess.get_modelmeta()
        info = ModelInfo(
            sha256=sha256,
            inputs=tuple(_spec(i) for i in sess.get_inputs()),
            outputs=tuple(_spec(o) for o in sess.get_outputs()),
            metadata=dict(meta.custom_metadata_map),
        )
        loaded = LoadedModel(sha256=sha256, path=path, session=sess, info=info,
                             provider=got, load_ms=load_ms)
        if self.config.warmup:
            loaded.warm()
        return loaded

    def loaded(self) -> list[LoadedModel]:
        return list(self._models.values())

    def report(self) -> dict[str, Any]:
        """Providers available and chosen, thread settings: for ``kensa doctor`` and results."""
        return {
            "onnxruntime": ort.__version__,
            "available_providers": ort.get_available_providers(),
            "requested": prov.parse(self.config.provider).spec,
            "requested_providers": requested_providers(self.config),
            "intra_op_threads": self.config.threads(),
            "inter_op_threads": self.config.inter_op_threads,
            "models": {m.sha256: {"provider": m.provider, "load_ms": round(m.load_ms, 1),
                                  "warmup_ms": round(m.warmup_ms, 1)}
                       for m in self._models.values()},
        }
