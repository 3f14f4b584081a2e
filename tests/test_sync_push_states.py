"""The server takes an inspection session or item only in a state of the move table
(``schema.formats.workflow``): a pushed status it does not know is refused for that operation,
named, before anything is stored — through the real server process on PostgreSQL."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest

from schema.formats import workflow as moves
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
