"""Pulling masters from a real server process: users with password hashes, targets, items with
criteria, pipelines, model files; updates and tombstones; pending local changes; full resync."""

from __future__ import annotations

import hashlib
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from argon2 import PasswordHasher
from pydantic import SecretStr
from sqlmodel import select

from schema import device as d
from schema.db import Database, create_engine
from sync.device import state
from sync.device.client import SyncClient
from sync.device.pull import Puller
from sync.device.service import SyncService
from sync.server import masters
from sync.server.changes import prune_tombstones

if TYPE_CHECKING:
    from tests.support.sync_fixtures import Running

pytestmark = pytest.mark.postgres
pytest_plugins = ("tests.support.sync_fixtures",)


def connect(db: Database, tmp_path: Path, running: Running) -> SyncService:
    sync = SyncService(db, tmp_path / "device", "0.1.0")
    assert sync.connect(running.url, running.site.tokens["TAB-01"]).verified
    return sync


def pull_cursor(db: Database) -> str | None:
    with db.read() as session:
        return state.get(session, "pull").cursor


def client(running: Running) -> SyncClient:
    return SyncClient(running.url, SecretStr(running.site.tokens["TAB-01"]), app_version="t")


def server_db(running: Running) -> Database:
    return Database(create_engine(running.site.database_url))


def test_first_pull_brings_every_master(
    device_db: Database, tmp_path: Path, site_server: Running
) -> None:
    sync = connect(device_db, tmp_path, site_server)
    report = sync.run_once()
    assert report.ok and report.pulled > 0
    with device_db.read() as session:
        targets = {t.product_code: t for t in session.exec(select(d.InspectionTargetMaster))}
        assert set(targets) == {"BRK-100", "PMP-220"} and targets["BRK-100"].version == "3"
        items = session.exec(
            select(d.InspectionItemMaster).order_by(d.InspectionItemMaster.order_sequence)
        ).all()
        assert [i.item_code for i in items] == [
            "V-SCRATCH", "V-FOREIGN", "T-MARKING", "D-BORE", "F-PISTON"]
        assert items[3].criteria == {"judgment_type": "NUMERICAL", "measurement": "bore_mm",
                                     "min": 11.95, "max": 12.05, "unit": "mm"}
        assert items[0].ai_enabled and items[0].pipeline_id is not None
        pipeline = session.get(d.Pipeline, items[0].pipeline_id)
        assert pipeline is not None and pipeline.name == "surface-scratch"
        users = {u.username: u for u in session.exec(select(d.User))}
        assert set(users) == {"admin", "tanaka", "suzuki"}
        assert PasswordHasher().verify(users["tanaka"].password_hash, "tanaka-pass")
        assert users["admin"].role == "admin" and users["tanaka"].server_id
        models = session.exec(select(d.ModelFile)).all()
    sha = site_server.site.model_sha
    assert [m.sha256 for m in models] == [sha]
    body = (tmp_path / "device" / models[0].file_path).read_bytes()
    assert hashlib.sha256(body).hexdigest() == sha
    assert pull_cursor(device_db)


def test_small_pages_keep_parents_ahead_of_children(
    device_db: Database, tmp_path: Path, site_server: Running
) -> None:
    # The target is changed last, so its change comes after its items' in the log: pages must
    # still carry it before the items that refer to it.
    sdb = server_db(site_server)
    with sdb.atomic() as session:
        masters.update_target(session, "BRK-100", description="moved to the end of the log")
    sdb.dispose()
    connect(device_db, tmp_path, site_server)
    result = Puller(device_db, tmp_path / "device", page_size=2).pull(client(site_server))
    assert result.pages > 3 and not result.deferred
    with device_db.read() as session:
        assert len(session.exec(select(d.InspectionItemMaster)).all()) == 5


