"""The sync server as a process on PostgreSQL, applying what devices push: a device writes only
its own records, a row that can never apply is dead-lettered instead of retried for ever and
holds up nothing behind it, a value the database refuses sets aside only its own operation, a
timestamp in the future is not stored as sent — and the device hears of every refusal."""

from __future__ import annotations

import contextlib
import itertools
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from schema.db import Database, create_engine
from sync.conflicts import ORIGINAL_TIMESTAMPS_KEY
from sync.device.client import SyncClient
from sync.device.refused import fetch_refused
from sync.protocol import DEVICE_TIME_HEADER
from sync.server.queue_policy import DEFAULT_POLICY
from tests.support.postgres import Cluster
from tests.support.sync_fixtures import Running
from tests.support.sync_harness import ServerProcess, seed_site, wait_until

pytestmark = pytest.mark.postgres

ADMIN = ("admin", "admin-pass")


@contextlib.contextmanager
def serving(cluster: Cluster, tmp: Path, env: dict[str, str]) -> Iterator[Running]:
    """A seeded site in its own database, its server run with ``env``."""
    name = cluster.create_database()
    url = cluster.url(name)
    files = tmp / "files"
    site = seed_site(url, files.as_uri())
    try:
        with ServerProcess(url, tmp / "server", storage=files.as_uri(),
                           extra_env=env) as server:
            yield Running(site, server, files)
    finally:
        cluster.drop_database(name)


@pytest.fixture(scope="module")
def site(pg_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One seeded site for the module, the server's queue policy as shipped."""
    with serving(pg_cluster, tmp_path_factory.mktemp("queue"),
                 {"KENSA_SERVER_PROCESSOR_IDLE_S": "0.05"}) as running:
        yield running


@dataclass
class Tablet:
    running: Running
    name: str
    seqs: Iterator[int]
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = self.running.client(self.name)

    @property
    def device_id(self) -> str:
        return self.running.site.device_ids[self.name]

    def op(self, entity_type: str, entity_id: str, operation: str,
           data: dict[str, Any]) -> dict[str, Any]:
        return {"seq": next(self.seqs), "op_id": str(uuid.uuid4()), "entity_type": entity_type,
                "entity_id": entity_id, "operation": operation, "data": data}

    def body(self, ops: list[dict[str, Any]]) -> dict[str, Any]:
        return {"device_id": self.device_id, "device_type": "tablet", "app_version": "0.1.0",
                "ops": ops}

    def push(self, ops: list[dict[str, Any]], headers: dict[str, str] | None = None,
             raw: str | None = None) -> httpx.Response:
        content = raw if raw is not None else json.dumps(self.body(ops))
        return self.client.post("/sync/v1/push", content=content,
                                headers={"Content-Type": "application/json", **(headers or {})})

    def pushed(self, ops: list[dict[str, Any]], headers: dict[str, str] | None = None) -> None:
        answer = self.push(ops, headers)
        assert answer.status_code == 200, answer.text

    def inspection(self) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """A whole inspection: target, session, one item, photo, AI result, verdict, completion
        (the session ends at version 2, its item at version 1)."""
        now = datetime.now(UTC).isoformat()
        ids = {k: str(uuid.uuid4()) for k in ("target", "session", "item", "image", "ai",
                                               "check")}
        ops = [
            self.op("inspection_target", ids["target"], "INSERT", target(ids["target"])),
            self.op("inspection_session", ids["session"], "INSERT", {
                "id": ids["session"], "target_id": ids["target"], "status": "in_progress",
                "started_at": now, "version": 1, "username": "tanaka"}),
            self.op("inspection_session_item", ids["item"], "INSERT", {
                "id": ids["item"], "session_id": ids["session"], "item_code": "V-SCRATCH",
                "order_sequence": 1, "required": True, "status": "captured", "version": 1}),
            self.op("inspection_image", ids["image"], "INSERT", {
                "id": ids["image"], "session_id": ids["session"], "sha256": "a" * 64,
                "file_size": 10, "created_at": now}),
            self.op("ai_inspection_result", ids["ai"], "INSERT", {
                "id": ids["ai"], "session_id": ids["session"], "image_id": ids["image"],
                "overall_result": "OK", "confidence": 0.9, "processing_time": 0.05,
                "created_at": now}),
            self.op("human_verification_result", ids["check"], "INSERT", {
                "id": ids["check"], "session_id": ids["session"], "ai_result_id": ids["ai"],
                "final_result": "OK", "verification_time": 2.5, "username": "tanaka",
                "created_at": now}),
            self.op("inspection_session", ids["session"], "UPDATE", {
                "id": ids["session"], "status": "completed", "result": "OK",
                "completed_at": now, "base_version": 1, "version": 2}),
        ]
        return ops, ids


def target(key: str, **extra: Any) -> dict[str, Any]:
    return {"id": key, "product_id": "BRK-100", "batch_id": "A12-3456", "qr_code": "{}",
            **extra}


@pytest.fixture(scope="module")
def tablets(site: Running) -> Iterator[dict[str, Tablet]]:
    found = {name: Tablet(site, name, itertools.count(1)) for name in ("TAB-01", "TAB-02")}
    yield found
    for tablet in found.values():
        tablet.client.close()


def query(running: Running, sql: str, **params: Any) -> list[sa.Row[Any]]:
    engine = create_engine(running.site.database_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params))
    finally:
        engine.dispose()


