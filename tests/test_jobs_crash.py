"""SIGKILL the real sidecar in the middle of a 200-image batch: every image is judged once."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

from schema.db import Database, create_sqlite_engine
from scripts.devkit import synthetic
from tests.support.seed import seed_device
from tests.support.sidecar import SidecarProcess
from tests.test_jobs import HELD_OUT, capture, enqueue

BATCH = 200


def _completed(path: Path) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return int(
            conn.execute(
                "SELECT count(*) FROM analysis_jobs WHERE status = 'completed'"
            ).fetchone()[0]
        )
    finally:
        conn.close()


def _wait_for(path: Path, count: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    done = _completed(path)
    while done < count and time.monotonic() < deadline:
        time.sleep(0.05)
        done = _completed(path)
    return done


def test_every_image_is_judged_exactly_once_across_a_sigkill(tmp_path: Path) -> None:
    db_path = tmp_path / "kensa.db"
    seed_device(db_path)
    db = Database(create_sqlite_engine(db_path))
    try:
        for n in range(BATCH):
            defect = "scratch" if n % 4 == 0 else None
            photo = synthetic.encode(synthetic.make_surface(HELD_OUT + 100 + n, defect), ".jpg")
            # A plaintext store (the sidecar below runs with KENSA_PLAINTEXT=1, so the file can be
            # read with sqlite3 while it works): its photos are plain too.
            enqueue(db, *capture(db, tmp_path, "V-SCRATCH", photo, key=None))
    finally:
        db.dispose()

    sidecar = SidecarProcess(tmp_path)
    sidecar.start()
    first = _wait_for(db_path, 40, timeout=120)
    assert sidecar.proc is not None
    sidecar.proc.send_signal(signal.SIGKILL)
    sidecar.proc.wait(10)
    assert 0 < first < BATCH, "the kill must land in the middle of the batch"

    sidecar.start()
    try:
        assert _wait_for(db_path, BATCH, timeout=300) == BATCH
    finally:
        sidecar.close_stdin_and_wait()

    conn = sqlite3.connect(db_path)
    try:
        q = conn.execute
        assert q(
            "SELECT count(*), count(DISTINCT image_id) FROM ai_inspection_results"
        ).fetchone() == (
            BATCH,
            BATCH,
        )
        assert q("SELECT count(*) FROM analysis_jobs WHERE result_id IS NULL").fetchone() == (0,)
        assert q(
            "SELECT count(*) FROM analysis_jobs j"
            " JOIN ai_inspection_results r ON r.id = j.result_id WHERE r.image_id = j.image_id"
        ).fetchone() == (BATCH,)
        # Exactly one outbox row per AI result: nothing for the server to receive twice.
        assert q(
            "SELECT count(*), count(DISTINCT entity_id) FROM outbox"
            " WHERE entity_type = 'ai_inspection_result'"
        ).fetchone() == (BATCH, BATCH)
        assert q(
            "SELECT count(*) FROM inspection_session_items"
            " WHERE item_code = 'V-SCRATCH' AND status = 'ai_completed'"
        ).fetchone() == (BATCH,)
        ng = q("SELECT count(*) FROM ai_inspection_results WHERE overall_result = 'NG'").fetchone()
        assert ng[0] > 0
    finally:
        conn.close()