def test_updates_and_tombstones_arrive_and_local_columns_stay(
    device_db: Database, tmp_path: Path, site_server: Running
) -> None:
    sync = connect(device_db, tmp_path, site_server)
    sync.run_once()
    with device_db.atomic() as session:
        tanaka = session.exec(select(d.User).where(d.User.username == "tanaka")).one()
        tanaka.failed_attempts = 2
        session.add(tanaka)
    sdb = server_db(site_server)
    with sdb.atomic() as session:
        masters.update_target(session, "BRK-100", version="4")
        masters.update_item(session, "BRK-100", "D-BORE",
                            criteria={"judgment_type": "NUMERICAL", "measurement": "bore_mm",
                                      "min": 11.98, "max": 12.02})
        masters.add_item(session, "BRK-100", item_code="V-PAINT", item_name="塗装",
                         inspection_type="VISUAL", order_sequence=6,
                         criteria={"judgment_type": "BINARY", "measurement": "ok",
                                   "expected": True})
        masters.delete_item(session, "BRK-100", "F-PISTON")
        masters.update_user(session, "tanaka", password="new-pass")
        masters.delete_user(session, "suzuki")
    sdb.dispose()
    assert sync.run_once().ok
    with device_db.read() as session:
        target = session.exec(select(d.InspectionTargetMaster)
                              .where(d.InspectionTargetMaster.product_code == "BRK-100")).one()
        assert target.version == "4"
        items = {i.item_code: i for i in session.exec(select(d.InspectionItemMaster))}
        assert items["D-BORE"].criteria["min"] == 11.98
        assert "V-PAINT" in items and items["F-PISTON"].deleted_at is not None
        users = {u.username: u for u in session.exec(select(d.User))}
    assert PasswordHasher().verify(users["tanaka"].password_hash, "new-pass")
    assert users["tanaka"].failed_attempts == 2  # the device's own lockout state
    assert users["suzuki"].is_active is False


def test_a_row_with_pending_local_changes_is_not_overwritten(
    device_db: Database, tmp_path: Path, site_server: Running
) -> None:
    connect(device_db, tmp_path, site_server)
    puller = Puller(device_db, tmp_path / "device")
    puller.pull(client(site_server))
    with device_db.read() as session:
        target = session.exec(select(d.InspectionTargetMaster)
                              .where(d.InspectionTargetMaster.product_code == "PMP-220")).one()
    cursor_before = pull_cursor(device_db)
    with device_db.atomic() as session:
        session.add(d.Outbox(entity_type="inspection_target", entity_id=target.id,
                             operation="UPDATE", data={"base_version": 1}))
    sdb = server_db(site_server)
    with sdb.atomic() as session:
        masters.update_target(session, "PMP-220", product_name="changed on the server")
    sdb.dispose()
    result = puller.pull(client(site_server))
    assert result.deferred
    assert pull_cursor(device_db) == cursor_before
    with device_db.read() as session:
        assert session.get(d.InspectionTargetMaster, target.id).product_name == "オイルポンプ"
    with device_db.atomic() as session:
        for row in session.exec(select(d.Outbox)):
            session.delete(row)
    assert not puller.pull(client(site_server)).deferred
    with device_db.read() as session:
        renamed = session.get(d.InspectionTargetMaster, target.id)
        assert renamed is not None and renamed.product_name == "changed on the server"


def test_an_expired_cursor_triggers_a_full_resync(
    device_db: Database, tmp_path: Path, site_server: Running
) -> None:
    sync = connect(device_db, tmp_path, site_server)
    sync.run_once()
    stray = str(uuid.uuid4())
    with device_db.atomic() as session:
        session.add(d.InspectionTargetMaster(id=stray, product_code="OLD-1", product_name="x",
                                             version="1"))
    sdb = server_db(site_server)
    with sdb.atomic() as session:
        masters.delete_target(session, "PMP-220")
        masters.add_target(session, "NEW-1", "new product")
    with sdb.atomic() as session:
        assert prune_tombstones(session, timedelta(0)) == 1
    sdb.dispose()
    result = Puller(device_db, tmp_path / "device").pull(client(site_server))
    assert result.resynced
    with device_db.read() as session:
        targets = {t.product_code: t for t in session.exec(select(d.InspectionTargetMaster))}
    assert targets["PMP-220"].deleted_at is not None
    assert targets["OLD-1"].deleted_at is not None  # the server no longer has it
    assert targets["NEW-1"].deleted_at is None and targets["BRK-100"].deleted_at is None


