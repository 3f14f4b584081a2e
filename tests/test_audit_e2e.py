"""A tablet's audit trail reaches the server and verifies there, end to end: a shift recorded
through the sidecar's own services on a device process, synced to the sync server on PostgreSQL;
the server's verdict on the chain and ``kensa-server audit verify`` agree with the tablet's log,
record by record — with the device's clock right, and a day off (the server moves the records'
timestamps and keeps what was sent, which is what the tablet digested)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from schema.db import create_engine
from sync.server.cli import server_app
from tests.support.sync_harness import (
    ServerProcess,
    ShiftProcess,
    queue_facts,
    seed_site,
    wait_until,
)

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("offset_days", [0, 1])
def test_a_shifts_audit_trail_verifies_on_the_server(
    pg_url: str, tmp_path: Path, offset_days: int
) -> None:
    files = tmp_path / "files"
    site = seed_site(pg_url, files.as_uri())
    device_id = site.device_ids["TAB-01"]
    extra = ["--clock-offset", str(offset_days * 86400)] if offset_days else []
    with ServerProcess(pg_url, tmp_path / "server", storage=files.as_uri()) as server:
        shift = ShiftProcess(tmp_path / "tab01", server.url, site.tokens["TAB-01"],
                             inspections=3, extra_args=extra)
        with shift.start(exit_when_synced=True):
            shift.wait_event("synced", 120)
        wait_until(lambda: queue_facts(pg_url, device_id)["unprocessed"] == 0, 60,
                   what="the queue processor to apply everything")

    with sqlite3.connect(tmp_path / "tab01" / "kensa.db") as device:
        count, top = device.execute("SELECT count(*), max(seq) FROM audit_log").fetchone()
        (last_hash,) = device.execute("SELECT hash FROM audit_log WHERE seq = ?",
                                      (top,)).fetchone()
        records = device.execute(
            "SELECT count(DISTINCT entity || entity_id) FROM audit_log "
            "WHERE row_digest IS NOT NULL").fetchone()[0]
    assert count == top and records > 0

    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            verdict = conn.execute(sa.text(
                "SELECT status, last_seq, last_hash, broken_reason FROM audit_chains "
                "WHERE chain = :c"), {"c": device_id}).one()
            stored = conn.execute(sa.text(
                "SELECT count(*) FROM audit_log WHERE chain = :c"), {"c": device_id}).scalar()
    finally:
        engine.dispose()
    assert (verdict.status, verdict.last_seq, verdict.last_hash) == ("ok", top, last_hash), \
        verdict.broken_reason
    assert stored == count

    result = CliRunner().invoke(
        server_app, ["audit", "verify", "--device", "TAB-01", "--json", "--database-url", pg_url])
    report = json.loads(result.output)
    assert result.exit_code == 0, report["problems"]
    assert (report["entries"], report["records"], report["records_waiting"]) == (
        count, records, 0)
