"""Progress and time left of an AI job, from how long each stage of its pipeline measured.

A job passes through ``STAGES`` in order. For every pipeline (id and version: a new version may
run at another speed) the estimator keeps a running average of each stage's measured duration;
entering a stage, the job's percentage is the share of the average run already behind it, and
its time left the average run less what is behind it. Until every stage of that pipeline has
been measured at least once, there is no estimate: the percentage and time left are None, and
the UI shows the stage alone rather than a number nobody measured.

The averages are kept per process (the sidecar's job runner holds one estimator): a restart
starts again from nothing, and the first job of each pipeline after it says its stages only.

Pure: no clock of its own, no database, no web framework; callers hand in durations.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

# The stages a job runner reports, in the order a job passes through them.
STAGES: tuple[str, ...] = ("preprocessing", "model_execution", "postprocessing")

# Weight of the newest measurement in the running average: the last few runs dominate, so an
# estimate follows a model that got slower (a cold cache, a busy tablet) within a handful of jobs.
DEFAULT_WEIGHT = 0.3


@dataclass(frozen=True)
class Estimate:
    """Where a job stands entering a stage; both None while the pipeline is not yet measured."""

    stage: str
    percentage: float | None
    eta_s: float | None


class StageEstimator:
    def __init__(self, weight: float = DEFAULT_WEIGHT, stages: tuple[str, ...] = STAGES) -> None:
        if not 0 < weight <= 1:
            raise ValueError(f"weight must be in (0, 1], not {weight}")
        if not stages or len(set(stages)) != len(stages):
            raise ValueError("stages must be distinct and at least one")
        self.weight = weight
        self.stages = stages
        self._means: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()  # workers of one runner share the estimator

    def record(self, pipeline: str, stage: str, seconds: float) -> None:
        """One measured duration of ``stage`` in a run of ``pipeline``."""
        if stage not in self.stages:
            raise ValueError(f"unknown stage {stage!r}")
        if not math.isfinite(seconds) or seconds < 0:
            # A clock that went backwards or a broken measurement must not poison the average.
            return
        with self._lock:
            means = self._means.setdefault(pipeline, {})
            old = means.get(stage)
            means[stage] = seconds if old is None else old + self.weight * (seconds - old)

    def average(self, pipeline: str, stage: str) -> float | None:
        with self._lock:
            return self._means.get(pipeline, {}).get(stage)

    def at(self, pipeline: str, stage: str) -> Estimate:
        """The estimate for a job of ``pipeline`` entering ``stage``."""
        if stage not in self.stages:
            raise ValueError(f"unknown stage {stage!r}")
        with self._lock:
            means = dict(self._means.get(pipeline, {}))
        if any(s not in means for s in self.stages):
            return Estimate(stage, None, None)
        total = sum(means.values())
        behind = sum(means[s] for s in self.stages[: self.stages.index(stage)])
        if total <= 0:
            # Every stage measured as instant: there is no share of a run to apportion.
            return Estimate(stage, None, None)
        return Estimate(stage, round(100.0 * behind / total, 1), round(total - behind, 3))


__all__ = ["DEFAULT_WEIGHT", "STAGES", "Estimate", "StageEstimator"]