def queue_row(running: Running, op: dict[str, Any]) -> sa.Row[Any]:
    rows = query(running, "SELECT processed_at, refusal, refusal_seq, last_error, "
                          "apply_attempts, retry_count, next_attempt_at, last_retry_at, data "
                          "FROM tauri_sync_queue WHERE op_id = :o", o=uuid.UUID(op["op_id"]))
    assert len(rows) == 1, f"op {op['seq']} is not stored"
    return rows[0]


def settled(running: Running, *ops: dict[str, Any], timeout: float = 30) -> None:
    """Wait until the processor is done with the rows: applied, or refused for good."""
    wait_until(lambda: all(queue_row(running, op).processed_at is not None for op in ops),
               timeout, what=f"the processor to settle seq {[op['seq'] for op in ops]}")


def records(running: Running, ids: dict[str, str]) -> dict[str, list[tuple[Any, ...]]]:
    """The inspection's rows on the server, and everything under its session."""
    session = uuid.UUID(ids["session"])
    out = {
        "target": query(running, "SELECT * FROM inspection_targets WHERE id = :i",
                        i=uuid.UUID(ids["target"])),
        "session": query(running, "SELECT * FROM inspection_sessions WHERE id = :i OR "
                                  "target_id = :t ORDER BY id",
                         i=session, t=uuid.UUID(ids["target"])),
    }
    for table in ("inspection_session_items", "inspection_images", "ai_inspection_results",
                  "human_verification_results"):
        out[table] = query(running, f"SELECT * FROM {table} WHERE session_id = :s "
                                    "ORDER BY id", s=session)
    return {k: [tuple(r) for r in v] for k, v in out.items()}


def applied_inspection(tablet: Tablet) -> dict[str, str]:
    ops, ids = tablet.inspection()
    tablet.pushed(ops)
    settled(tablet.running, *ops)
    assert all(queue_row(tablet.running, op).refusal is None for op in ops)
    return ids


