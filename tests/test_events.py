"""``GET /events`` (server-sent events) and the progress hub behind it."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from schema.db import Database
from sidecar import events
from sidecar.api import routes_events
from sidecar.api.tickets import MAX_OUTSTANDING, EventTickets
from tests.support.seed import PASSWORD, seed_device
from tests.support.sidecar import SidecarProcess


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
    # A stage with nothing measured to estimate from travels without a number.
    async def unknown() -> events.Event | None:
        hub = events.Hub()
        sub = hub.open()
        hub.publish("progress", {"kind": "job", "id": "j2", "stage": "preprocessing",
                                 "percentage": None, "eta_s": None})
        event = await sub.get(2.0)
        sub.close()
        return event

    event = asyncio.run(unknown())
    assert event is not None and (event.data["percentage"], event.data["eta_s"]) == (None, None)
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
    assert json.loads(sync.split("data: ", 1)[1])["pending_rows"] == 0
    assert progress.startswith("event: progress\n")
    assert json.loads(progress.split("data: ", 1)[1])["id"] == "j9"


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[SidecarProcess]:
    seed_device(tmp_path / "kensa.db")
    proc = SidecarProcess(tmp_path)
    proc.start()
    yield proc
    proc.kill()


def test_events_over_http_need_the_token_as_header_or_a_single_use_ticket(
    sidecar: SidecarProcess,
) -> None:
    with httpx.Client(base_url=sidecar.base_url, timeout=10) as anon:
        assert anon.get("/events").status_code == 401
        # The launch token never travels in a URL, not even on the one path EventSource opens.
        assert anon.get("/events", params={"token": sidecar.token}).status_code == 401
        assert anon.get("/events", params={"ticket": "made-up"}).status_code == 401
        # A ticket needs the token in the header.
        assert anon.post("/events/ticket").status_code == 401
        auth = {"Authorization": f"Bearer {sidecar.token}"}
        issued = anon.post("/events/ticket", headers=auth)
        assert issued.status_code == 200, issued.text
        ticket, ttl = issued.json()["ticket"], issued.json()["expires_in_s"]
        assert len(ticket) >= 40 and 0 < ttl <= 60
        # A ticket opens nothing but the stream.
        other = anon.get("/sessions/interrupted", params={"ticket": ticket})
        assert other.status_code == 401
        with anon.stream("GET", "/events", params={"ticket": ticket}) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            assert r.headers["cache-control"] == "no-store"
            lines = r.iter_lines()
            name = next(line for line in lines if line.startswith("event:"))
            data = json.loads(next(lines).removeprefix("data: "))
        assert name == "event: sync"
        assert set(data) >= {
            "online",
            "pending_rows",
            "oldest_pending_age_s",
            "last_success_at",
            "last_error",
            "set_aside_count",
        }
        # Spent: the same ticket opens nothing a second time.
        assert anon.get("/events", params={"ticket": ticket}).status_code == 401
        fresh = anon.post("/events/ticket", headers=auth).json()["ticket"]
        rebound = anon.get("/events", params={"ticket": fresh}, headers={"Host": "evil.example"})
        assert rebound.status_code == 403
    with sidecar.client() as client, client.stream("GET", "/events") as r:
        assert r.status_code == 200


def test_an_event_ticket_expires_and_is_spent_once() -> None:
    now = [100.0]
    tickets = EventTickets(ttl_s=30.0, clock=lambda: now[0])
    first, second = tickets.issue(), tickets.issue()
    assert first != second
    assert tickets.redeem(first) and not tickets.redeem(first)
    now[0] += 30.0
    assert not tickets.redeem(second)
    assert not tickets.redeem("")
    # However many are asked for and never used, only a bounded number are kept.
    many = [tickets.issue() for _ in range(MAX_OUTSTANDING + 10)]
    assert not tickets.redeem(many[0]) and tickets.redeem(many[-1])


def _changed_events(sidecar: SidecarProcess, act: Any, wanted: int) -> list[dict[str, Any]]:
    """The first ``wanted`` ``changed`` events heard while ``act()`` runs beside the stream."""
    heard: list[dict[str, Any]] = []
    with sidecar.client() as client, client.stream("GET", "/events") as stream:
        lines = stream.iter_lines()
        next(line for line in lines if line.startswith("event: sync"))
        act()
        for line in lines:
            if line == "event: changed":
                heard.append(json.loads(next(lines).removeprefix("data: ")))
                if len(heard) == wanted:
                    break
    return heard


def test_a_write_to_an_inspection_is_announced_and_a_refused_one_is_not(
    sidecar: SidecarProcess,
) -> None:
    with sidecar.client() as client:
        login = client.post("/auth/login", json={"username": "tanaka", "password": PASSWORD})
        client.headers["X-Kensa-Session"] = login.json()["token"]
        sessions = []
        for serial in ("S-1", "S-2"):
            qr = json.dumps({"product_id": "BRK-100", "batch_id": "A12-3456", "serial": serial})
            started = client.post("/sessions", json={"qr_code": qr})
            assert started.status_code == 201, started.text
            sessions.append(started.json())
        first, second = sessions
        required = next(i for i in first["items"] if i["required"])
        optional = next(i for i in second["items"] if not i["required"])

        def act() -> None:
            # Refused (a required item cannot be skipped): nothing changed, nothing said.
            refused = client.post(f"/sessions/{first['id']}/items/{required['item_id']}/skip")
            assert refused.status_code == 409
            done = client.post(f"/sessions/{second['id']}/items/{optional['item_id']}/skip")
            assert done.status_code == 200

        heard = _changed_events(sidecar, act, wanted=1)
    assert heard == [{"session_id": second["id"]}]
