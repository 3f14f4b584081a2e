"""``GET /events`` (server-sent events) and the progress hub behind it."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from schema import device as d
from schema.db import Database
from schema.types import utcnow
from sidecar import events
from sidecar.api import routes_events
from tests.support.seed import seed_device
from tests.support.sidecar import SidecarProcess


def _outbox(db: Database, ages_s: list[float], set_aside: int = 0) -> None:
    now = utcnow()
    with db.atomic() as session:
        for i, age in enumerate(ages_s):
            session.add(
                d.Outbox(
                    entity_type="inspection_sessions",
                    entity_id=f"s{i}",
                    operation="INSERT",
                    data={"id": f"s{i}"},
                    created_at=now - timedelta(seconds=age),
                )
            )
        for i in range(set_aside):
            session.add(
                d.Outbox(
                    entity_type="inspection_sessions",
                    entity_id=f"x{i}",
                    operation="INSERT",
                    data={},
                    set_aside_at=now,
                    set_aside_reason="refused",
                )
            )


def test_sync_status_of_a_fresh_tablet_is_offline(device_db: Database) -> None:
    status = routes_events.sync_status(device_db)
    assert status == {
        "online": False,
        "pending": 0,
        "oldest_pending_age_s": None,
        "last_success_at": None,
        "last_error": None,
        "set_aside": 0,
    }


def test_sync_status_counts_pending_and_ages_the_oldest(device_db: Database) -> None:
    _outbox(device_db, [30.0, 300.0, 5.0], set_aside=2)
    status = routes_events.sync_status(device_db)
    assert status["pending"] == 3
    assert status["set_aside"] == 2
    assert 299.0 <= status["oldest_pending_age_s"] <= 310.0


def test_online_follows_the_latest_push_or_pull(device_db: Database) -> None:
    now = utcnow()
    with device_db.atomic() as session:
        session.add(d.SyncState(name="push", last_success_at=now - timedelta(minutes=5)))
        session.add(
            d.SyncState(
                name="pull",
                last_success_at=now - timedelta(minutes=6),
                last_error_at=now - timedelta(minutes=1),
                last_error="connection refused",
            )
        )
    down = routes_events.sync_status(device_db)
    assert down["online"] is False
    assert down["last_error"] == "connection refused"
    assert down["last_success_at"] == (now - timedelta(minutes=5)).isoformat()
    with device_db.atomic() as session:
        push = session.get(d.SyncState, "push")
        assert push is not None
        push.last_success_at = now
        session.add(push)
    up = routes_events.sync_status(device_db)
    assert up["online"] is True
    assert up["last_error"] is None  # an error older than the last success is not news


def test_hub_delivers_progress_from_other_threads() -> None:
    async def scenario() -> list[events.Event]:
        hub = events.Hub()
        sub = hub.open()
        threading.Thread(
            target=hub.publish,
            args=("job", {"id": "j1", "stage": "model_execution", "percentage": 30, "eta_s": 0.5}),
        ).start()
        # The AI job runner's spelling: the event name first, the kind in the payload.
        hub.publish("progress", {"kind": "warmup", "id": "m", "stage": "load", "percentage": 150})
        got = [e for e in [await sub.get(2.0), await sub.get(2.0)] if e is not None]
        sub.close()
        assert hub.subscriber_count == 0
        return got

    got = asyncio.run(scenario())
    by_kind = {e.data["kind"]: e.data for e in got}
    assert by_kind["job"] == {
        "kind": "job",
        "id": "j1",
        "stage": "model_execution",
        "percentage": 30.0,
        "eta_s": 0.5,
    }
    assert by_kind["warmup"]["percentage"] == 100.0  # clamped
    with pytest.raises(ValueError, match="kind"):
        events.hub.publish("bogus", {})


def test_a_stalled_subscriber_keeps_only_the_newest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "QUEUE_SIZE", 3)

    async def scenario() -> list[float]:
        hub = events.Hub()
        sub = hub.open()
        for pct in range(10):
            hub.publish("sync", {"id": "s", "stage": "push", "percentage": pct})
        await asyncio.sleep(0.05)
        seen = []
        while (event := await sub.get(0.05)) is not None:
            seen.append(event.data["percentage"])
        return seen

    assert asyncio.run(scenario()) == [7.0, 8.0, 9.0]


def test_the_stream_sends_sync_then_progress(device_db: Database) -> None:
    async def scenario() -> list[str]:
        stream: AsyncIterator[str] = routes_events._stream(device_db)
        frames = [await anext(stream), await anext(stream)]
        events.publish_progress("job", "j9", "postprocessing", 90.0, 0.05)
        frames.append(await anext(stream))
        events.hub.close_all()
        with pytest.raises(StopAsyncIteration):
            await anext(stream)
        return frames

    retry, sync, progress = asyncio.run(scenario())
    assert retry == "retry: 1000\n\n"
    assert sync.startswith("event: sync\ndata: ")
    assert json.loads(sync.split("data: ", 1)[1])["pending"] == 0
    assert progress.startswith("event: progress\n")
    assert json.loads(progress.split("data: ", 1)[1])["id"] == "j9"


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[SidecarProcess]:
    seed_device(tmp_path / "kensa.db")
    proc = SidecarProcess(tmp_path)
    proc.start()
    yield proc
    proc.kill()


def test_events_over_http_need_the_token_as_header_or_query(sidecar: SidecarProcess) -> None:
    with httpx.Client(base_url=sidecar.base_url, timeout=10) as anon:
        assert anon.get("/events").status_code == 401
        assert anon.get("/events", params={"token": "wrong"}).status_code == 401
        # The query token works on /events only.
        other = anon.get("/sessions/interrupted", params={"token": sidecar.token})
        assert other.status_code == 401
        with anon.stream("GET", "/events", params={"token": sidecar.token}) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            assert r.headers["cache-control"] == "no-store"
            lines = r.iter_lines()
            name = next(line for line in lines if line.startswith("event:"))
            data = json.loads(next(lines).removeprefix("data: "))
        assert name == "event: sync"
        assert set(data) >= {
            "online",
            "pending",
            "oldest_pending_age_s",
            "last_success_at",
            "last_error",
        }
        rebound = anon.get(
            "/events", params={"token": sidecar.token}, headers={"Host": "evil.example"}
        )
        assert rebound.status_code == 403
    with sidecar.client() as client, client.stream("GET", "/events") as r:
        assert r.status_code == 200