# Operations a device sends about another device's inspection ``theirs``; ``mine`` is the acting
# device's own target and session, applied first, for the cases that need one.
def foreign_ops(case: str, theirs: dict[str, str], mine: dict[str, str],
                op: Any) -> dict[str, Any]:
    new = str(uuid.uuid4())
    now = datetime.now(UTC).isoformat()
    cases: dict[str, Any] = {
        "update their session": lambda: op("inspection_session", theirs["session"], "UPDATE", {
            "status": "cancelled", "result": "NG", "base_version": 2, "version": 3}),
        "delete their session": lambda: op("inspection_session", theirs["session"], "DELETE",
                                           {"base_version": 2}),
        "update their session item": lambda: op(
            "inspection_session_item", theirs["item"], "UPDATE",
            {"status": "verified", "result": "NG", "base_version": 1, "version": 2}),
        "delete their image": lambda: op("inspection_image", theirs["image"], "DELETE",
                                         {"base_version": 1}),
        "delete their AI result": lambda: op("ai_inspection_result", theirs["ai"], "DELETE",
                                             {"base_version": 1}),
        "update their target": lambda: op("inspection_target", theirs["target"], "UPDATE",
                                          {"batch_id": "FORGED", "base_version": 1,
                                           "version": 2}),
        "item under their session": lambda: op("inspection_session_item", new, "INSERT", {
            "id": new, "session_id": theirs["session"], "item_code": "V-EXTRA",
            "order_sequence": 9, "status": "pending", "version": 1}),
        "image under their session": lambda: op("inspection_image", new, "INSERT", {
            "id": new, "session_id": theirs["session"], "sha256": "b" * 64}),
        "AI result under their session": lambda: op("ai_inspection_result", new, "INSERT", {
            "id": new, "session_id": theirs["session"], "overall_result": "NG",
            "confidence": 0.99, "processing_time": 0.1}),
        "verdict under their session": lambda: op("human_verification_result", new, "INSERT", {
            "id": new, "session_id": theirs["session"], "final_result": "NG",
            "verification_time": 1.0, "username": "suzuki"}),
        "session under their target": lambda: op("inspection_session", new, "INSERT", {
            "id": new, "target_id": theirs["target"], "status": "in_progress", "version": 1}),
        "AI result on their photo in my session": lambda: op(
            "ai_inspection_result", new, "INSERT", {
                "id": new, "session_id": mine["session"], "image_id": theirs["image"],
                "overall_result": "NG", "confidence": 0.99, "processing_time": 0.1}),
        "my session moved to their target": lambda: op(
            "inspection_session", mine["session"], "UPDATE",
            {"target_id": theirs["target"], "base_version": 2, "version": 3}),
        "their target id reused": lambda: op("inspection_target", theirs["target"], "INSERT",
                                             target(theirs["target"], created_at=now)),
        "their session id reused": lambda: op("inspection_session", theirs["session"], "INSERT", {
            "id": theirs["session"], "target_id": mine["target"], "status": "completed",
            "result": "OK", "version": 1}),
        "their image id reused": lambda: op("inspection_image", theirs["image"], "INSERT", {
            "id": theirs["image"], "session_id": mine["session"], "sha256": "c" * 64}),
    }
    built: dict[str, Any] = cases[case]()
    return built


FOREIGN_CASES = [
    "update their session", "delete their session", "update their session item",
    "delete their image", "delete their AI result", "update their target",
    "item under their session", "image under their session", "AI result under their session",
    "verdict under their session", "session under their target",
    "AI result on their photo in my session", "my session moved to their target",
    "their target id reused", "their session id reused", "their image id reused",
]


@pytest.mark.parametrize("case", FOREIGN_CASES)
def test_an_operation_on_another_devices_record_is_refused(
    site: Running, tablets: dict[str, Tablet], case: str
) -> None:
    owner, intruder = tablets["TAB-01"], tablets["TAB-02"]
    theirs = applied_inspection(owner)
    mine = applied_inspection(intruder)
    before, mine_before = records(site, theirs), records(site, mine)

    bad = foreign_ops(case, theirs, mine, intruder.op)
    intruder.pushed([bad])
    settled(site, bad)

    row = queue_row(site, bad)
    assert row.refusal == "rejected", row.last_error
    assert row.last_error.startswith("rejected: ")
    assert owner.device_id in row.last_error and intruder.device_id in row.last_error
    assert row.refusal_seq is not None and row.apply_attempts == 1
    # Nothing of the owner's changed, nothing was added under it, nothing of the intruder's
    # moved either.
    assert records(site, theirs) == before
    assert records(site, mine) == mine_before


