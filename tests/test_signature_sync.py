"""A signature reaches the real server (PostgreSQL, as a process) with the act it signs, and the
server keeps it as the tablet made it: the signer, the meaning, the record and its digest. One
that names another device's inspection, or a meaning the format does not have, is refused."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import select

from schema import device as d
from schema.db import Database, create_engine, create_sqlite_engine
from schema.migrate import upgrade_device
from sidecar.domain import signatures
from sidecar.qr.payload import parse_payload
from sidecar.services import inspection, signing
from sync.device.service import SyncService
from tests.support.sync_fixtures import Running, site_server  # noqa: F401 (fixture)
from tests.support.sync_harness import queue_facts, wait_until

pytestmark = pytest.mark.postgres

QR = '{"product_id": "BRK-100", "batch_id": "B-SIG-1"}'


@pytest.fixture
def tablet(tmp_path: Path) -> Iterator[tuple[Database, Path]]:
    home = tmp_path / "tab01"
    upgrade_device(home / "kensa.db")
    db = Database(create_sqlite_engine(home / "kensa.db"))
    try:
        yield db, home
    finally:
        db.dispose()


def server_rows(url: str, sql: str, **params: Any) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params).all())
    finally:
        engine.dispose()


def applied(url: str, device_id: str) -> None:
    wait_until(
        lambda: queue_facts(url, device_id)["unprocessed"] == 0,
        60,
        what="the queue processor to apply everything",
    )


def test_a_signature_reaches_the_server_as_the_tablet_made_it(
    tablet: tuple[Database, Path],
    site_server: Running,  # noqa: F811
) -> None:
    db, home = tablet
    sync = SyncService(db, home, "0.1.0")
    sync.connect(site_server.url, site_server.site.tokens["TAB-01"])
    assert sync.run_once().ok  # users and masters arrive
    with db.atomic() as session:
        user = session.exec(select(d.User).where(d.User.username == "tanaka")).one()
        sid = inspection.start(session, parse_payload(QR), user).id
    with db.atomic() as session:
        who = signing.check(session, user, "tanaka-pass", "discarded")
        row = inspection.cancel(session, sid)
        signed = signing.record(session, who, signatures.Meaning.DISCARDED, row, sid)
    assert sync.run_once().ok
    device_id = site_server.site.device_ids["TAB-01"]
    applied(site_server.site.database_url, device_id)

    [kept] = server_rows(
        site_server.site.database_url,
        "SELECT s.id, s.session_id, s.username, s.full_name, s.role, s.meaning, s.record_type,"
        " s.record_id, s.record_digest, s.signed_at, u.username AS user"
        " FROM signatures s LEFT JOIN users u ON u.id = s.user_id",
    )
    assert str(kept.id) == signed.id and str(kept.session_id) == sid
    assert (kept.username, kept.user, kept.full_name, kept.role) == (
        "tanaka",
        "tanaka",
        "田中",
        "inspector",
    )
    assert (kept.meaning, kept.record_type, str(kept.record_id)) == (
        "discarded",
        "inspection_session",
        sid,
    )
    assert kept.record_digest == signed.record_digest
    assert isinstance(kept.signed_at, datetime)
    assert kept.signed_at == signed.signed_at
    # The act it signs arrived with it.
    assert server_rows(
        site_server.site.database_url,
        "SELECT status FROM inspection_sessions WHERE id = :i",
        i=uuid.UUID(sid),
    ) == [("cancelled",)]

    # Another tablet cannot sign TAB-01's inspection; and a meaning outside the format is kept
    # out too.
    def push(device: str, data: dict[str, Any], operation: str = "INSERT") -> httpx.Response:
        op = {
            "seq": 10_000,
            "op_id": str(uuid.uuid4()),
            "entity_type": "signature",
            "entity_id": str(data.get("id") or uuid.uuid4()),
            "operation": operation,
            "data": data,
        }
        body = {
            "device_id": site_server.site.device_ids[device],
            "device_type": "tablet",
            "app_version": "0.1.0",
            "ops": [op],
        }
        with site_server.client(device) as client:
            return client.post("/sync/v1/push", json=body)

    forged = {
        "session_id": sid,
        "username": "suzuki",
        "role": "admin",
        "meaning": "approved",
        "record_type": "inspection_session",
        "record_id": sid,
        "record_digest": "0" * 64,
        "signed_at": "2026-11-30T10:12:00+00:00",
    }
    assert push("TAB-02", forged).status_code == 200
    applied(site_server.site.database_url, site_server.site.device_ids["TAB-02"])
    [(refusal,)] = server_rows(
        site_server.site.database_url,
        "SELECT refusal FROM tauri_sync_queue WHERE entity_type = 'signature' AND device_id = :d",
        d=site_server.site.device_ids["TAB-02"],
    )
    assert refusal == "rejected"
    # What the format does not have is refused at the edge, as that one operation.
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({**forged, "meaning": "because"}, "INSERT", "data.meaning 'because' is not one of"),
        ({**forged, "record_digest": "X" * 64}, "INSERT", "data.record_digest is not a SHA-256"),
        (
            {"id": signed.id, "meaning": "approved", "base_version": 1, "version": 2},
            "UPDATE",
            "a signature is never changed or removed (UPDATE)",
        ),
    ]
    for data, operation, says in cases:
        answer = push("TAB-01", data, operation)
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["code"] == "operation_rejected"
        [rejected] = answer.json()["error"]["detail"]["rejected"]
        assert rejected["reason"].startswith(says), rejected
    assert len(server_rows(site_server.site.database_url, "SELECT id FROM signatures")) == 1
