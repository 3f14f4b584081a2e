"""Retrying an item and analysing it are moves of the table (``schema.formats.workflow``),
through the real sidecar process: from every state an inspection can put an item in, the move
the table allows happens (and is recorded once, in the state that commits), any other is a 409
naming the state, with nothing written."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from schema.formats import workflow as moves
from tests.support.ai_jobs import analyse
from tests.support.seed import PASSWORD, seed_device
from tests.support.sidecar import SidecarProcess
from tests.test_sidecar_edge_bounds import Edge, Inspection, inspect, photograph, refused


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    data = tmp_path_factory.mktemp("moves")
    seed_device(data / "kensa.db")
    # One AI worker: an item reaches ai_completed the one way there is, a job on its photo.
    proc = SidecarProcess(data, env={"KENSA_AI_WORKERS": "1"})
    proc.start()
    try:
        with proc.client() as client:
            r = client.post("/auth/login", json={"username": "admin", "password": PASSWORD})
            assert r.status_code == 200, r.text
        yield Edge(proc, {"admin": r.json()["token"]})
    finally:
        proc.kill()


def _post(edge: Edge, path: str, **kwargs: object) -> None:
    with edge.client() as client:
        r = client.post(path, **kwargs)  # type: ignore[arg-type]
    assert r.status_code in (200, 201), r.text


def _photographed(edge: Edge, insp: Inspection, code: str) -> None:
    photograph(edge, insp, code)


def _analysed(edge: Edge, insp: Inspection, code: str) -> None:
    image_id = photograph(edge, insp, code)
    with edge.client() as client:
        analyse(client, insp.sid, insp.items[code], image_id)


# How an inspection puts an item in each state it can reach and stay in ("ai_running" lasts only
# while a job runs, and "failed" is the runner's; the table tests cover their moves).
REACH: dict[str, Callable[[Edge, Inspection, str], None]] = {
    "pending": lambda edge, insp, code: None,
    "captured": _photographed,
    "ai_completed": _analysed,
    "verified": lambda edge, insp, code: _post(
        edge, insp.item(code) + "/verification",
        json={"final_result": "OK", "verification_time": 1.0},
    ),
    "skipped": lambda edge, insp, code: _post(edge, insp.item(code) + "/skip"),
}
# V-SCRATCH is judged by AI; F-PISTON is optional and has no AI (the only one that may be skipped).
CASES = [
    ("F-PISTON", "pending"), ("V-SCRATCH", "captured"), ("V-SCRATCH", "ai_completed"),
    ("F-PISTON", "verified"), ("F-PISTON", "skipped"),
]


def _item(edge: Edge, insp: Inspection, code: str) -> tuple[str, int, int]:
    with edge.db() as conn:
        row = conn.execute(
            "SELECT status, attempts, version FROM inspection_session_items "
            "WHERE session_id = ? AND item_id = ?", (insp.sid, insp.items[code]),
        ).fetchone()
    return row[0], row[1], row[2]


def _outbox_updates(edge: Edge, insp: Inspection, code: str) -> list[dict[str, object]]:
    with edge.db() as conn:
        (entity_id,) = conn.execute(
            "SELECT id FROM inspection_session_items WHERE session_id = ? AND item_id = ?",
            (insp.sid, insp.items[code]),
        ).fetchone()
        rows = conn.execute(
            "SELECT data FROM outbox WHERE entity_id = ? AND operation = 'UPDATE' ORDER BY seq",
            (entity_id,),
        ).fetchall()
    return [json.loads(r[0]) for r in rows]


@pytest.mark.parametrize("code,state", CASES, ids=[s for _, s in CASES])
def test_retry_is_the_tables_move(edge: Edge, code: str, state: str) -> None:
    insp = inspect(edge)
    REACH[state](edge, insp, code)
    assert _item(edge, insp, code)[0] == state
    path = insp.item(code) + "/retry"
    target = moves.RETRY_MOVES.get(state)
    if target is None:
        error = refused(edge, "POST", path, 409, "illegal_transition")
        assert error["detail"] == {"state": state} and code in error["message"], error
        return
    before = _item(edge, insp, code)
    _post(edge, path)
    assert _item(edge, insp, code) == (target, before[1] + 1, before[2] + 1)
    last = _outbox_updates(edge, insp, code)[-1]
    assert (last["status"], last["attempts"], last["version"]) == (target, before[1] + 1,
                                                                   before[2] + 1)


def test_an_analysis_takes_the_tables_path(edge: Edge) -> None:
    """An AI result comes from a job: the item moves captured → ai_running → ai_completed, each
    a move of the table the server hears of."""
    insp = inspect(edge)
    photograph(edge, insp, "V-SCRATCH")
    status, _, version = _item(edge, insp, "V-SCRATCH")
    assert status == "captured"
    updates = len(_outbox_updates(edge, insp, "V-SCRATCH"))
    with edge.client() as client:
        result = analyse(client, insp.sid, insp.items["V-SCRATCH"])
    assert result["provenance"]["model_hashes"]
    assert _item(edge, insp, "V-SCRATCH")[0::2] == ("ai_completed", version + 2)
    recorded = _outbox_updates(edge, insp, "V-SCRATCH")[updates:]
    assert [(u["status"], u["version"]) for u in recorded] == [
        ("ai_running", version + 1), ("ai_completed", version + 2)]
