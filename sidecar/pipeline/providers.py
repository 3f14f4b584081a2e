"""Which ONNX Runtime execution providers a session asks for: a pure rule, no ORT, no I/O.

The setting (``KENSA_ORT_PROVIDER``, ``--provider``) is an ordered preference: ``auto`` (the
default) means CUDA → DirectML → CoreML → CPU, or a comma-separated list of short names (``cuda``,
``directml``/``dml``, ``coreml``, ``cpu``) or ORT's own provider names. The session is given the
preferred providers this ONNX Runtime build has, in that order, and always the CPU last: a tablet
whose GPU is missing or broken still judges, only slower. Which build is installed decides what
is available: ``onnxruntime`` (CPU; on macOS it includes CoreML), ``onnxruntime-gpu`` (CUDA),
``onnxruntime-directml`` (Windows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sidecar.errors import InvalidInput

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
DIRECTML = "DmlExecutionProvider"
COREML = "CoreMLExecutionProvider"

DEFAULT_ORDER: tuple[str, ...] = (CUDA, DIRECTML, COREML, CPU)
SHORT_NAMES: dict[str, str] = {
    "cpu": CPU, "cuda": CUDA, "directml": DIRECTML, "dml": DIRECTML, "coreml": COREML,
}


class ProviderSettingInvalid(InvalidInput):
    code = "provider_setting_invalid"


@dataclass(frozen=True)
class Preference:
    """An ordered list of providers to try; ``explicit`` when a person named them."""

    order: tuple[str, ...]
    explicit: bool

    @property
    def spec(self) -> str:
        return "auto" if not self.explicit else ",".join(
            next((k for k, v in SHORT_NAMES.items() if v == p), p) for p in self.order)


@dataclass(frozen=True)
class Choice:
    """What a session is given (``providers``), the provider wanted first (``wanted``), and the
    preferred ones this build lacks (``unavailable``, reported rather than passed on, since ORT
    would only warn and drop them)."""

    providers: tuple[str, ...]
    wanted: str
    unavailable: tuple[str, ...]
    explicit: bool


def parse(spec: str | None) -> Preference:
    """``auto``, one name or a comma-separated list; unknown names are refused, naming them."""
    text = (spec or "").strip()
    if text.lower() in ("", "auto"):
        return Preference(DEFAULT_ORDER, explicit=False)
    order: list[str] = []
    by_ort_name = {v.lower(): v for v in (*DEFAULT_ORDER, *SHORT_NAMES.values())}
    for raw in text.split(","):
        name = raw.strip()
        full = SHORT_NAMES.get(name.lower()) or by_ort_name.get(name.lower())
        if full is None and name.endswith("ExecutionProvider"):
            full = name  # another ORT provider (OpenVINO, TensorRT…), taken as named
        if full is None:
            raise ProviderSettingInvalid(
                f"unknown execution provider {name!r}: use auto, or a comma-separated list of "
                f"{', '.join(sorted(SHORT_NAMES))} or ONNX Runtime provider names",
                provider=name)
        if full not in order:
            order.append(full)
    return Preference(tuple(order), explicit=True)


def choose(preference: Preference, available: Sequence[str]) -> Choice:
    """The providers for a session: the preferred ones ``available`` has, in order, then CPU."""
    have = set(available)
    usable = [p for p in preference.order if p in have and p != CPU]
    missing = tuple(p for p in preference.order if p not in have and p != CPU)
    return Choice(providers=(*usable, CPU), wanted=preference.order[0],
                  unavailable=missing, explicit=preference.explicit)


def attempts(providers: Sequence[str]) -> list[tuple[str, ...]]:
    """The provider lists to create a session with, in turn: as chosen, then the CPU alone when a
    GPU provider fails at session creation (a driver or CUDA library missing raises there)."""
    first = tuple(providers) or (CPU,)
    return [first] if first == (CPU,) else [first, (CPU,)]
