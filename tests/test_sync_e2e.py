"""End to end, as real processes: a shift on a device process, the sync server on PostgreSQL.

What the device recorded reaches the server exactly once (tables equal the device's history, the
queue holds every sequence number once), every image is stored under its hash, the masters and a
model file reach the device, and a device clock a day off changes nothing the server keeps.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from schema.db import create_engine
from tests.support.sync_harness import (
    ServerProcess,
    ShiftProcess,
    device_history,
    device_max_seq,
    queue_facts,
    seed_site,
    server_history,
    stored_image_hashes,
    wait_until,
)

pytestmark = pytest.mark.postgres


def assert_server_has_device_history(pg_url: str, device_dir: Path, device_id: str) -> None:
    wait_until(lambda: queue_facts(pg_url, device_id)["unprocessed"] == 0, 60,
               what="the queue processor to apply everything")
    facts = queue_facts(pg_url, device_id)
    top = device_max_seq(device_dir / "kensa.db")
    # 0 lost, 0 duplicated: every sequence number the device ever used, exactly once.
    assert facts["rows"] == facts["seqs"] == facts["op_ids"] == top == facts["max_seq"]
    assert facts["conflicts"] == 0
    device = device_history(device_dir / "kensa.db")
    server = server_history(pg_url)
    for table, rows in device.items():
        assert server[table] == rows, f"{table} differs"
    hashes = {sha for sha, _ in device["inspection_images"].values()}
    assert hashes <= stored_image_hashes(pg_url)


def stored_files_match(storage_dir: Path, hashes: set[str]) -> None:
    for sha in hashes:
        body = (storage_dir / sha[:2] / sha).read_bytes()
        assert hashlib.sha256(body).hexdigest() == sha


def test_shift_reaches_the_server_exactly_once(pg_url: str, tmp_path: Path) -> None:
    files = tmp_path / "files"
    site = seed_site(pg_url, files.as_uri(), model_bytes=300_000)
    with ServerProcess(pg_url, tmp_path / "server", storage=files.as_uri()) as server:
        shift = ShiftProcess(tmp_path / "tab01", server.url, site.tokens["TAB-01"],
                             inspections=6)
        with shift.start(exit_when_synced=True):
            shift.wait_event("synced", 120)
        assert_server_has_device_history(pg_url, tmp_path / "tab01", site.device_ids["TAB-01"])

    device = device_history(tmp_path / "tab01" / "kensa.db")
    stored_files_match(files, {sha for sha, _ in device["inspection_images"].values()})
    # The model the pipeline names arrived, verified, where the sidecar's model store looks.
    assert site.model_sha is not None
    model = tmp_path / "tab01" / "models" / f"{site.model_sha}.onnx"
    assert hashlib.sha256(model.read_bytes()).hexdigest() == site.model_sha

    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            results = conn.execute(sa.text("SELECT count(*) FROM ai_inspection_results")).scalar()
            runs = conn.execute(sa.text(
                "SELECT count(*) FROM pipeline_executions WHERE device_id = :d"),
                {"d": site.device_ids["TAB-01"]}).scalar()
            steps = conn.execute(sa.text(
                "SELECT array_agg(DISTINCT step_name ORDER BY step_name), count(*) "
                "FROM component_executions")).one()
    finally:
        engine.dispose()
    assert results and runs == results
    assert steps[0] == ["decode", "infer", "judge", "post", "pre"]
    assert steps[1] == 5 * results


@pytest.mark.parametrize("offset_days", [1, -1])
def test_device_clock_a_day_off_changes_nothing_on_the_server(
    pg_url: str, tmp_path: Path, offset_days: int
) -> None:
    files = tmp_path / "files"
    site = seed_site(pg_url, files.as_uri())
    started = datetime.now(UTC)
    with ServerProcess(pg_url, tmp_path / "server", storage=files.as_uri()) as server:
        shift = ShiftProcess(
            tmp_path / "tab01", server.url, site.tokens["TAB-01"], inspections=3,
            extra_args=["--clock-offset", str(offset_days * 86400)],
        )
        with shift.start(exit_when_synced=True):
            shift.wait_event("synced", 120)
        assert_server_has_device_history(pg_url, tmp_path / "tab01", site.device_ids["TAB-01"])
    finished = datetime.now(UTC)

    margin = timedelta(minutes=5)
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            # What the server keeps is on the server's clock: queue order and stamps, and the
            # inspections' own times, moved by the offset the server measured.
            stamps = conn.execute(sa.text(
                "SELECT min(created_at), max(created_at), max(processed_at) "
                "FROM tauri_sync_queue")).one()
            record_times = conn.execute(sa.text(
                "SELECT min(started_at), max(completed_at) FROM inspection_sessions")).one()
            ai_times = conn.execute(sa.text(
                "SELECT min(created_at), max(created_at) FROM ai_inspection_results")).one()
            order = [r[0] for r in conn.execute(sa.text(
                "SELECT seq FROM tauri_sync_queue ORDER BY id"))]
    finally:
        engine.dispose()
    for value in (*stamps, *record_times, *ai_times):
        assert started - margin <= value <= finished + margin
    # Within each batch the queue keeps the device's order; no device time decides it.
    assert sorted(order) == list(range(1, len(order) + 1))
