"""The sidecar's sync endpoints (``sync.device.api.router``) mounted in a FastAPI app, with the
service reached through ``app.state.sync`` as the sidecar provides it."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from schema import device as d
from schema.db import Database
from sync.device.api import authorize_connect, get_sync_service, router
from sync.device.service import SyncService
from tests.test_sync_client import TOKEN, FakeServer


def app_with(service: SyncService | None, *, may_connect: bool = True) -> FastAPI:
    app = FastAPI()
    app.include_router(router)
    if may_connect:
        # The app decides who may connect (the sidecar: a supervisor's login).
        app.dependency_overrides[authorize_connect] = lambda: None
    if service is not None:
        app.state.sync = service
    return app


def test_connecting_is_refused_unless_the_app_says_who_may(
    device_db: Database, tmp_path: Path
) -> None:
    service = SyncService(device_db, tmp_path, "0.1.0",
                          transport=httpx.MockTransport(FakeServer().handler))
    client = TestClient(app_with(service, may_connect=False))
    answer = client.post("/sync/connect", json={"server_url": "https://s.test", "token": TOKEN})
    assert answer.status_code == 403
    assert client.get("/sync/status").json()["configured"] is False


def test_status_connect_and_sync_now(device_db: Database, tmp_path: Path) -> None:
    server = FakeServer()
    service = SyncService(device_db, tmp_path, "0.1.0",
                          transport=httpx.MockTransport(server.handler))
    client = TestClient(app_with(service))

    status = client.get("/sync/status").json()
    assert status["configured"] is False and status["pending_rows"] == 0

    refused = client.post("/sync/connect", json={"server_url": "https://s.test",
                                                 "token": "kd_wrong"})
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "device_token_refused"
    bad_url = client.post("/sync/connect", json={"server_url": "ftp://x", "token": TOKEN})
    assert bad_url.status_code == 400
    connected = client.post("/sync/connect", json={"server_url": "https://s.test",
                                                   "token": TOKEN})
    assert connected.status_code == 200 and connected.json()["verified"] is True
    assert TOKEN not in connected.text

    with device_db.atomic() as session:
        session.add(d.Outbox(entity_type="inspection_session", entity_id=str(uuid.uuid4()),
                             operation="INSERT", data={"x": 1}))
    status = client.get("/sync/status").json()
    assert status["configured"] and status["pending_rows"] == 1
    assert status["pending_bytes"] > 0 and status["oldest_pending_age_s"] is not None
    assert TOKEN not in str(status)

    ran = client.post("/sync/now", params={"wait": "true"}).json()
    assert ran["started"] and ran["report"]["pushed"] == 1
    assert ran["status"]["pending_rows"] == 0 and ran["status"]["online"] is True
    assert ran["status"]["set_aside"] == []


def test_the_app_can_supply_the_service_by_override(device_db: Database, tmp_path: Path) -> None:
    service = SyncService(device_db, tmp_path, "0.1.0")
    app = app_with(None)
    assert TestClient(app).get("/sync/status").status_code == 503
    app.dependency_overrides[get_sync_service] = lambda: service
    assert TestClient(app).get("/sync/status").json()["configured"] is False