def test_a_page_and_its_cursor_commit_together(device_db: Database, tmp_path: Path) -> None:
    target, item = str(uuid.uuid4()), str(uuid.uuid4())
    pages = {
        None: {"changes": [{"cursor": "e:1", "entity_type": "target", "entity_id": target,
                            "op": "UPSERT", "data": {"id": target, "product_code": "A-1",
                                                     "product_name": "a", "version": "1"}}],
               "cursor": "e:1", "has_more": True},
        # An item whose target the device does not have: the page cannot commit.
        "e:1": {"changes": [{"cursor": "e:2", "entity_type": "item", "entity_id": item,
                             "op": "UPSERT", "data": {
                                 "id": item, "target_id": str(uuid.uuid4()), "item_code": "X",
                                 "item_name": "x", "inspection_type": "VISUAL",
                                 "criteria": {}, "order_sequence": 1}},
                            {"cursor": "e:2", "entity_type": "target", "entity_id": target,
                             "op": "DELETE"}],
                "cursor": "e:2", "has_more": False},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/auth"):
            return httpx.Response(200, json={
                "access_token": "a", "expires_in": 60, "device_id": "d", "device_name": "n",
                "device_type": "tablet", "last_applied_seq": 0})
        return httpx.Response(200, json=pages[request.url.params.get("cursor")])

    mock = SyncClient("https://server.test", SecretStr("kd_x"), app_version="t",
                      transport=httpx.MockTransport(handler))
    with pytest.raises(Exception, match="FOREIGN KEY"):
        Puller(device_db, tmp_path).pull(mock)
    assert pull_cursor(device_db) == "e:1"
    with device_db.read() as session:
        row = session.get(d.InspectionTargetMaster, target)
        assert row is not None and row.deleted_at is None  # page 2 left no trace
        assert session.get(d.InspectionItemMaster, item) is None


def test_a_refused_update_comes_back_as_set_aside(
    device_db: Database, tmp_path: Path, site_server: Running
) -> None:
    sync = connect(device_db, tmp_path, site_server)
    target, inspection = str(uuid.uuid4()), str(uuid.uuid4())
    ops = [
        ("inspection_target", target, "INSERT",
         {"id": target, "product_id": "BRK-100", "batch_id": "A12-3456", "qr_code": "{}"}),
        ("inspection_session", inspection, "INSERT",
         {"id": inspection, "target_id": target, "status": "in_progress", "version": 1}),
        ("inspection_session", inspection, "UPDATE",
         {"id": inspection, "status": "completed", "base_version": 1, "version": 2}),
        # Made from version 1 as well, claiming to reach 3: the server keeps its version 2.
        ("inspection_session", inspection, "UPDATE",
         {"id": inspection, "status": "cancelled", "base_version": 1, "version": 3}),
    ]
    with device_db.atomic() as session:
        for entity_type, key, operation, data in ops:
            session.add(d.Outbox(entity_type=entity_type, entity_id=key, operation=operation,
                                 data=data))
    assert sync.run_once().pushed == 4
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not sync.status().set_aside:
        time.sleep(0.3)
        sync.run_once()
    refused = sync.status().set_aside
    assert [(r.operation, r.entity_id) for r in refused] == [("UPDATE", inspection)]
    assert refused[0].reason == "conflict: server holds version 2; update was 1->3"
    assert sync.status().pending_rows == 0


@pytest.mark.parametrize(
    "bad",
    ["../../elsewhere/victim", "/etc/passwd", "..", "", "A" * 64, "a" * 63, "a" * 65,
     "a" * 63 + "/", "g" * 64, "a" * 64 + "\u0000", "./" + "a" * 62],
)
def test_a_model_id_that_is_not_a_sha256_never_becomes_a_path(tmp_path: Path, bad: str) -> None:
    from sync.device.pull import UnsafeId, id_problem, model_path
    from sync.protocol import Change

    with pytest.raises(UnsafeId):
        model_path(tmp_path, bad)
    assert id_problem(Change(cursor="c", entity_type="model", entity_id=bad, op="DELETE"))


@pytest.mark.parametrize(
    ("entity_type", "entity_id", "data", "ok"),
    [
        ("target", str(uuid.UUID(int=1)), {"id": str(uuid.UUID(int=1))}, True),
        ("target", "t-1", {"id": "t-1"}, False),
        ("user", str(uuid.UUID(int=2)), {"id": str(uuid.UUID(int=3))}, False),  # data disagrees
        ("model", "a" * 64, {"sha256": "b" * 64}, False),
        ("model", "a" * 64, {"sha256": "a" * 64}, True),
        ("session", str(uuid.UUID(int=4)), {"id": str(uuid.UUID(int=4))}, False),  # not a master
    ],
)
def test_pulled_ids_are_checked_before_use(
    entity_type: str, entity_id: str, data: dict[str, str], ok: bool
) -> None:
    from sync.device.pull import id_problem
    from sync.protocol import Change

    change = Change(cursor="c", entity_type=entity_type, entity_id=entity_id, op="UPSERT",
                    data=data)
    assert (id_problem(change) is None) is ok
