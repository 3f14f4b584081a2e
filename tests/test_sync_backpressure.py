"""Backpressure on pushes: the rule table-tested, then 429 with Retry-After from a real server
honoured by the real device push code, with every operation on the server exactly once."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from schema.db import Database
from sync.device.client import SyncClient
from sync.device.outbox_store import SqliteOutbox
from sync.device.push import Pusher
from sync.errors import RateLimited
from sync.server.backpressure import BUDGET, LAG, Limits, PushGate, decide, refill
from tests.support.sync_harness import ServerProcess, Site, queue_facts, seed_site

LIMITS = Limits(rows_per_s=100.0, burst_rows=1000, max_lag_s=10.0, min_retry_s=1.0,
                max_retry_s=30.0)


@pytest.mark.parametrize(
    ("level", "rows", "lag_s", "admit", "left", "retry_after_s", "reason"),
    [
        (1000.0, 200, 0.0, True, 800.0, 0.0, None),  # within the burst
        (1000.0, 1000, 0.0, True, 0.0, 0.0, None),  # exactly the burst
        # Larger than the bucket: let through when it is full, leaving it in debt.
        (1000.0, 5000, 0.0, True, -4000.0, 0.0, None),
        (999.0, 5000, 0.0, False, 999.0, 1.0, BUDGET),  # not full: waits for the last token
        (150.0, 200, 0.0, False, 150.0, 1.0, BUDGET),  # 0.5 s short: whole seconds, up
        (0.0, 200, 0.0, False, 0.0, 2.0, BUDGET),
        (-4000.0, 200, 0.0, False, -4000.0, 30.0, BUDGET),  # 42 s of debt: capped at 30
        (0.0, 0, 0.0, True, 0.0, 0.0, None),  # an empty batch costs nothing
        # The apply lag comes first, whatever the device's budget.
        (1000.0, 1, 10.5, False, 1000.0, 1.0, LAG),  # just past: the floor
        (1000.0, 1, 10.0, True, 999.0, 0.0, None),  # at the threshold: still admitted
        (1000.0, 1, 25.0, False, 1000.0, 15.0, LAG),  # the excess
        (1000.0, 1, 500.0, False, 1000.0, 30.0, LAG),  # capped
    ],
)
def test_the_rule(level: float, rows: int, lag_s: float, admit: bool, left: float,
                  retry_after_s: float, reason: str | None) -> None:
    decision = decide(level, rows, lag_s, LIMITS)
    assert decision.admit is admit
    assert decision.level == left
    assert decision.retry_after_s == retry_after_s
    assert decision.reason == reason


def test_refill_is_capped_at_the_burst_and_ignores_a_clock_going_back() -> None:
    assert refill(0.0, 2.5, LIMITS) == 250.0
    assert refill(900.0, 60.0, LIMITS) == 1000.0
    assert refill(-500.0, 1.0, LIMITS) == -400.0
    assert refill(10.0, -5.0, LIMITS) == 10.0


@pytest.mark.parametrize(
    "kwargs",
    [{"rows_per_s": 0.0}, {"burst_rows": 0}, {"max_lag_s": 0.0}, {"min_retry_s": 0.0},
     {"min_retry_s": 40.0}],
)
def test_limits_that_make_no_sense_are_refused(kwargs: dict[str, float]) -> None:
    given = {"rows_per_s": 100.0, "burst_rows": 1000, "max_lag_s": 10.0, **kwargs}
    with pytest.raises(ValueError):
        Limits(**given)  # type: ignore[arg-type]


def test_the_gate_keeps_one_bucket_per_device_and_refills_with_time() -> None:
    now = [0.0]
    gate = PushGate(LIMITS, clock=lambda: now[0])
    assert gate.admit("a", 1000, 0.0).admit
    refused = gate.admit("a", 100, 0.0)
    assert not refused.admit and refused.reason == BUDGET and refused.retry_after_s == 1.0
    assert gate.admit("b", 1000, 0.0).admit  # another device has its own budget
    now[0] = 1.0  # 100 tokens back
    assert gate.admit("a", 100, 0.0).admit
    assert not gate.admit("a", 1, 0.0).admit


def test_the_gate_forgets_full_buckets_to_bound_its_memory() -> None:
    now = [0.0]
    gate = PushGate(LIMITS, clock=lambda: now[0], max_devices=3)
    for name in "abcd":
        gate.admit(name, 10, 0.0)
    now[0] = 1.0  # all refilled: every bucket is as good as none
    gate.admit("e", 10, 0.0)
    assert set(gate._buckets) == {"e"}


# --- through the real server and the real device push code -----------------------------------


def _outbox(tmp_path: Path, name: str) -> Database:
    from schema.db import create_sqlite_engine
    from schema.migrate import upgrade_device

    path = tmp_path / name / "kensa.db"
    upgrade_device(path)
    return Database(create_sqlite_engine(path))


def _fill(db: Database, rows: int) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    values = []
    for _ in range(rows):
        key = str(uuid.uuid4())
        data = {"id": key, "product_id": "BRK-100", "batch_id": "B1", "serial": key[:8],
                "created_at": datetime.now(UTC).isoformat(), "version": 1}
        values.append({"op_id": str(uuid.uuid4()), "entity_type": "inspection_target",
                       "entity_id": key, "operation": "INSERT", "data": json.dumps(data),
                       "priority": 0, "retry_count": 0, "created_at": now})
    with db.atomic() as session:
        session.execute(sa.text(
            "INSERT INTO outbox (op_id, entity_type, entity_id, operation, data, priority, "
            "retry_count, created_at) VALUES (:op_id, :entity_type, :entity_id, :operation, "
            ":data, :priority, :retry_count, :created_at)"), values)


def _left(db: Database) -> int:
    with db.read() as session:
        return int(session.execute(sa.text("SELECT count(*) FROM outbox")).scalar_one())


@pytest.fixture
def site(pg_url: str, tmp_path: Path) -> Site:
    return seed_site(pg_url, (tmp_path / "files").as_uri())


@pytest.fixture
def tight_server(site: Site, tmp_path: Path, request: pytest.FixtureRequest
                 ) -> Iterator[ServerProcess]:
    """No queue processor: what is stored stays pending, so the apply lag grows."""
    budget, lag = request.param
    server = ServerProcess(site.database_url, tmp_path / "server", processors=0, extra_env={
        "KENSA_SERVER_PUSH_BURST_ROWS": str(budget[0]),
        "KENSA_SERVER_PUSH_ROWS_PER_S": str(budget[1]),
        "KENSA_SERVER_MAX_APPLY_LAG_S": str(lag),
    })
    with server:
        yield server


def _pusher(db: Database) -> Pusher:
    return Pusher(SqliteOutbox(db), device_type="tablet", app_version="0.1.0")


@pytest.mark.parametrize("tight_server", [((5, 10), 3600)], indirect=True)
def test_a_device_over_its_budget_waits_and_loses_nothing(
    site: Site, tight_server: ServerProcess, tmp_path: Path
) -> None:
    db = _outbox(tmp_path, "tab")
    client = SyncClient(tight_server.url, SecretStr(site.tokens["TAB-01"]), app_version="0.1.0")
    try:
        device_id = site.device_ids["TAB-01"]
        _fill(db, 20)
        # 20 operations against a bucket of 5: let through whole, leaving 15 in debt.
        assert _pusher(db).push(client, device_id).pushed == 20
        _fill(db, 3)
        with pytest.raises(RateLimited) as refused:
            _pusher(db).push(client, device_id)
        assert "faster than its budget" in refused.value.message
        # 15 of debt + 3 to take, at 10 a second: 2 s, as Retry-After says.
        assert refused.value.retry_after == 2.0
        assert _left(db) == 3  # nothing stored, nothing deleted on the tablet
        assert queue_facts(site.database_url, device_id)["rows"] == 20
        time.sleep(refused.value.retry_after)
        assert _pusher(db).push(client, device_id).pushed == 3
        assert _left(db) == 0
        facts = queue_facts(site.database_url, device_id)
        assert facts["rows"] == facts["op_ids"] == facts["seqs"] == 23
    finally:
        client.close()
        db.dispose()


@pytest.mark.parametrize("tight_server", [((10_000, 1000), 2)], indirect=True)
def test_every_device_waits_while_the_apply_lag_is_past_its_threshold(
    site: Site, tight_server: ServerProcess, tmp_path: Path
) -> None:
    """No processor runs here: what TAB-01 stored waits, and after 2 s TAB-02 is told to wait
    too, until the queue is applied (by ``kensa-server process --once``)."""
    import subprocess
    import sys

    one, two = _outbox(tmp_path, "one"), _outbox(tmp_path, "two")
    clients = {name: SyncClient(tight_server.url, SecretStr(site.tokens[name]),
                                app_version="0.1.0") for name in ("TAB-01", "TAB-02")}
    try:
        _fill(one, 2)
        assert _pusher(one).push(clients["TAB-01"], site.device_ids["TAB-01"]).pushed == 2
        time.sleep(3.2)  # past the 2 s threshold, and past the 1 s the lag reading is kept
        _fill(two, 2)
        with pytest.raises(RateLimited) as refused:
            _pusher(two).push(clients["TAB-02"], site.device_ids["TAB-02"])
        assert "behind applying" in refused.value.message
        assert refused.value.retry_after is not None and refused.value.retry_after >= 1
        assert _left(two) == 2
        subprocess.run(
            [sys.executable, "-m", "sync.server", "process", "--once",
             "--database-url", site.database_url, "--data-dir", str(tmp_path / "server")],
            check=True, capture_output=True, cwd=Path(__file__).resolve().parents[1],
        )
        time.sleep(1.1)  # the next lag reading
        assert _pusher(two).push(clients["TAB-02"], site.device_ids["TAB-02"]).pushed == 2
        assert queue_facts(site.database_url, site.device_ids["TAB-02"])["rows"] == 2
    finally:
        for client in clients.values():
            client.close()
        one.dispose()
        two.dispose()
