"""The model warm-up waits for the ready line: loading ONNX Runtime, OpenCV and the sessions takes
the interpreter for a second or more, which the start to the login screen must not wait for.

Against a real seeded store (the demo pipelines and their models) and the app's own job runner."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from schema.db import Database, create_sqlite_engine
from sidecar.app import _job_runner, _warm_up
from sidecar.jobs.runner import JobRunner
from sidecar.settings import Settings
from tests.support.seed import seed_device


def _runner(tmp_path: Path) -> tuple[JobRunner, Database]:
    seed_device(tmp_path / "kensa.db")
    db = Database(create_sqlite_engine(tmp_path / "kensa.db"))
    return _job_runner(db, Settings(data_dir=tmp_path), None), db


def _plans(runner: JobRunner) -> int:
    engine = runner._engine
    return 0 if engine is None else len(engine._plans)


def test_the_warm_up_starts_only_once_the_sidecar_serves(tmp_path: Path) -> None:
    runner, db = _runner(tmp_path)
    serving, stopping = threading.Event(), threading.Event()
    warm = threading.Thread(target=_warm_up, args=(runner, db, serving, stopping), daemon=True)
    warm.start()
    time.sleep(0.5)
    assert warm.is_alive()
    assert runner._engine is None, "the warm-up loaded the engine before the ready line"
    serving.set()
    warm.join(120)
    assert not warm.is_alive()
    assert _plans(runner) > 0, "the cached pipelines were not warmed after the ready line"


def test_a_sidecar_stopping_before_it_serves_warms_nothing(tmp_path: Path) -> None:
    runner, db = _runner(tmp_path)
    serving, stopping = threading.Event(), threading.Event()
    warm = threading.Thread(target=_warm_up, args=(runner, db, serving, stopping), daemon=True)
    warm.start()
    stopping.set()
    warm.join(5)
    assert not warm.is_alive()
    assert runner._engine is None
