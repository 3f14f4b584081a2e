"""Who may point a tablet at a server, and what a server may change on the tablet: through the
real sidecar process, connected to the real sync server on PostgreSQL (and, where the point is a
server that is not ours, to a rogue one)."""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from sidecar.security import hash_password
from tests.support.rogue import RogueServer
from tests.support.sidecar import SidecarProcess
from tests.support.sync_fixtures import Running, site_server  # noqa: F401 (fixture)
from tests.support.sync_harness import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

KENSA = str(Path(sys.executable).with_name("kensa"))


@dataclass
class Tablet:
    sidecar: SidecarProcess
    site: Running

    def login(self, username: str, password: str | None = None) -> httpx.Client:
        client = self.sidecar.client()
        answer = client.post("/auth/login", json={
            "username": username,
            "password": password or self.site.site.passwords[username]})
        assert answer.status_code == 200, answer.text
        client.headers["X-Kensa-Session"] = answer.json()["token"]
        return client

    def status(self) -> dict[str, Any]:
        with self.sidecar.client() as client:
            answer = client.get("/sync/status")
            assert answer.status_code == 200
            return dict(answer.json())


@pytest.fixture
def tablet(site_server: Running, tmp_path: Path) -> Iterator[Tablet]:  # noqa: F811
    """TAB-01, connected to the site's server with users and masters pulled, running."""
    device = tmp_path / "tab01"
    for args in (["connect", "--server", site_server.url, "--token",
                  site_server.site.tokens["TAB-01"]], ["sync-now"]):
        subprocess.run([KENSA, "device", *args, "--data-dir", str(device)],
                       check=True, capture_output=True, timeout=120)
    sidecar = SidecarProcess(device, env={"KENSA_AI_WORKERS": "0",
                                          "KENSA_SYNC_INTERVAL_S": "3600"})
    sidecar.start()
    try:
        yield Tablet(sidecar, site_server)
    finally:
        sidecar.kill()


def _synced(client: httpx.Client) -> bool:
    """Run a sync now (one may already be running after a write); True once it ran clean and
    nothing is left to push."""
    ran = client.post("/sync/now", params={"wait": "true"}).json()
    return bool(ran["report"]["ok"] and ran["status"]["pending_rows"] == 0)


def _queued_session_ids(database_url: str) -> set[str]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT entity_id FROM tauri_sync_queue WHERE entity_type = 'inspection_session'"))
            return {str(r[0]) for r in rows}
    finally:
        engine.dispose()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("who", "status"), [(None, 401), ("tanaka", 403), ("admin", 200)]
)
def test_connecting_needs_a_supervisors_login(
    tablet: Tablet, who: str | None, status: int
) -> None:
    client = tablet.login(who) if who else tablet.sidecar.client()
    with closing(client):
        answer = client.post("/sync/connect", json={
            "server_url": tablet.site.url, "token": tablet.site.site.tokens["TAB-01"]})
    assert answer.status_code == status, answer.text
    assert tablet.status()["server_url"] == tablet.site.url


def test_a_failed_connect_keeps_the_working_connection(tablet: Tablet) -> None:
    url = tablet.site.url
    host_port = url.removeprefix("http://")
    attempts = [
        # an address nothing answers at, with a made-up token
        ({"server_url": f"http://127.0.0.1:{_closed_port()}", "token": "kd_bogus"}, 502),
        # the right server, a token it refuses
        ({"server_url": url, "token": "kd_bogus"}, 401),
        # credentials in the URL are refused, never stored or shown
        ({"server_url": f"http://user:s3cr3t@{host_port}",
          "token": tablet.site.site.tokens["TAB-01"]}, 400),
        ({"server_url": "file:///etc/passwd", "token": "kd_x"}, 400),
        ({"server_url": url + "\u0000", "token": "kd_x"}, 422),
    ]
    with closing(tablet.login("admin")) as admin:
        for body, status in attempts:
            answer = admin.post("/sync/connect", json=body)
            assert answer.status_code == status, (body, answer.text)
            assert "s3cr3t" not in answer.text
        status_now = tablet.status()
        assert status_now["server_url"] == url and "s3cr3t" not in str(status_now)
        # The kept connection still carries records to the server.
        with closing(tablet.login("tanaka")) as tanaka:
            started = tanaka.post("/sessions", json={
                "qr_code": '{"product_id": "BRK-100", "batch_id": "B-1"}'})
            assert started.status_code == 201, started.text
            wait_until(lambda: _synced(tanaka), 60, what="the records to reach the server")
        # (A push follows every write, so the outbox may be empty already: ask the server.)
        assert started.json()["id"] in _queued_session_ids(tablet.site.site.database_url)