def test_the_owner_still_writes_its_own_records(site: Running, tablets: dict[str, Tablet]) -> None:
    owner = tablets["TAB-01"]
    ids = applied_inspection(owner)
    resent = owner.op("inspection_target", ids["target"], "INSERT", target(ids["target"]))
    update = owner.op("inspection_session", ids["session"], "UPDATE", {
        "status": "cancelled", "base_version": 2, "version": 3})
    delete = owner.op("human_verification_result", ids["check"], "DELETE",
                      {"base_version": 1})
    owner.pushed([resent, update, delete])
    settled(site, resent, update, delete)
    assert all(queue_row(site, op).refusal is None for op in (resent, update))
    assert query(site, "SELECT status, version FROM inspection_sessions WHERE id = :i",
                 i=uuid.UUID(ids["session"]))[0] == ("cancelled", 3)
    # A result is never deleted on the server, not even by its owner: a correction supersedes it.
    refused = queue_row(site, delete)
    assert refused.refusal == "dead_letter" and "never deleted" in refused.last_error
    assert query(site, "SELECT count(*) FROM human_verification_results WHERE id = :i",
                 i=uuid.UUID(ids["check"]))[0][0] == 1


def never(case: str, ids: dict[str, str], op: Any) -> dict[str, Any]:
    """A row that can never apply, about the applied inspection ``ids``."""
    new = str(uuid.uuid4())
    ai = {"id": new, "session_id": ids["session"], "image_id": ids["image"],
          "overall_result": "OK", "confidence": 0.9, "processing_time": 0.05}
    item = {"id": new, "session_id": ids["session"], "item_code": "V-EXTRA",
            "order_sequence": 2, "status": "pending", "version": 1}
    image = {"id": new, "session_id": ids["session"], "sha256": "d" * 64}
    cases: dict[str, Any] = {
        "pipeline id not a UUID": lambda: op("ai_inspection_result", new, "INSERT",
                                             {**ai, "pipeline_id": "fake"}),
        "confidence not a number": lambda: op("ai_inspection_result", new, "INSERT",
                                              {**ai, "confidence": "high"}),
        "session id not a UUID": lambda: op("inspection_session_item", new, "INSERT",
                                            {**item, "session_id": "S-1"}),
        "timestamp not a timestamp": lambda: op("inspection_image", new, "INSERT",
                                                {**image, "created_at": "yesterday"}),
        "timestamp of the wrong type": lambda: op("inspection_session", ids["session"],
                                                  "UPDATE", {"status": "failed",
                                                             "base_version": 2, "version": 3,
                                                             "started_at": [1]}),
        # Values only the database refuses, for good: too long for the column, out of range.
        "product id longer than its column": lambda: op(
            "inspection_target", new, "INSERT", target(new, product_id="P" * 101)),
        "order sequence out of range": lambda: op("inspection_session_item", new, "INSERT",
                                                  {**item, "order_sequence": 2**40}),
        "image width out of range": lambda: op("inspection_image", new, "INSERT",
                                               {**image, "width": 2**40}),
        "no session at all": lambda: op("inspection_image", new, "INSERT",
                                        {"id": new, "sha256": "e" * 64}),
    }
    built: dict[str, Any] = cases[case]()
    return built


NEVER_CASES = [
    "pipeline id not a UUID", "confidence not a number", "session id not a UUID",
    "timestamp not a timestamp", "timestamp of the wrong type",
    "product id longer than its column",
    "order sequence out of range", "image width out of range", "no session at all",
]


# The push refuses these values at its edge now; rows stored before it did (by an older server)
# still reach the processor, which must not retry them for ever either.
STORED_BEFORE_BOUNDS = {"product id longer than its column", "order sequence out of range",
                        "image width out of range", "confidence not a number"}


def enqueue(running: Running, tablet: Tablet, op: dict[str, Any]) -> None:
    """Store a row in the queue as an older server's push did, without today's checks."""
    engine = create_engine(running.site.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO tauri_sync_queue (device_id, device_type, app_version, entity_type, "
                "entity_id, operation, data, priority, retry_count, op_id, seq) VALUES (:d, "
                "'tablet', '0.1.0', :t, :e, :o, CAST(:data AS jsonb), 0, 0, :op_id, :seq)"),
                {"d": tablet.device_id, "t": op["entity_type"], "e": uuid.UUID(op["entity_id"]),
                 "o": op["operation"], "data": json.dumps(op["data"]),
                 "op_id": uuid.UUID(op["op_id"]), "seq": op["seq"]})
    finally:
        engine.dispose()


