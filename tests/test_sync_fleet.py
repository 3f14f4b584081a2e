"""The scaled-out server: several API processes and processors under one supervisor, processors
woken by NOTIFY, children replaced when they die — and a small fleet of real tablets syncing
through an API process SIGKILLed, a processor SIGKILLed and PostgreSQL restarted, with every
record on the server exactly once and every photo in the S3 store hash-equal."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import sqlalchemy as sa
from pydantic import SecretStr

from tests.support.fleet import Chaos, FleetServer, fill_targets, fleet, open_tablet
from tests.support.postgres import Cluster, free_port
from tests.support.sync_harness import seed_site


def _queue(url: str) -> tuple[int, int]:
    """Rows received, and rows applied."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.text(
                "SELECT count(*), count(processed_at) FILTER (WHERE refusal IS NULL) "
                "FROM tauri_sync_queue")).one()
    finally:
        engine.dispose()
    return int(row[0]), int(row[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_supervisor_runs_its_children_wakes_processors_and_replaces_the_dead(
    pg_cluster: Cluster, pg_url: str, tmp_path: Path
) -> None:
    from sync.device.client import SyncClient
    from sync.device.outbox_store import SqliteOutbox
    from sync.device.push import Pusher

    storage = (tmp_path / "files").as_uri()
    site = seed_site(pg_url, storage)
    # A poll far longer than the test: only a notification can wake the processors in time.
    server = FleetServer(pg_url, tmp_path / "server", storage, free_port(), workers=2,
                         processors=2, extra_env={"KENSA_SERVER_PROCESSOR_POLL_S": "600"})
    with server:
        api, processors = server.pids("api"), server.pids("processor")
        assert len(api) == 2 and len(processors) == 2
        assert all(_alive(pid) for pid in api + processors)
        time.sleep(1.0)  # every processor is asleep on its LISTEN connection by now
        db = open_tablet(tmp_path / "tab", create=True)
        fill_targets(db, 300)
        client = SyncClient(server.url, SecretStr(site.tokens["TAB-01"]), app_version="0.1.0")
        try:
            pushed_at = time.monotonic()
            assert Pusher(SqliteOutbox(db), device_type="tablet", app_version="0.1.0").push(
                client, site.device_ids["TAB-01"]).pushed == 300
            while _queue(pg_url)[1] < 300:
                assert time.monotonic() - pushed_at < 20, _queue(pg_url)
                time.sleep(0.05)
        finally:
            client.close()
            db.dispose()

        # An API process killed: the supervisor starts another, the port answers throughout.
        killed = server.kill_child("api")
        assert not _alive(killed)
        assert killed not in server.pids("api") and len(server.pids("api")) == 2
        for _ in range(20):
            assert httpx.get(f"{server.url}/health", timeout=5).status_code == 200
        killed = server.kill_child("processor")
        assert killed not in server.pids("processor") and len(server.pids("processor")) == 2
        children = server.pids("api") + server.pids("processor")
    # SIGTERM to the supervisor stops every child with it.
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in children):
        assert time.monotonic() < deadline, [p for p in children if _alive(p)]
        time.sleep(0.1)


def test_a_small_fleet_survives_chaos_with_every_record_once_and_every_photo_whole() -> None:
    with fleet(clients=2) as f:
        with f.server(2, 2) as server:
            f.prepare(server, "chaos", 4, 4)
            chaos = Chaos(server, f.cluster)
            phase = f.sync("chaos", chaos=chaos)
            chaos.finish()
            assert chaos.done == ["api process killed", "processor killed",
                                  "PostgreSQL restarted"]
            f.sync("chaos")  # settles whatever the last step disturbed
        assert phase.rows > 0 and phase.images > 0
        checked = f.check("chaos")
        assert checked["tablets"] == 4
        assert checked["photos_hashed"] == checked["photos"] == phase.images
        # The partial index holds entries only for rows pending at the same time (applied rows'
        # entries are vacuumed and their pages reused): a few pages here, not one per row.
        assert phase.pending_index_max_bytes <= 64 * 1024

