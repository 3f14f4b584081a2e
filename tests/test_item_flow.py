"""The item master's flow settings: whether a photo starts the AI by itself (``auto_analyse``) and
which defect types an item offers (``defect_types``), from the server's masters through the pull
to the tablet, with the device migration keeping what was there."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from sqlmodel import select

from schema import device as d
from schema import migrate
from schema.db import Database, create_engine, create_sqlite_engine
from schema.formats.defects import DEFECT_TYPES, DefectTypesInvalid, parse_defect_types
from sync.device.service import SyncService
from sync.errors import DocumentInvalid
from sync.server import masters

if TYPE_CHECKING:
    from tests.support.sync_fixtures import Running

pytest_plugins = ("tests.support.sync_fixtures",)


def test_defect_types_are_checked_against_the_catalogue() -> None:
    assert parse_defect_types(None) is None
    # Stored in the catalogue's order, so every tablet lists them alike.
    assert parse_defect_types(["other", "scratch"]) == ["scratch", "other"]
    for bad in ([], ["burr"], "scratch", [1]):
        with pytest.raises(DefectTypesInvalid):
            parse_defect_types(bad)
    assert len(DEFECT_TYPES) == len(set(DEFECT_TYPES))


def test_the_device_migration_keeps_items_and_offers_every_type(tmp_path: Path) -> None:
    path = tmp_path / "kensa.db"
    migrate.upgrade_device(path, "0008")
    engine = create_sqlite_engine(path)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO inspection_targets_master (id, product_code, product_name, version)"
                " VALUES ('t', 'BRK-100', 'caliper', '1')"))
            conn.execute(sa.text(
                "INSERT INTO inspection_items_master (id, target_id, item_code, item_name,"
                " inspection_type, ai_enabled, criteria, order_sequence, required)"
                " VALUES ('i', 't', 'V-SCRATCH', 'scratch', 'VISUAL', 1, '{}', 1, 1)"))
        assert migrate.upgrade_device(path) == migrate.head_revision("device")
        with engine.connect() as conn:
            row = conn.execute(sa.text(
                "SELECT auto_analyse, defect_types FROM inspection_items_master")).one()
        assert tuple(row) == (1, None)
        assert migrate.downgrade_device(path, "0008") == "0008"
        with engine.connect() as conn:
            columns = {c["name"] for c in sa.inspect(conn).get_columns("inspection_items_master")}
            assert "auto_analyse" not in columns and "defect_types" not in columns
            count = conn.execute(sa.text("SELECT count(*) FROM inspection_items_master"))
            assert count.scalar() == 1
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_the_settings_are_published_checked_and_pulled(
    device_db: Database, tmp_path: Path, site_server: Running
) -> None:
    sync = SyncService(device_db, tmp_path / "device", "0.1.0")
    assert sync.connect(site_server.url, site_server.site.tokens["TAB-01"]).verified
    sdb = Database(create_engine(site_server.site.database_url))
    try:
        with sdb.atomic() as session:
            masters.update_item(session, "BRK-100", "F-PISTON",
                                defect_types=["other", "piston_stuck"])
            masters.update_item(session, "BRK-100", "V-SCRATCH", auto_analyse=False)
        # A type no tablet has words for is refused at publish, and nothing changes.
        with pytest.raises(DocumentInvalid) as refused, sdb.atomic() as session:
            masters.update_item(session, "BRK-100", "D-BORE", defect_types=["burr"])
        assert refused.value.detail["field"] == "defect_types" and "burr" in refused.value.message
    finally:
        sdb.dispose()
    assert sync.run_once().ok
    with device_db.read() as session:
        items = {i.item_code: i for i in session.exec(select(d.InspectionItemMaster))}
    assert items["F-PISTON"].defect_types == ["piston_stuck", "other"]
    assert items["D-BORE"].defect_types is None
    assert items["V-SCRATCH"].auto_analyse is False and items["D-BORE"].auto_analyse is True


def test_the_server_command_sets_both(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from schema import server as s
    from sync.server.cli import server_app

    runner = CliRunner()
    data = ["--data-dir", str(tmp_path / "server")]

    def run(*args: str) -> str:
        result = runner.invoke(server_app, [*args, *data], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    run("target", "add", "GRB-330", "gearbox")
    run("item", "add", "GRB-330", "F-SPIN", "spin", "--type", "FUNCTION", "--order", "1",
        "--criteria", '{"judgment_type": "BINARY", "measurement": "ok", "expected": true}',
        "--defect-types", "other, piston_stuck", "--no-auto-analyse")
    refused = runner.invoke(server_app, ["item", "update", "GRB-330", "F-SPIN",
                                         "--defect-types", "burr", *data])
    assert refused.exit_code != 0 and "burr" in refused.output
    run("item", "update", "GRB-330", "F-SPIN", "--auto-analyse")
    (db,) = (tmp_path / "server").glob("*.db")
    items = s.InspectionItemMaster.__table__  # type: ignore[attr-defined]
    engine = create_sqlite_engine(db)
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.select(items.c.auto_analyse, items.c.defect_types)).one()
    finally:
        engine.dispose()
    assert row.auto_analyse is True
    assert row.defect_types == ["piston_stuck", "other"]


def test_a_verdict_names_only_the_defect_types_its_item_offers(tmp_path: Path) -> None:
    from sidecar.errors import InvalidInput
    from sidecar.qr.payload import parse_payload
    from sidecar.services import inspection

    path = tmp_path / "kensa.db"
    migrate.upgrade_device(path)
    db = Database(create_sqlite_engine(path))
    try:
        with db.atomic() as session:
            user = d.User(id=1, username="ito", password_hash="-")
            session.add(user)
            session.add(d.InspectionTargetMaster(
                id="t", product_code="PST-1", product_name="piston", version="1"))
            for order, (code, offered) in enumerate(
                    [("F-PISTON", ["piston_stuck", "other"]), ("V-ANY", None)], start=1):
                session.add(d.InspectionItemMaster(
                    id=code, target_id="t", item_code=code, item_name=code,
                    inspection_type="VISUAL", ai_enabled=False, defect_types=offered,
                    criteria={"judgment_type": "BINARY", "measurement": "ok", "expected": True},
                    order_sequence=order))
        with db.atomic() as session:
            started = inspection.start(session, parse_payload("PST-1_A12-3456_20260101T0800"),
                                       user)
        ng = inspection.Verdict("NG", 1.0, severity="minor", defect_types=["scratch"])
        with pytest.raises(InvalidInput) as refused, db.atomic() as session:
            inspection.verify(session, started.id, "F-PISTON", ng, user)
        assert refused.value.detail["field"] == "defect_types"
        assert "scratch" in refused.value.message and "piston_stuck" in refused.value.message
        with db.atomic() as session:
            item = inspection.get_item(session, started.id, "F-PISTON")
            assert item.status != "verified"  # the refused verdict left nothing behind
            assert session.exec(select(d.HumanVerificationResult)).first() is None
        # An item that names no list offers the whole catalogue, and nothing outside it.
        with pytest.raises(InvalidInput), db.atomic() as session:
            inspection.verify(session, started.id, "V-ANY",
                              inspection.Verdict("NG", 1.0, severity="minor",
                                                 defect_types=["burr"]), user)
        with db.atomic() as session:
            inspection.verify(session, started.id, "F-PISTON",
                              inspection.Verdict("NG", 1.0, severity="minor",
                                                 defect_types=["piston_stuck"]), user)
            inspection.verify(session, started.id, "V-ANY",
                              inspection.Verdict("NG", 1.0, severity="major",
                                                 defect_types=["scratch"]), user)
        with db.atomic() as session:
            results = {i.item_id: i.result for i in inspection.session_items(session, started.id)}
        assert results == {"F-PISTON": "NG", "V-ANY": "NG"}
    finally:
        db.dispose()
