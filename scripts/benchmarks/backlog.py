"""A shift's backlog reaching the server once it is reachable again (SCENARIO.md, 16:05).

The device pulls its masters, the server goes away, the device records a shift offline through
the product's services (``scripts/devkit/shift.py``) — 10,000 outbox rows and 500 photos of about
2 MB — while its sync service keeps probing. Then the server
comes back on the same port and the clock runs until every row is in ``tauri_sync_queue`` and
every photo is stored under its hash; and, apart, until the queue processor has applied it all.

    scripts/bench backlog

Figures: ``rows``, ``images``, ``seconds`` (server ready → everything on the server),
``applied_seconds`` (→ everything applied to the server's tables), ``image_mb``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.sync_bench import bench_site  # noqa: E402

ROWS = 10_000
IMAGES = 500
IMAGE_SIZE = (1700, 1200)  # random-noise JPEG at quality 95: about 2 MB


def counts(pg_url: str, device_id: str) -> tuple[int, int, int]:
    import sqlalchemy as sa

    from schema.db import create_engine

    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.text(
                "SELECT (SELECT count(*) FROM tauri_sync_queue WHERE device_id = :d), "
                "(SELECT count(*) FROM tauri_sync_queue WHERE device_id = :d "
                " AND processed_at IS NOT NULL), "
                "(SELECT count(*) FROM files WHERE kind = 'image')"), {"d": device_id}).one()
    finally:
        engine.dispose()
    return int(row[0]), int(row[1]), int(row[2])


def record_backlog(db: Any, home: Path) -> tuple[int, int, int]:
    import sqlalchemy as sa

    from scripts.devkit.shift import Shift

    def recorded() -> tuple[int, int, int]:
        with db.read() as session:
            rows = session.execute(sa.text("SELECT count(*) FROM outbox")).scalar_one()
            images, size = session.execute(sa.text(
                "SELECT count(*), coalesce(sum(file_size), 0) FROM inspection_images")).one()
        return int(rows), int(images), int(size)

    # Inspections with photos until there are enough photos, then verdicts only (a person judges
    # each item by eye) until the outbox holds the rows.
    photos = Shift.on(db, home, image_size=IMAGE_SIZE)
    while recorded()[1] < IMAGES:
        photos.inspection()
    plain = Shift.on(db, home)
    while recorded()[0] < ROWS:
        plain.inspection(photos=False)
    return recorded()


def run() -> dict[str, object]:
    from sync.device.service import SyncService

    with bench_site() as bench:
        db, home = bench.device_db()
        device_id = bench.site.device_ids["TAB-01"]
        server = bench.server()
        server.start()
        port = server.port
        service = SyncService(db, home, "0.1.0")  # type: ignore[arg-type]
        try:
            service.connect(server.url, bench.site.tokens["TAB-01"])
            assert service.run_once().ok  # 07:55: masters pulled, then the Wi-Fi drops
            server.stop()
            print("recording the offline shift…", flush=True)
            rows, images, size = record_backlog(db, home)
            print(f"backlog: {rows} outbox rows, {images} photos, {size / 1e6:.0f} MB", flush=True)
            service.start()
            time.sleep(8)  # offline for a while: failing, backing off, probing
            server.port = port
            server.start()
            ready = time.monotonic()
            on_server = applied = None
            while time.monotonic() - ready < 600:
                queued, processed, stored = counts(bench.pg_url, device_id)
                if on_server is None and queued >= rows and stored >= images:
                    on_server = time.monotonic() - ready
                if processed >= rows:
                    applied = time.monotonic() - ready
                    break
                time.sleep(0.2)
        finally:
            service.stop()
            server.kill()
            db.dispose()  # type: ignore[attr-defined]
    assert on_server is not None and applied is not None, "backlog did not reach the server"
    figures = {"rows": rows, "images": images, "image_mb": round(size / 1e6),
               "seconds": round(on_server, 1), "applied_seconds": round(applied, 1)}
    print(f"backlog on the server {on_server:.1f} s after it became reachable "
          f"({rows} rows, {images} photos, {figures['image_mb']} MB); "
          f"applied to its tables after {applied:.1f} s")
    return figures


if __name__ == "__main__":
    print(json.dumps({"bench": "backlog", **run()}))