@pytest.mark.parametrize("case", NEVER_CASES)
def test_a_row_that_can_never_apply_is_dead_lettered_at_once(
    site: Running, tablets: dict[str, Tablet], case: str
) -> None:
    tablet = tablets["TAB-01"]
    ids = applied_inspection(tablet)
    bad = never(case, ids, tablet.op)
    behind_id = str(uuid.uuid4())
    behind = tablet.op("inspection_target", behind_id, "INSERT", target(behind_id))
    if case in STORED_BEFORE_BOUNDS:
        enqueue(site, tablet, bad)
        tablet.pushed([behind])
    else:
        tablet.pushed([bad, behind])
    settled(site, bad, behind)

    row = queue_row(site, bad)
    assert row.refusal == "dead_letter" and row.last_error.startswith("dead letter: ")
    assert row.apply_attempts == 1 and row.retry_count == 0
    # The row behind it did not wait.
    assert queue_row(site, behind).refusal is None
    assert query(site, "SELECT count(*) FROM inspection_targets WHERE id = :i",
                 i=uuid.UUID(behind_id))[0][0] == 1


def test_a_row_that_needs_a_dead_lettered_record_is_dead_lettered_too(
    site: Running, tablets: dict[str, Tablet]
) -> None:
    """The verdict after an AI result that can never apply does not wait hours for it."""
    tablet = tablets["TAB-01"]
    ids = applied_inspection(tablet)
    ai_id, check_id = str(uuid.uuid4()), str(uuid.uuid4())
    ai = tablet.op("ai_inspection_result", ai_id, "INSERT", {
        "id": ai_id, "session_id": ids["session"], "image_id": ids["image"],
        "pipeline_id": "fake", "overall_result": "OK", "confidence": 0.9,
        "processing_time": 0.05})
    check = tablet.op("human_verification_result", check_id, "INSERT", {
        "id": check_id, "session_id": ids["session"], "ai_result_id": ai_id,
        "final_result": "OK", "verification_time": 2.0, "username": "tanaka"})
    later = tablet.op("ai_inspection_result", ai_id, "UPDATE", {
        "confidence": 0.5, "base_version": 1, "version": 2})
    tablet.pushed([ai, check, later])
    settled(site, ai, check, later, timeout=15)
    for op in (ai, check, later):
        row = queue_row(site, op)
        assert row.refusal == "dead_letter" and row.apply_attempts <= 2, row.last_error
    assert "refused" in queue_row(site, check).last_error


def test_a_child_that_arrives_before_its_parent_waits_with_backoff_then_applies(
    site: Running, tablets: dict[str, Tablet]
) -> None:
    tablet = tablets["TAB-01"]
    ops, ids = tablet.inspection()
    image = next(op for op in ops if op["entity_type"] == "inspection_image")
    tablet.pushed([image])
    wait_until(lambda: queue_row(site, image).apply_attempts >= 1, 15,
               what="the first attempt at the photo")
    row = queue_row(site, image)
    assert row.processed_at is None and row.refusal is None
    assert ids["session"] in row.last_error and "not applied yet" in row.last_error
    # Waits by the policy's backoff in the server's own column; retry_count is the device's.
    assert row.next_attempt_at - row.last_retry_at >= timedelta(
        seconds=DEFAULT_POLICY.base_s * 0.99)
    assert row.retry_count == 0
    rest = [op for op in ops if op is not image]
    tablet.pushed(rest)
    settled(site, image, *rest)
    assert queue_row(site, image).refusal is None
    assert query(site, "SELECT count(*) FROM inspection_images WHERE id = :i",
                 i=uuid.UUID(ids["image"]))[0][0] == 1


