"""The sync server's operations surface, on PostgreSQL, as a real process: ``/metrics`` in
Prometheus' text format that moves with the load, ``/livez`` and ``/readyz`` that tell a database
that is down or behind, JSON log lines that carry the request's id, and ``kensa-server status``
with the same figures for a person."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from schema.migrate import head_revision, script_directory
from tests.support.postgres import Cluster
from tests.support.sync_harness import PYTHON, REPO, EventReader, Site, _env, _stop, seed_site

pytestmark = pytest.mark.postgres

METRICS_TOKEN = "scrape-" + uuid.uuid4().hex


@dataclass
class Server:
    cluster: Cluster
    database: str
    site: Site
    url: str
    log: Path
    proc: subprocess.Popen[str]

    def scrape(self) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        """Every sample of ``/metrics`` by name, then by its labels."""
        answer = httpx.get(f"{self.url}/metrics",
                           headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
        samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        for family in text_string_to_metric_families(answer.text):
            for sample in family.samples:
                labels = tuple(sorted(sample.labels.items()))
                samples.setdefault(sample.name, {})[labels] = sample.value
        return samples

    def log_lines(self) -> list[dict[str, Any]]:
        text = self.log.read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def psql(self, sql: str, database: str = "postgres") -> None:
        with psycopg.connect(self.cluster.dsn(database), autocommit=True) as conn:
            conn.execute(sql)

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [PYTHON, "-m", "sync.server", *args, "--database-url",
             self.cluster.url(self.database)],
            capture_output=True, text=True, cwd=REPO, env=_env(), timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout


@pytest.fixture
def server(pg_cluster: Cluster, tmp_path: Path) -> Iterator[Server]:
    """A seeded site whose server applies nothing by itself (no processor threads): the test
    runs the processor when it wants the queue to move."""
    database = pg_cluster.create_database()
    url = pg_cluster.url(database)
    site = seed_site(url, (tmp_path / "files").as_uri())
    log = tmp_path / "server.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [PYTHON, "-m", "sync.server", "run", "--data-dir", str(tmp_path / "server"),
             "--database-url", url, "--storage", (tmp_path / "files").as_uri(),
             "--port", "0", "--processors", "0", "--log-level", "INFO"],
            stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=REPO, start_new_session=True,
            env=_env({"KENSA_SERVER_LOG_FORMAT": "json",
                      "KENSA_SERVER_METRICS_TOKEN": METRICS_TOKEN}),
        )
    try:
        ready = EventReader(proc).wait("ready", 60)
        yield Server(pg_cluster, database, site, f"http://127.0.0.1:{ready['port']}", log, proc)
    finally:
        _stop(proc)
        pg_cluster.drop_database(database)


def device_client(server: Server, name: str) -> httpx.Client:
    answer = httpx.post(f"{server.url}/sync/v1/auth",
                        headers={"Authorization": f"Bearer {server.site.tokens[name]}"})
    answer.raise_for_status()
    return httpx.Client(base_url=server.url, timeout=30, headers={
        "Authorization": f"Bearer {answer.json()['access_token']}"})


def shift_ops(first_seq: int) -> list[dict[str, Any]]:
    """An inspection's first records, and an AI result that can never apply (its pipeline id is
    not a UUID), which is dead-lettered."""
    now = datetime.now(UTC).isoformat()
    ids = {k: str(uuid.uuid4()) for k in ("target", "session", "image", "ai")}
    records = [
        ("inspection_target", ids["target"], {
            "id": ids["target"], "product_id": "BRK-100", "batch_id": "A12-3456",
            "qr_code": "{}"}),
        ("inspection_session", ids["session"], {
            "id": ids["session"], "target_id": ids["target"], "status": "in_progress",
            "started_at": now, "version": 1, "username": "tanaka"}),
        ("inspection_image", ids["image"], {
            "id": ids["image"], "session_id": ids["session"], "sha256": "a" * 64,
            "file_size": 10, "created_at": now}),
        ("ai_inspection_result", ids["ai"], {
            "id": ids["ai"], "session_id": ids["session"], "image_id": ids["image"],
            "overall_result": "OK", "confidence": 0.9, "processing_time": 0.05,
            "pipeline_id": "not-a-uuid", "created_at": now}),
    ]
    return [{"seq": first_seq + n, "op_id": str(uuid.uuid4()), "entity_type": kind,
             "entity_id": key, "operation": "INSERT", "data": data}
            for n, (kind, key, data) in enumerate(records)]


def one(samples: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str,
        **labels: str) -> float:
    return samples[name][tuple(sorted(labels.items()))]


def test_metrics_parse_and_move_with_the_load(server: Server) -> None:
    assert httpx.get(f"{server.url}/metrics").status_code == 401
    assert httpx.get(f"{server.url}/metrics",
                     headers={"Authorization": "Bearer wrong"}).status_code == 401
    # A device name may hold what the text format must escape in a label value.
    odd_name = 'Line 3 "west" \\ spare'
    server.cli("device", "add", odd_name)
    before = server.scrape()
    assert one(before, "kensa_device_queue_pending", device=odd_name) == 0
    assert one(before, "kensa_database_up") == 1
    assert one(before, "kensa_queue_pending") == 0
    assert one(before, "kensa_applied_total") == 0
    assert one(before, "kensa_apply_lag_seconds") == 0
    assert ("kensa_device_queue_pending" in before
            and one(before, "kensa_device_queue_pending", device="TAB-01") == 0)
    # The refusals that answered 401 above are counted by their code.
    assert one(before, "kensa_http_errors_total", code="metrics_unauthorized",
               status="401") == 2

    pushed_at = time.time()
    tablet = device_client(server, "TAB-01")
    ops = shift_ops(1) + shift_ops(5)
    answer = tablet.post("/sync/v1/push", json={
        "device_id": server.site.device_ids["TAB-01"], "device_type": "tablet",
        "app_version": "0.1.0", "ops": ops})
    assert answer.status_code == 200, answer.text
    time.sleep(1.1)  # so the oldest row has waited a measurable while

    loaded = server.scrape()
    assert one(loaded, "kensa_queue_received_total") == len(ops)
    assert one(loaded, "kensa_queue_pending") == len(ops)
    assert one(loaded, "kensa_device_queue_pending", device="TAB-01") == len(ops)
    assert one(loaded, "kensa_device_queue_pending", device="TAB-02") == 0
    assert one(loaded, "kensa_applied_total") == 0
    assert one(loaded, "kensa_apply_lag_seconds") >= 1.0
    contact = one(loaded, "kensa_device_last_contact_timestamp_seconds", device="TAB-01")
    assert pushed_at - 1 <= contact <= time.time() + 1
    assert ("device", "TAB-02") not in {
        label for key in loaded["kensa_device_last_contact_timestamp_seconds"] for label in key}

    # The person's view reads the same figures.
    status = server.cli("status")
    assert f"{len(ops)} pending" in status and "at head" in status
    assert "TAB-01" in status and "s ago" in status

    print(server.cli("process", "--once"))
    applied = server.scrape()
    assert one(applied, "kensa_queue_pending") == 0
    assert one(applied, "kensa_device_queue_pending", device="TAB-01") == 0
    assert one(applied, "kensa_applied_total") == len(ops) - 2
    assert one(applied, "kensa_queue_refused_total", kind="dead_letter") == 2
    assert one(applied, "kensa_dead_letters") == 2
    assert one(applied, "kensa_queue_refused_total", kind="conflict") == 0
    assert one(applied, "kensa_apply_lag_seconds") == 0

    figures = json.loads(server.cli("status", "--json"))
    assert figures["applied"] == len(ops) - 2 and figures["dead_letters"] == 2
    assert figures["pending"] == 0 and figures["revision"] == [figures["head"]]
    tablet.close()


def test_readiness_follows_the_database_and_its_revision(server: Server) -> None:
    assert httpx.get(f"{server.url}/livez").json() == {"status": "ok"}
    ready = httpx.get(f"{server.url}/readyz")
    assert ready.status_code == 200 and ready.json()["revision"] == head_revision("server")

    # The database refuses every connection, those the server already holds included.
    server.psql(f'ALTER DATABASE "{server.database}" ALLOW_CONNECTIONS false')
    server.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{server.database}'")
    try:
        down = httpx.get(f"{server.url}/readyz", headers={"X-Request-ID": "probe-down-1"})
        assert down.status_code == 503
        assert down.json()["error"]["code"] == "database_unavailable"
        assert down.headers["X-Request-ID"] == "probe-down-1"
        # Alive all the same: restarting the process would not bring the database back.
        assert httpx.get(f"{server.url}/livez").status_code == 200
        # The scrape still answers, and says where the trouble is.
        assert one(server.scrape(), "kensa_database_up") == 0
    finally:
        server.psql(f'ALTER DATABASE "{server.database}" ALLOW_CONNECTIONS true')
    assert httpx.get(f"{server.url}/readyz").status_code == 200

    head = head_revision("server")
    previous = script_directory("server").get_revision(head).down_revision
    assert isinstance(previous, str)
    server.psql(f"UPDATE alembic_version SET version_num = '{previous}'", server.database)
    try:
        behind = httpx.get(f"{server.url}/readyz")
        assert behind.status_code == 503
        assert behind.json()["error"]["code"] == "migrations_behind"
        assert behind.json()["error"]["detail"] == {"revision": [previous], "head": head}
        assert "NOT at head" in server.cli("status")
    finally:
        server.psql(f"UPDATE alembic_version SET version_num = '{head}'", server.database)
    assert httpx.get(f"{server.url}/readyz").status_code == 200

    # Every line is JSON, and the lines of the failing probe carry its id: the handler's
    # warning (logged on a worker thread) and the access line.
    lines = server.log_lines()
    mine = [line for line in lines if line["request_id"] == "probe-down-1"]
    assert {line["logger"] for line in mine} == {"sync.server.ops", "sync.server.access"}
    warning = next(line for line in mine if line["logger"] == "sync.server.ops")
    assert warning["level"] == "WARNING" and "does not answer" in warning["message"]
    access = next(line for line in mine if line["logger"] == "sync.server.access")
    assert access["status"] == 503 and access["path"] == "/readyz"
    # Lines outside any request say so.
    assert any(line["request_id"] is None for line in lines)


def test_a_request_without_an_id_gets_one_and_a_bad_one_is_replaced(server: Server) -> None:
    answer = httpx.get(f"{server.url}/livez")
    given = answer.headers["X-Request-ID"]
    assert len(given) == 32 and int(given, 16) >= 0
    odd = httpx.get(f"{server.url}/livez", headers={"X-Request-ID": 'x" {evil}'})
    replaced = odd.headers["X-Request-ID"]
    assert replaced != 'x" {evil}' and len(replaced) == 32
    deadline = time.monotonic() + 5
    while True:
        ids = {line["request_id"] for line in server.log_lines()
               if line["logger"] == "sync.server.access"}
        if {given, replaced} <= ids or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert {given, replaced} <= ids


def test_metrics_are_off_without_their_token(pg_cluster: Cluster, tmp_path: Path) -> None:
    env = _env()
    env.pop("KENSA_SERVER_METRICS_TOKEN", None)
    database = pg_cluster.create_database()
    url = pg_cluster.url(database)
    seed_site(url, (tmp_path / "files").as_uri())
    proc = subprocess.Popen(
        [PYTHON, "-m", "sync.server", "run", "--data-dir", str(tmp_path / "server"),
         "--database-url", url, "--port", "0", "--processors", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO,
        start_new_session=True, env=env,
    )
    try:
        port = EventReader(proc).wait("ready", 60)["port"]
        answer = httpx.get(f"http://127.0.0.1:{port}/metrics",
                           headers={"Authorization": "Bearer anything"})
        assert answer.status_code == 404
        assert "KENSA_SERVER_METRICS_TOKEN" in answer.json()["error"]["message"]
    finally:
        _stop(proc)
        pg_cluster.drop_database(database)


def test_a_database_that_never_answers_makes_the_server_unready_not_stuck() -> None:
    """A host that takes the TCP connection and says nothing (a half-dead server, a firewall
    that drops packets): the readiness check gives up after the connect timeout instead of the
    operating system's minutes."""
    import socket
    from types import SimpleNamespace
    from typing import cast

    from schema.db import POSTGRES_CONNECT_TIMEOUT_S, Database, create_engine
    from sync.server.ops import readiness
    from sync.server.state import ServerState

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    db = Database(create_engine(f"postgresql+psycopg://kensa@127.0.0.1:{port}/kensa"))
    try:
        started = time.monotonic()
        ready, code, _, detail = readiness(cast(ServerState, SimpleNamespace(db=db)))
        waited = time.monotonic() - started
    finally:
        db.engine.dispose()
        silent.close()
    assert (ready, code) == (False, "database_unavailable"), detail
    # Generous bound: it is the difference between seconds and the OS's minutes that matters.
    assert POSTGRES_CONNECT_TIMEOUT_S <= waited + 1 < 60, waited
