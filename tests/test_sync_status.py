"""The one sync status (``sync.device.status``): what "online" and "last error" mean, what it
counts, and that the event stream and ``GET /sync/status`` of the real sidecar serve the same."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schema import device as d
from schema.db import Database, create_sqlite_engine
from schema.types import utcnow
from sync.device import status as sync_status
from sync.device.state import StreamState
from tests.support.seed import PASSWORD, seed_device
from tests.support.sidecar import SidecarProcess

T0 = datetime(2026, 11, 27, 8, 0, tzinfo=utcnow().tzinfo)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def stream(
    name: str, success: int | None = None, error: int | None = None, message: str = "boom"
) -> StreamState:
    return StreamState(
        name=name, cursor=None,
        last_success_at=at(success) if success is not None else None,
        last_error_at=at(error) if error is not None else None,
        last_error=message if error is not None else None,
        last_error_kind="offline" if error is not None else None,
    )


# (streams, online, the standing error's message, last success minute)
OUTCOMES = {
    "never tried": ([], False, None, None),
    "one success": ([stream("push", success=1)], True, None, 1),
    "failed before any success": ([stream("push", error=1, message="refused")], False, "refused",
                                  None),
    "failed after its success": ([stream("push", success=1, error=2, message="down")], False,
                                 "down", 1),
    "succeeded after its failure": ([stream("push", success=3, error=2)], True, None, 3),
    # Another stream's later success does not clear this one's failure: pull has not got
    # through since it failed.
    "pull still failing": ([stream("push", success=5), stream("pull", success=1, error=2,
                                                              message="pull broke")],
                           False, "pull broke", 5),
    "photos failing": ([stream("push", success=5), stream("pull", success=5),
                        stream("upload", success=1, error=4, message="no space")],
                       False, "no space", 5),
    "newest of two standing": ([stream("push", error=3, message="newer"),
                                stream("pull", error=2, message="older")], False, "newer", None),
    "all recovered": ([stream("push", success=6, error=2), stream("pull", success=7, error=3),
                       stream("upload", success=8, error=4)], True, None, 8),
}


@pytest.mark.parametrize(("streams", "online", "error", "success"), OUTCOMES.values(),
                         ids=OUTCOMES.keys())
def test_online_and_the_standing_error_follow_each_streams_last_outcome(
    streams: list[StreamState], online: bool, error: str | None, success: int | None
) -> None:
    result = sync_status.outcome(streams)
    assert result.online is online
    assert (result.error.last_error if result.error else None) == error
    assert result.last_success_at == (at(success) if success is not None else None)


def _outbox(db: Database, ages_s: list[float], set_aside: int = 0) -> None:
    now = utcnow()
    with db.atomic() as session:
        for i, age in enumerate(ages_s):
            session.add(d.Outbox(entity_type="inspection_sessions", entity_id=f"s{i}",
                                 operation="INSERT", data={"id": f"s{i}"},
                                 created_at=now - timedelta(seconds=age)))
        for i in range(set_aside):
            session.add(d.Outbox(entity_type="inspection_sessions", entity_id=f"x{i}",
                                 operation="INSERT", data={}, set_aside_at=now,
                                 set_aside_reason="refused"))


def _streams(db: Database, **outcomes: tuple[int | None, int | None]) -> None:
    """Stored stream outcomes: name=(success minutes ago, error minutes ago)."""
    now = utcnow()
    with db.atomic() as session:
        for name, (success, error) in outcomes.items():
            session.add(d.SyncState(
                name=name,
                last_success_at=now - timedelta(minutes=success) if success is not None else None,
                last_error_at=now - timedelta(minutes=error) if error is not None else None,
                last_error="connection refused" if error is not None else None,
                last_error_kind="offline" if error is not None else None,
            ))


def test_a_fresh_tablet_is_offline_with_nothing_waiting(device_db: Database) -> None:
    status = sync_status.read(device_db, now=utcnow())
    assert status.summary() == sync_status.SyncSummary(configured=False, online=False)


def test_status_counts_what_waits_and_what_was_set_aside(device_db: Database) -> None:
    _outbox(device_db, [30.0, 300.0, 5.0], set_aside=2)
    status = sync_status.read(device_db, now=utcnow())
    assert status.pending_rows == 3 and status.pending_bytes > 0
    assert status.oldest_pending_age_s is not None and 299.0 <= status.oldest_pending_age_s < 320
    assert status.set_aside_count == 2
    assert [op.reason for op in status.set_aside] == ["refused", "refused"]
    assert status.summary().set_aside_count == 2


SITUATIONS: dict[str, Any] = {
    "fresh": lambda db: None,
    "records waiting, some set aside": lambda db: _outbox(db, [60.0, 5.0], set_aside=1),
    "an error standing": lambda db: _streams(db, push=(10, 1), pull=(10, None)),
    "an error cleared by a later success": lambda db: _streams(db, push=(1, 5), pull=(1, None)),
}
COMPARED = set(sync_status.SyncSummary.model_fields) - {"oldest_pending_age_s"}


@pytest.fixture
def sidecar_dir(tmp_path: Path) -> Path:
    seed_device(tmp_path / "kensa.db")
    return tmp_path


def _first_sync_event(sidecar: SidecarProcess) -> dict[str, Any]:
    with sidecar.client() as client, client.stream("GET", "/events") as events:
        lines = events.iter_lines()
        next(line for line in lines if line == "event: sync")
        return dict(json.loads(next(lines).removeprefix("data: ")))


@pytest.mark.parametrize("situation", SITUATIONS.values(), ids=SITUATIONS.keys())
def test_the_event_stream_and_sync_status_serve_the_same_values(
    sidecar_dir: Path, situation: Any
) -> None:
    db = Database(create_sqlite_engine(sidecar_dir / "kensa.db"))
    situation(db)
    db.dispose()
    sidecar = SidecarProcess(sidecar_dir, env={"KENSA_AI_WORKERS": "0"})
    sidecar.start()
    try:
        with sidecar.client() as client:
            # The operations set aside are listed to a login whose role may see them; logging
            # in first, so that whatever the login writes is in both answers.
            login = client.post("/auth/login", json={"username": "admin", "password": PASSWORD})
            as_admin = {"X-Kensa-Session": login.json()["token"]}
            event = _first_sync_event(sidecar)
            answer = client.get("/sync/status", headers=as_admin)
        assert answer.status_code == 200
        status = answer.json()
    finally:
        sidecar.kill()
    # The stream carries the summary only: the set-aside records name records, it names none.
    assert set(event) == set(sync_status.SyncSummary.model_fields)
    assert {k: event[k] for k in COMPARED} == {k: status[k] for k in COMPARED}
    assert len(status["set_aside"]) == status["set_aside_count"]
