"""Pull throughput: master rows changed on the server, paged after a cursor, applied to the
device's SQLite (each page and its cursor in one transaction).

    scripts/bench pull

Figures: ``rows_s`` (end to end: server query, HTTP, device apply), ``apply_rows_s`` (the device's
page transactions alone), ``rows``, ``pages``.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.sync_bench import bench_site  # noqa: E402

TARGETS = 400
ITEMS_PER_TARGET = 50


def seed_masters(pg_url: str) -> int:
    """Bulk-insert targets and items with their change-log rows, as masters admin would."""
    import sqlalchemy as sa

    from schema import server as s
    from schema.db import create_engine

    now = datetime.now(UTC)
    targets: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    for t in range(TARGETS):
        target_id = uuid.uuid4()
        targets.append({"id": target_id, "product_code": f"P-{t:05d}",
                        "product_name": f"部品 {t}", "version": "1", "description": None,
                        "created_at": now, "updated_at": now})
        for i in range(ITEMS_PER_TARGET):
            items.append({
                "id": uuid.uuid4(), "target_id": target_id, "item_code": f"I-{i:03d}",
                "item_name": f"検査項目 {i}", "inspection_type": "DIMENSION",
                "ai_enabled": False, "pipeline_id": None, "order_sequence": i + 1,
                "required": True, "created_at": now, "updated_at": now,
                "criteria": {"judgment_type": "NUMERICAL", "measurement": "bore_mm",
                             "min": 11.95, "max": 12.05, "unit": "mm"},
            })
    changes = ([{"entity_type": "target", "entity_id": str(t["id"]), "operation": "UPSERT",
                 "changed_at": now} for t in targets]
               + [{"entity_type": "item", "entity_id": str(i["id"]), "operation": "UPSERT",
                   "changed_at": now} for i in items])
    engine = create_engine(pg_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(s.InspectionTargetMaster.__table__), targets)  # type: ignore[attr-defined]
            conn.execute(sa.insert(s.InspectionItemMaster.__table__), items)  # type: ignore[attr-defined]
            conn.execute(sa.insert(s.ChangeLog.__table__), changes)  # type: ignore[attr-defined]
    finally:
        engine.dispose()
    return len(targets) + len(items)


def run() -> dict[str, object]:
    from pydantic import SecretStr

    from sync.device.client import SyncClient
    from sync.device.pull import Puller
    from sync.protocol import ChangesPage

    with bench_site() as bench:
        seeded = seed_masters(bench.pg_url)
        db, home = bench.device_db()
        applying = [0.0]

        class TimedPuller(Puller):
            def apply_page(self, page: ChangesPage, cursor: str | None) -> Any:
                started = time.perf_counter()
                try:
                    return super().apply_page(page, cursor)
                finally:
                    applying[0] += time.perf_counter() - started

        with bench.server(processors=0) as server:
            client = SyncClient(server.url, SecretStr(bench.site.tokens["TAB-01"]),
                                app_version="0.1.0")
            client.authenticate()
            puller = TimedPuller(db, home)  # type: ignore[arg-type]
            started = time.perf_counter()
            result = puller.pull(client, budget_s=600)
            elapsed = time.perf_counter() - started
            client.close()
        db.dispose()  # type: ignore[attr-defined]
    rows = result.applied
    assert rows >= seeded, (rows, seeded)
    figures = {"rows": rows, "pages": result.pages, "rows_s": round(rows / elapsed),
               "apply_rows_s": round(rows / applying[0]), "seconds": round(elapsed, 2)}
    print(f"pull: {rows} master rows in {result.pages} pages, {elapsed:.2f} s = "
          f"{figures['rows_s']:,} rows/s end to end")
    print(f"device apply alone (page + cursor transactions): {figures['apply_rows_s']:,} rows/s")
    return figures


if __name__ == "__main__":
    print(json.dumps({"bench": "pull", **run()}))
