"""The real sidecar process: launch protocol, a whole inspection, SIGKILL mid-way, resume."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlmodel import col, select

from schema import device as d
from schema.db import Database, create_sqlite_engine
from scripts.devkit import synthetic
from tests.support.ai_jobs import analyse
from tests.support.seed import PASSWORD, QR_JSON, photo_jpeg, qr_png, seed_device
from tests.support.sidecar import SidecarProcess


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[SidecarProcess]:
    seed_device(tmp_path / "kensa.db")
    proc = SidecarProcess(tmp_path)
    proc.start()
    yield proc
    proc.kill()


def _login(client: httpx.Client, username: str = "tanaka") -> dict[str, str]:
    r = client.post("/auth/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"X-Kensa-Session": r.json()["token"]}


def test_ready_line_and_the_gate(sidecar: SidecarProcess) -> None:
    assert sidecar.proc is not None
    assert sidecar.ready["event"] == "ready"
    assert sidecar.ready["pid"] == sidecar.proc.pid
    assert isinstance(sidecar.ready["port"], int) and sidecar.ready["port"] > 0
    with httpx.Client(base_url=sidecar.base_url) as anon:
        assert anon.get("/health").status_code == 200
        r = anon.get("/sessions/interrupted")
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "unauthorized"
        wrong = anon.get("/sessions/interrupted", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        rebound = anon.get("/health", headers={"Host": "evil.example:80"})
        assert rebound.status_code == 403
    with sidecar.client() as client:
        # The launch token alone is not a login.
        assert client.get("/sessions/interrupted").json()["error"]["code"] == "login_required"


def _outbox(data_dir: Path) -> list[d.Outbox]:
    db = Database(create_sqlite_engine(data_dir / "kensa.db"))
    try:
        with db.read() as session:
            return list(session.exec(select(d.Outbox).order_by(col(d.Outbox.seq))).all())
    finally:
        db.dispose()


def test_whole_inspection_survives_sigkill_and_resumes(sidecar: SidecarProcess) -> None:
    with sidecar.client() as client:
        client.headers.update(_login(client, "admin"))
        scan = client.post("/scan", files={"file": ("label.png", qr_png(), "image/png")})
        assert scan.status_code == 200, scan.text
        assert scan.json()["unit"]["batch_id"] == "A12-3456"
        codes = [i["item_code"] for i in scan.json()["items"]]
        assert codes == ["V-SCRATCH", "V-FOREIGN", "T-MARKING", "D-BORE", "F-PISTON"]

        started = client.post("/sessions", json={"qr_code": QR_JSON})
        assert started.status_code == 201, started.text
        sid = started.json()["id"]
        items = {i["item_code"]: i["item_id"] for i in started.json()["items"]}

        # Item 1: photo, AI result, confirmed.
        clean = synthetic.encode(synthetic.make_surface(9_000_000, None), ".jpg")
        up = client.post(
            f"/sessions/{sid}/items/{items['V-SCRATCH']}/images",
            files={"file": ("p.jpg", clean, "image/jpeg")},
        )
        assert up.status_code == 201, up.text
        # The AI result comes from the job runner, which ran the item's model on the photo.
        ai = analyse(client, sid, items["V-SCRATCH"], up.json()["id"])
        assert ai["overall_result"] == "OK" and ai["provenance"]["model_hashes"]
        v = client.post(
            f"/sessions/{sid}/items/{items['V-SCRATCH']}/verification",
            json={"final_result": "OK", "verification_time": 2.5},
        )
        assert v.status_code == 201, v.text
        # Item 2: a raw-body photo, then the battery dies.
        raw = client.post(
            f"/sessions/{sid}/items/{items['V-FOREIGN']}/images",
            content=photo_jpeg(2),
            headers={"Content-Type": "image/jpeg"},
        )
        assert raw.status_code == 201, raw.text

    before = [(o.entity_type, o.operation, o.entity_id) for o in _outbox(sidecar.data_dir)]
    assert sidecar.proc is not None
    sidecar.proc.send_signal(signal.SIGKILL)
    sidecar.proc.wait(10)

    sidecar.start()
    with sidecar.client() as client:
        client.headers.update(_login(client, "admin"))
        interrupted = client.get("/sessions/interrupted").json()
        assert [x["id"] for x in interrupted] == [sid]
        progress = {i["item_code"]: i["status"] for i in interrupted[0]["items"]}
        assert progress == {
            "V-SCRATCH": "verified",
            "V-FOREIGN": "captured",
            "T-MARKING": "pending",
            "D-BORE": "pending",
            "F-PISTON": "pending",
        }
        resumed = client.post(f"/sessions/{sid}/resume").json()
        assert resumed["items"][0]["verifications"][0]["final_result"] == "OK"
        assert len(resumed["items"][1]["images"]) == 1
        # Nothing recorded before the kill was lost, nothing was written twice; the login after
        # the restart adds only its own audit entry.
        after = [(o.entity_type, o.operation, o.entity_id) for o in _outbox(sidecar.data_dir)]
        assert after[: len(before)] == before
        assert [t for t, _, _ in after[len(before) :]] == ["audit_entry"]

        for code, result in (("V-FOREIGN", "OK"), ("T-MARKING", "OK"), ("D-BORE", "NG")):
            body: dict[str, object] = {"final_result": result, "verification_time": 1.0}
            if result == "NG":
                body |= {"defect_types": ["bore_oversize"], "severity": "major"}
            r = client.post(f"/sessions/{sid}/items/{items[code]}/verification", json=body)
            assert r.status_code == 201, r.text
        early = client.post(f"/sessions/{sid}/complete")
        assert early.status_code == 409
        assert "F-PISTON" in early.json()["error"]["message"]
        assert client.post(f"/sessions/{sid}/items/{items['F-PISTON']}/skip").status_code == 200
        # An NG result is put on file with the completer's signature (their password again).
        approve = {"signature": {"password": PASSWORD, "meaning": "approved"}}
        done = client.post(f"/sessions/{sid}/complete", json=approve)
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "completed" and done.json()["result"] == "NG"

        hist = client.get("/history", params={"inspector": "admin", "product": "BRK-100"}).json()
        assert hist["total"] == 1 and hist["rows"][0]["result"] == "NG"
        stats = client.get("/stats", params={"period": "day"}).json()
        assert sum(b["ng"] for b in stats["buckets"]) == 1
        # A completed inspection takes no more changes: 409 naming the state.
        late = client.post(f"/sessions/{sid}/items/{items['V-SCRATCH']}/skip")
        assert late.status_code == 409 and "completed" in late.json()["error"]["message"]

    assert sidecar.close_stdin_and_wait() == 0


def test_sigterm_ends_the_sidecar_cleanly(sidecar: SidecarProcess) -> None:
    assert sidecar.proc is not None
    sidecar.proc.send_signal(signal.SIGTERM)
    assert sidecar.proc.wait(15) == 0
