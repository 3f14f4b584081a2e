"""An AI job's states and moves (``sidecar.jobs.states``): every state × move, the queue going
through them, and the API's list of job states. The device database's CHECK on
``analysis_jobs.status`` is compared with the table in ``tests/test_constraints.py``."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from schema import device as d
from schema.db import Database
from sidecar.app import create_app
from sidecar.errors import Conflict
from sidecar.jobs import queue
from sidecar.jobs.states import JOB_MOVES, JOB_START, JOB_STATES, MOVES, Move, job_may, job_move
from sidecar.settings import Settings

# Written out, not read from the table: state → {move: new state}; every pair not here is refused.
LEGAL: dict[str, dict[str, str]] = {
    "waiting": {"claim": "processing", "cancel": "cancelled"},
    "processing": {
        "finish": "completed",
        "fail": "failed",
        "requeue": "waiting",
        "cancel": "cancelled",
    },
    "completed": {},
    "failed": {"retry": "waiting"},
    "cancelled": {"retry": "waiting"},
}
CASES = [(state, move) for state in JOB_STATES for move in MOVES]


def test_the_table_knows_every_state_and_starts_at_waiting() -> None:
    assert set(JOB_MOVES) == set(JOB_STATES) == set(LEGAL)
    assert JOB_START == JOB_STATES[0] == "waiting"


@pytest.mark.parametrize(("state", "move"), CASES, ids=[f"{s}-{m}" for s, m in CASES])
def test_every_state_and_move(state: str, move: Move) -> None:
    target = LEGAL[state].get(move)
    assert job_may(state, move) == (target is not None)
    if target is not None:
        assert job_move(state, move) == target
        return
    with pytest.raises(Conflict) as caught:
        job_move(state, move)
    assert caught.value.code == "illegal_transition"
    assert caught.value.detail == {"state": state, "move": move}
    assert f"already {state}" in caught.value.message


def test_an_unknown_state_is_refused_by_name() -> None:
    with pytest.raises(Conflict, match="unknown AI job state 'paused'") as caught:
        job_move("paused", "claim")
    assert caught.value.detail["state"] == "paused"


def _job(db: Database, status: str) -> str:
    with db.atomic() as session:
        session.add(d.InspectionTarget(id="u1", product_id="BRK-100", batch_id="A1", qr_code="x"))
        session.add(d.InspectionSession(id="s1", target_id="u1"))
        session.add(
            d.InspectionImage(
                id="img1", session_id="s1", file_path="a.jpg", sha256="a" * 64, file_size=1
            )
        )
        session.add(
            d.AnalysisJob(
                id="j1",
                image_id="img1",
                pipeline_id="p",
                pipeline_version=1,
                position=1,
                status=status,
            )
        )
    return "j1"


def _status(db: Database, job_id: str) -> str:
    with db.read() as session:
        return queue.get(session, job_id).status


@pytest.mark.parametrize(
    ("status", "call"),
    [
        ("waiting", lambda s, job: queue.finish(s, job, "r1")),
        ("completed", lambda s, job: queue.fail(s, job, "boom", recoverable=True)),
        ("failed", lambda s, job: queue.cancel(s, job.id)),
    ],
    ids=["finish a waiting job", "fail a completed job", "cancel a failed job"],
)
def test_the_queue_refuses_a_move_the_table_does_not_have(
    device_db: Database, status: str, call: object
) -> None:
    job_id = _job(device_db, status)
    with pytest.raises(Conflict) as caught, device_db.atomic() as session:
        call(session, queue.get(session, job_id))  # type: ignore[operator]
    assert caught.value.detail["state"] == status
    assert _status(device_db, job_id) == status


def test_the_queues_moves_follow_the_table(device_db: Database) -> None:
    job_id = _job(device_db, "waiting")

    def step(do: object) -> str:
        with device_db.atomic() as session:
            do(session)  # type: ignore[operator]
        return _status(device_db, job_id)

    def claim(s: Session) -> None:
        assert queue.claim_next(s) is not None

    def fail(s: Session, recoverable: bool) -> None:
        queue.fail(s, queue.get(s, job_id), "boom", recoverable=recoverable)

    def enqueue(s: Session) -> None:
        queue.enqueue(
            s, image_id="img1", session_id="s1", item_id="i1", pipeline_id="p", pipeline_version=1
        )

    assert step(claim) == "processing"
    assert step(lambda s: fail(s, True)) == "waiting"  # retries left: back to the queue
    assert step(claim) == "processing"
    assert step(lambda s: queue.recover(s)) == "waiting"  # a crash interrupted the run
    assert step(claim) == "processing"
    assert step(lambda s: fail(s, False)) == "failed"
    assert step(enqueue) == "waiting"  # asking again retries the same job
    assert step(lambda s: queue.cancel(s, job_id)) == "cancelled"
    assert step(enqueue) == "waiting"
    assert step(claim) == "processing"
    # Finishing names the AI result it stored; here it is only moved, in a session never committed.
    with device_db.read() as session:
        job = queue.get(session, job_id)
        queue.finish(session, job, "r1")
        assert job.status == "completed"
        job.result_id = None
        enqueue(session)
        assert job.status == "completed"  # a finished analysis is not run again
    assert step(lambda s: queue.cancel(s, job_id)) == "cancelled"  # running, then cancelled


def test_the_api_filters_jobs_by_the_tables_states() -> None:
    doc = create_app(Settings(token="x", ui_dist=None)).openapi()
    status = next(p for p in doc["paths"]["/jobs"]["get"]["parameters"] if p["name"] == "status")
    listed = next(s for s in status["schema"]["anyOf"] if "enum" in s)["enum"]
    assert listed == list(JOB_STATES)
