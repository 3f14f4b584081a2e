"""The job progress estimator, a pure rule: percentages and time left from measured stage
durations per pipeline, and none at all while a pipeline's stages are not all measured."""

from __future__ import annotations

import math

import pytest

from sidecar.jobs.estimate import STAGES, Estimate, StageEstimator

P = "brk100-v-scratch@1"

# (measured runs as {stage: seconds}, stage entered, expected percentage, expected eta_s)
CASES: list[tuple[str, list[dict[str, float]], str, float | None, float | None]] = [
    ("nothing measured", [], "preprocessing", None, None),
    ("nothing measured, later stage", [], "postprocessing", None, None),
    ("one stage missing", [{"preprocessing": 0.1, "model_execution": 0.4}], "model_execution",
     None, None),
    ("one run, first stage", [{"preprocessing": 0.1, "model_execution": 0.3,
                               "postprocessing": 0.1}], "preprocessing", 0.0, 0.5),
    ("one run, second stage", [{"preprocessing": 0.1, "model_execution": 0.3,
                                "postprocessing": 0.1}], "model_execution", 20.0, 0.4),
    ("one run, last stage", [{"preprocessing": 0.1, "model_execution": 0.3,
                              "postprocessing": 0.1}], "postprocessing", 80.0, 0.1),
    # Running average, weight 0.3: model 1.0 then 2.0 → 1.0 + 0.3 × 1.0 = 1.3.
    ("two runs averaged", [{"preprocessing": 0.2, "model_execution": 1.0, "postprocessing": 0.5},
                           {"preprocessing": 0.2, "model_execution": 2.0, "postprocessing": 0.5}],
     "postprocessing", 75.0, 0.5),
    ("stages measured by different runs", [{"preprocessing": 1.0}, {"model_execution": 2.0},
                                           {"postprocessing": 1.0}], "model_execution", 25.0, 3.0),
    ("all instant", [dict.fromkeys(STAGES, 0.0)], "model_execution", None, None),
    ("a bad measurement is ignored", [{"preprocessing": 1.0, "model_execution": 1.0,
                                       "postprocessing": 2.0},
                                      {"model_execution": math.nan},
                                      {"model_execution": -5.0},
                                      {"model_execution": math.inf}],
     "postprocessing", 50.0, 2.0),
]


@pytest.mark.parametrize(("name", "runs", "stage", "percentage", "eta_s"), CASES,
                         ids=[c[0] for c in CASES])
def test_estimate(name: str, runs: list[dict[str, float]], stage: str,
                  percentage: float | None, eta_s: float | None) -> None:
    est = StageEstimator()
    for run in runs:
        for s, seconds in run.items():
            est.record(P, s, seconds)
    got = est.at(P, stage)
    assert got.stage == stage
    assert got.percentage == (None if percentage is None else pytest.approx(percentage, abs=0.05))
    assert got.eta_s == (None if eta_s is None else pytest.approx(eta_s, abs=1e-3))


def test_pipelines_are_apart() -> None:
    est = StageEstimator()
    for stage in STAGES:
        est.record(P, stage, 1.0)
    assert est.at(P, "model_execution") == Estimate("model_execution", pytest.approx(33.3), 2.0)
    # Another pipeline, or another version of the same, is not measured yet.
    assert est.at("brk100-v-scratch@2", "model_execution") == Estimate("model_execution", None,
                                                                        None)


def test_the_average_follows_a_slower_model() -> None:
    est = StageEstimator()
    est.record(P, "model_execution", 0.1)
    for _ in range(15):
        est.record(P, "model_execution", 1.0)
    average = est.average(P, "model_execution")
    assert average is not None and 0.99 < average <= 1.0


@pytest.mark.parametrize(("call", "message"), [
    (lambda e: e.record(P, "warmup", 1.0), "unknown stage"),
    (lambda e: e.at(P, "warmup"), "unknown stage"),
    (lambda e: StageEstimator(weight=0), "weight"),
    (lambda e: StageEstimator(weight=1.5), "weight"),
    (lambda e: StageEstimator(stages=("a", "a")), "distinct"),
    (lambda e: StageEstimator(stages=()), "distinct"),
])
def test_refused(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(StageEstimator())  # type: ignore[operator]