def test_a_child_whose_parent_never_comes_is_dead_lettered_after_the_attempts(
    pg_cluster: Cluster, tmp_path: Path
) -> None:
    # No wait between attempts, so the policy's attempts are spent in moments.
    env = {"KENSA_SERVER_PROCESSOR_RETRY_S": "0", "KENSA_SERVER_PROCESSOR_IDLE_S": "0.05"}
    with serving(pg_cluster, tmp_path, env) as running:
        tablet = Tablet(running, "TAB-01", itertools.count(1))
        with tablet.client:
            made_up, child, behind_id = (str(uuid.uuid4()) for _ in range(3))
            orphan = tablet.op("inspection_session_item", child, "INSERT", {
                "id": child, "session_id": made_up, "item_code": "V-SCRATCH",
                "order_sequence": 1, "status": "pending", "version": 1})
            behind = tablet.op("inspection_target", behind_id, "INSERT", target(behind_id))
            tablet.pushed([orphan, behind])
            settled(running, orphan, behind, timeout=60)
            row = queue_row(running, orphan)
            assert row.refusal == "dead_letter"
            assert row.apply_attempts == DEFAULT_POLICY.max_attempts
            assert f"gave up after {DEFAULT_POLICY.max_attempts} attempts" in row.last_error
            assert made_up in row.last_error
            assert queue_row(running, behind).refusal is None
            counts = httpx.get(f"{running.url}/admin/v1/queue", auth=ADMIN).json()["devices"]
            mine = next(d for d in counts if d["device_id"] == tablet.device_id)
            assert mine["dead_letters"] == 1 and mine["pending"] == 0


def test_refusals_reach_the_device_as_set_aside_operations(
    site: Running, tablets: dict[str, Tablet], device_db: Database
) -> None:
    owner, intruder = tablets["TAB-01"], tablets["TAB-02"]
    theirs = applied_inspection(owner)
    forged = intruder.op("inspection_session", theirs["session"], "UPDATE", {
        "status": "completed", "result": "OK", "base_version": 2, "version": 3})
    mine = applied_inspection(intruder)
    dead = never("pipeline id not a UUID", mine, intruder.op)
    conflict = intruder.op("inspection_session", mine["session"], "UPDATE", {
        "status": "failed", "base_version": 1, "version": 3})
    intruder.pushed([forged, dead, conflict])
    settled(site, forged, dead, conflict)

    client = SyncClient(site.url, SecretStr(site.site.tokens["TAB-02"]), app_version="0.1.0")
    try:
        assert fetch_refused(device_db, client) >= 3
        assert fetch_refused(device_db, client) == 0  # the cursor moved past them
        page = client.conflicts(0)
    finally:
        client.close()
    kinds = {op.op_id: op.kind for op in page.conflicts}
    assert kinds[forged["op_id"]] == "rejected"
    assert kinds[dead["op_id"]] == "dead_letter"
    assert kinds[conflict["op_id"]] == "conflict"
    # Another device's refusals are not shown to this one.
    assert all(op.entity_id != theirs["session"] or op.op_id == forged["op_id"]
               for op in page.conflicts)
    with device_db.read() as session:
        reasons = dict(session.execute(sa.text(
            "SELECT op_id, set_aside_reason FROM outbox WHERE set_aside_at IS NOT NULL")).all())
    assert reasons[forged["op_id"]].startswith("rejected: inspection_session ")
    assert owner.device_id in reasons[forged["op_id"]]
    assert reasons[dead["op_id"]].startswith("dead_letter: pipeline_id")
    assert reasons[conflict["op_id"]].startswith("conflict: server holds version 2")

    counts = httpx.get(f"{site.url}/admin/v1/queue", auth=ADMIN).json()["devices"]
    seen = next(d for d in counts if d["device_id"] == intruder.device_id)
    assert seen["rejected"] >= 1 and seen["dead_letters"] >= 1 and seen["conflicts"] >= 1


# Values that pass the push's validation as JSON, but that PostgreSQL refuses to hold in the
# queue's jsonb column: each must be refused as its own operation, not as a 503 for ever.
DATABASE_REFUSES = {
    "NUL in nested text": '{"detail": {"notes": ["ok\\u0000"]}}',
    "NUL in a nested key": '{"detail": {"a\\u0000b": 1}}',
    "number too large for numeric": '{"detail": {"area": 1e200000}}',
    "negative number too large": '{"detail": {"area": -1e200000}}',
}