def test_moving_to_another_registration_shows_both_and_needs_confirmation(
    tablet: Tablet,
) -> None:
    site = tablet.site
    body = {"server_url": site.url, "token": site.site.tokens["TAB-02"]}
    with closing(tablet.login("admin")) as admin:
        asked = admin.post("/sync/connect", json=body)
        assert asked.status_code == 409, asked.text
        error = asked.json()["error"]
        assert error["code"] == "confirm_replace"
        assert error["detail"]["current_device_name"] == "TAB-01"
        assert error["detail"]["new_device_name"] == "TAB-02"
        assert tablet.status()["device_name"] == "TAB-01"
        wrong = admin.post("/sync/connect", json={**body, "replace_server_url": "http://x.test"})
        assert wrong.status_code == 409
        moved = admin.post("/sync/connect", json={**body, "replace_server_url": site.url})
        assert moved.status_code == 200, moved.text
    assert tablet.status()["device_name"] == "TAB-02"


def _victims(tmp_path: Path) -> tuple[Path, Path]:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    relative = elsewhere / "victim.onnx"
    absolute = tmp_path / "absolute-victim.onnx"
    for path in (relative, absolute):
        path.write_bytes(b"not the tablet's to delete")
    return relative, absolute


def test_a_rogue_server_can_neither_take_logins_nor_delete_files(
    tablet: Tablet, tmp_path: Path
) -> None:
    relative, absolute = _victims(tmp_path)
    with closing(tablet.login("admin")) as admin:
        assert admin.get("/auth/me").json()["role"] == "admin"
    rogue_hash = hash_password("rogue-pass-123")

    def user(name: str, role: str, server_id: str | None = None) -> dict[str, Any]:
        sid = server_id or str(uuid.uuid4())
        return {"cursor": "r:1", "entity_type": "user", "entity_id": sid, "op": "UPSERT",
                "data": {"id": sid, "username": name, "password_hash": rogue_hash,
                         "role": role, "is_active": True, "version": 99}}

    tombstone = {"cursor": "r:1", "entity_type": "model", "op": "DELETE"}
    changes = [
        user("tanaka", "admin"),                      # take over an inspector, promote it
        user("admin", "inspector"),                   # demote the supervisor
        user("newcomer", "inspector"),                # a name that is free here
        {**tombstone, "entity_id": "../../elsewhere/victim"},
        {**tombstone, "entity_id": str(absolute.with_suffix(""))},
        {**tombstone, "entity_id": "A" * 64},
    ]
    with RogueServer(changes) as rogue, closing(tablet.login("admin")) as admin:
        moved = admin.post("/sync/connect", json={
            "server_url": rogue.url, "token": "kd_anything",
            "replace_server_url": tablet.site.url})
        assert moved.status_code == 200, moved.text
        wait_until(lambda: _synced(admin), 60, what="a run against the rogue server")
    assert relative.read_bytes() == absolute.read_bytes() == b"not the tablet's to delete"
    # The tablet's own logins are untouched: real passwords work, roles are as they were.
    for name, role in (("tanaka", "inspector"), ("admin", "admin")):
        with closing(tablet.login(name)) as client:
            assert client.get("/auth/me").json()["role"] == role
        with tablet.sidecar.client() as anonymous:
            refused = anonymous.post("/auth/login",
                                     json={"username": name, "password": "rogue-pass-123"})
            assert refused.status_code == 401
    # What the rogue may do is what its address was trusted with: add a user whose name is free.
    with closing(tablet.login("newcomer", "rogue-pass-123")) as newcomer:
        assert newcomer.get("/auth/me").json()["role"] == "inspector"
