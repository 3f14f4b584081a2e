"""The server takes an inspection session or item only in a state of the move table
(``schema.formats.workflow``): a pushed status it does not know is refused for that operation,
named, before anything is stored — through the real server process on PostgreSQL — and a row
with such a status already in the queue is never applied."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from schema import server as s
from schema.db import Database, create_engine
from schema.formats import workflow as moves
from sync.server.apply import SPECS
from sync.server.processor import QueueProcessor
from tests.support.sync_harness import seed_site
from tests.test_sync_server import batch, error_code, op, queue_rows

if TYPE_CHECKING:
    from tests.support.sync_fixtures import Running

pytestmark = pytest.mark.postgres
pytest_plugins = ("tests.support.sync_fixtures",)

# What a device with another build, a bug or bad intent might send.
OUTSIDE: list[Any] = ["paused", "pending_review", "", "COMPLETED", "completed ", "完了", None, 3,
                      ["completed"]]
ENTITIES = {
    "inspection_session": (moves.SESSION_STATES, [*OUTSIDE, "pending"]),
    "inspection_session_item": (moves.ITEM_STATES, [*OUTSIDE, "scanning", "human_review"]),
}


def _insert(entity_type: str, status: Any, seq: int) -> dict[str, Any]:
    key = str(uuid.uuid4())
    if entity_type == "inspection_session":
        data = {"id": key, "target_id": str(uuid.uuid4()), "status": status, "version": 1}
    else:
        data = {"id": key, "session_id": str(uuid.uuid4()), "item_id": str(uuid.uuid4()),
                "item_code": "V-SCRATCH", "order_sequence": 1, "required": True,
                "status": status, "version": 1}
    return op(seq, entity_type=entity_type, data=data, entity_id=key)


def _update(entity_type: str, status: Any, seq: int) -> dict[str, Any]:
    return op(seq, entity_type=entity_type, operation="UPDATE",
              data={"status": status, "base_version": 1, "version": 2})


@pytest.mark.parametrize("entity_type", ENTITIES)
def test_a_status_outside_the_move_table_is_refused_by_name(
    site_server: Running, entity_type: str
) -> None:
    me = site_server.site.device_ids["TAB-01"]
    states, outside = ENTITIES[entity_type]
    bad = [make(entity_type, status, 0) for status in outside for make in (_insert, _update)]
    good = _insert(entity_type, states[0], 0)
    ops = [good, *bad]
    for seq, item in enumerate(ops, start=1):
        item["seq"] = seq
    with site_server.client() as client:
        answer = client.post("/sync/v1/push", json=batch(me, ops))
    assert answer.status_code == 422 and error_code(answer) == "operation_rejected", answer.text
    rejected = answer.json()["error"]["detail"]["rejected"]
    assert [r["op_id"] for r in rejected] == [b["op_id"] for b in bad]
    for refusal, sent in zip(rejected, bad, strict=True):
        assert refusal["reason"].startswith(f"data.status {sent['data']['status']!r} is not"), \
            refusal
    assert queue_rows(site_server.site.database_url) == 0


def test_every_state_of_the_move_table_is_taken(site_server: Running) -> None:
    me = site_server.site.device_ids["TAB-01"]
    ops = [
        make(entity_type, status, 0)
        for entity_type, (states, _) in ENTITIES.items()
        for status in states
        for make in (_insert, _update)
    ]
    for seq, item in enumerate(ops, start=1):
        item["seq"] = seq
    with site_server.client() as client:
        answer = client.post("/sync/v1/push", json=batch(me, ops))
    assert answer.status_code == 200, answer.text
    assert answer.json()["stored"] == len(ops)
    assert queue_rows(site_server.site.database_url) == len(ops)


@pytest.mark.parametrize("entity_type", ENTITIES)
def test_a_queued_status_outside_the_move_table_is_never_applied(
    pg_url: str, tmp_path: Path, entity_type: str
) -> None:
    # Rows a server stored before it checked statuses at push: the processor refuses them for
    # good (a dead letter the device hears of) instead of writing an unknown state.
    site = seed_site(pg_url, (tmp_path / "files").as_uri())
    db = Database(create_engine(pg_url))
    try:
        _, outside = ENTITIES[entity_type]
        queued = [_insert(entity_type, status, seq)
                  for seq, status in enumerate(outside, start=1) if status is not None]
        with db.atomic() as session:
            for item in queued:
                session.add(s.TauriSyncQueue(
                    device_id=site.device_ids["TAB-01"], device_type="tablet", app_version="t",
                    entity_type=entity_type, entity_id=uuid.UUID(item["entity_id"]),
                    operation="INSERT", data=item["data"], op_id=uuid.UUID(item["op_id"]),
                    seq=item["seq"]))
        QueueProcessor(db, retry_s=0.0).process_once()
        with db.read() as session:
            rows = session.execute(sa.text(
                "SELECT refusal, last_error FROM tauri_sync_queue ORDER BY seq")).all()
            applied = session.execute(sa.text(
                f"SELECT count(*) FROM {SPECS[entity_type].table.name}")).scalar_one()
        assert [r.refusal for r in rows] == ["dead_letter"] * len(queued)
        for row, item in zip(rows, queued, strict=True):
            assert f"status: {item['data']['status']!r} is not" in row.last_error, row
        assert applied == 0
    finally:
        db.dispose()