@pytest.mark.parametrize("case", sorted(DATABASE_REFUSES))
@pytest.mark.parametrize("header", [False, True])
def test_a_value_the_database_refuses_sets_aside_only_its_operation(
    site: Running, tablets: dict[str, Tablet], case: str, header: bool
) -> None:
    tablet = tablets["TAB-01"]
    keys = [str(uuid.uuid4()) for _ in range(3)]
    ops = [tablet.op("inspection_target", key, "INSERT", target(key)) for key in keys]
    bad = ops[1]
    bad["data"]["extra"] = "__EXTRA__"
    raw = json.dumps(tablet.body(ops)).replace('"__EXTRA__"', DATABASE_REFUSES[case])
    # With the device's clock a day off, the server encodes the batch again: same answer.
    headers = ({DEVICE_TIME_HEADER: (datetime.now(UTC) + timedelta(days=1)).isoformat()}
               if header else {})
    answer = tablet.push(ops, headers, raw=raw)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "operation_rejected"
    assert [(r["seq"], r["op_id"]) for r in error["detail"]["rejected"]] == [
        (bad["seq"], bad["op_id"])]
    assert error["detail"]["rejected"][0]["reason"]
    assert query(site, "SELECT count(*) FROM tauri_sync_queue WHERE op_id = ANY(:ids)",
                 ids=[uuid.UUID(op["op_id"]) for op in ops])[0][0] == 0
    # The device sets it aside and sends the rest, which is stored and applied.
    rest = [ops[0], ops[2]]
    tablet.pushed(rest)
    settled(site, *rest)


NOW_ISH = timedelta(seconds=60)


@pytest.mark.parametrize(
    ("header_offset", "sent_offset", "stored_offset", "original_kept"),
    [
        # No device clock: a timestamp ten years (or an hour) ahead cannot be true.
        (None, timedelta(days=3650), timedelta(0), True),
        (None, timedelta(hours=1), timedelta(0), True),
        ("garbage", timedelta(days=3650), timedelta(0), True),
        # Within drift, or in the past (an offline shift): kept as sent.
        (None, timedelta(seconds=30), timedelta(seconds=30), False),
        (None, -timedelta(days=30), -timedelta(days=30), False),
        ("garbage", -timedelta(days=2), -timedelta(days=2), False),
        # A device clock that is right does not make one record's wrong timestamp true.
        (timedelta(0), timedelta(days=3650), timedelta(0), True),
        (timedelta(0), -timedelta(days=3), -timedelta(days=3), False),
        # A device clock a day off: its timestamps move by the offset, the value sent kept
        # beside them (the record as the tablet digested it for its audit trail).
        (timedelta(days=1), timedelta(days=1), timedelta(0), True),
        (-timedelta(days=1), -timedelta(days=1), timedelta(0), True),
    ],
)
def test_timestamps_in_the_future_are_not_stored_as_sent(
    site: Running, tablets: dict[str, Tablet], header_offset: timedelta | str | None,
    sent_offset: timedelta, stored_offset: timedelta, original_kept: bool
) -> None:
    tablet = tablets["TAB-01"]
    now = datetime.now(UTC)
    key = str(uuid.uuid4())
    sent = (now + sent_offset).isoformat()
    op = tablet.op("inspection_target", key, "INSERT", target(key, created_at=sent))
    headers: dict[str, str] = {}
    if isinstance(header_offset, str):
        headers[DEVICE_TIME_HEADER] = header_offset
    elif header_offset is not None:
        headers[DEVICE_TIME_HEADER] = (now + header_offset).isoformat()
    tablet.pushed([op], headers)
    settled(site, op)
    stored = query(site, "SELECT created_at FROM inspection_targets WHERE id = :i",
                   i=uuid.UUID(key))[0][0]
    assert abs(stored - (now + stored_offset)) < NOW_ISH, stored
    data = queue_row(site, op).data
    if original_kept:
        assert data[ORIGINAL_TIMESTAMPS_KEY] == {"created_at": sent}
    else:
        assert ORIGINAL_TIMESTAMPS_KEY not in data
