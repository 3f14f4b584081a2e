"""Masters in both languages: the product's and each item's English name are published on a real
server (PostgreSQL), pulled by a tablet with the rest of the master, and answered by the
sidecar's API beside the name; a master without one answers none (the UI shows the name)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlmodel import select

from schema import device as d
from schema.db import Database, create_engine
from sidecar.api import views
from sync.device.service import SyncService
from sync.server import audit, masters

if TYPE_CHECKING:
    from tests.support.sync_fixtures import Running

pytestmark = pytest.mark.postgres
pytest_plugins = ("tests.support.sync_fixtures",)


def test_english_names_travel_with_the_masters(
    device_db: Database, tmp_path: Path, site_server: Running
) -> None:
    server = Database(create_engine(site_server.site.database_url))
    try:
        with server.atomic() as session:
            masters.update_target(session, "BRK-100", product_name_en="Brake caliper")
            masters.update_item(session, "BRK-100", "D-BORE", item_name_en="Bore diameter")
            # A later edit that does not name the English name keeps it.
            masters.update_item(session, "BRK-100", "D-BORE", required=True)
            report = audit.verify(session)
        # The server's own chain still verifies: the new columns are digested like the others.
        assert report.clean, report.problems
    finally:
        server.dispose()

    sync = SyncService(device_db, tmp_path / "device", "0.1.0")
    assert sync.connect(site_server.url, site_server.site.tokens["TAB-01"]).verified
    assert sync.run_once().ok
    with device_db.read() as session:
        target = session.exec(select(d.InspectionTargetMaster)
                              .where(d.InspectionTargetMaster.product_code == "BRK-100")).one()
        items = {i.item_code: i for i in session.exec(select(d.InspectionItemMaster))}
        assert target.product_name == "ブレーキキャリパー"
        assert target.product_name_en == "Brake caliper"
        assert items["D-BORE"].item_name_en == "Bore diameter"
        assert items["D-BORE"].item_name  # the name stays as it was
        other = session.exec(select(d.InspectionTargetMaster)
                             .where(d.InspectionTargetMaster.product_code == "PMP-220")).one()
        # What the API answers for the scan's target and its items.
        assert views.target_master(target).product_name_en == "Brake caliper"
        assert views.target_master(other).product_name_en is None
        assert views.item_master(items["D-BORE"]).item_name_en == "Bore diameter"
        assert views.item_master(items["V-SCRATCH"]).item_name_en is None
