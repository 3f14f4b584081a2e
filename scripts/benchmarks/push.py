"""Push throughput: outbox rows from the device's SQLite, over HTTP to the sync server, into
PostgreSQL's ``tauri_sync_queue`` (deduplicated, answered, deleted on the device) — beside a raw
psycopg COPY of the same rows into a copy of that table, measured in the same run.

    scripts/bench push

Figures: ``rows_s`` (end to end), ``copy_rows_s`` (raw COPY), ``ratio``. The server runs without
queue processors here, so the figure is ingestion; applying is measured by ``backlog``.
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

ROWS = 20_000


def _payload(i: int, key: str, session: str) -> dict[str, Any]:
    """About the size of a real AI result row (its whole record, as an INSERT carries)."""
    return {
        "id": key, "session_id": session, "item_id": None, "image_id": None,
        "pipeline_id": None, "pipeline_version": "3", "model_sha256": "ab" * 32,
        "overall_result": "OK" if i % 7 else "NG", "confidence": 0.93,
        "processing_time": 0.041, "detailed_results": '{"label": "ok", "probs": [0.93, 0.07]}',
        "measurements": {"defect_probability": 0.07},
        "timings": {"decode": 4.1, "pre": 3.2, "infer": 28.4, "post": 0.6, "judge": 0.2},
        "created_at": datetime.now(UTC).isoformat(), "updated_at": None, "version": 1,
    }


def fill_outbox(db: Any, rows: int) -> list[tuple[Any, ...]]:
    import sqlalchemy as sa

    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    session_id = str(uuid.uuid4())
    values = []
    for i in range(rows):
        key = str(uuid.uuid4())
        values.append({"op_id": str(uuid.uuid4()), "entity_type": "ai_inspection_result",
                       "entity_id": key, "operation": "INSERT",
                       "data": json.dumps(_payload(i, key, session_id)), "priority": 0,
                       "retry_count": 0, "created_at": now})
    with db.atomic() as session:
        session.execute(sa.text(
            "INSERT INTO outbox (op_id, entity_type, entity_id, operation, data, priority, "
            "retry_count, created_at) VALUES (:op_id, :entity_type, :entity_id, :operation, "
            ":data, :priority, :retry_count, :created_at)"), values)
    return [(v["op_id"], v["entity_id"], v["data"]) for v in values]


def raw_copy(pg_url: str, device_id: str, rows: list[tuple[Any, ...]]) -> float:
    """COPY the same rows into a scratch table shaped like tauri_sync_queue; rows/s."""
    import psycopg

    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE copy_baseline (LIKE tauri_sync_queue INCLUDING DEFAULTS)")
        conn.commit()
        now = datetime.now(UTC)
        started = time.perf_counter()
        with conn.cursor() as cur, cur.copy(
            "COPY copy_baseline (device_id, device_type, app_version, entity_type, entity_id, "
            "operation, data, priority, retry_count, created_at, op_id, seq) FROM STDIN"
        ) as copy:
            for seq, (op_id, entity_id, data) in enumerate(rows, start=1):
                copy.write_row((device_id, "tablet", "0.1.0", "ai_inspection_result", entity_id,
                                "INSERT", data, 0, 0, now, op_id, seq))
        conn.commit()
        elapsed = time.perf_counter() - started
        conn.execute("DROP TABLE copy_baseline")
        conn.commit()
    return len(rows) / elapsed


def run() -> dict[str, object]:
    from pydantic import SecretStr

    from sync.device.client import SyncClient
    from sync.device.outbox_store import SqliteOutbox
    from sync.device.push import Pusher

    with bench_site() as bench:
        db, _ = bench.device_db()
        rows = fill_outbox(db, ROWS)
        device_id = bench.site.device_ids["TAB-01"]
        with bench.server(processors=0) as server:
            client = SyncClient(server.url, SecretStr(bench.site.tokens["TAB-01"]),
                                app_version="0.1.0")
            client.authenticate()
            pusher = Pusher(SqliteOutbox(db), device_type="tablet", app_version="0.1.0")
            started = time.perf_counter()
            result = pusher.push(client, device_id, budget_s=600)
            elapsed = time.perf_counter() - started
            client.close()
        db.dispose()  # type: ignore[attr-defined]
        assert result.pushed == ROWS, result
        copy_rows_s = raw_copy(bench.pg_url, device_id, rows)
    rows_s = ROWS / elapsed
    figures = {"rows": ROWS, "rows_s": round(rows_s), "copy_rows_s": round(copy_rows_s),
               "ratio": round(rows_s / copy_rows_s, 3), "batches": result.batches,
               "seconds": round(elapsed, 2)}
    print(f"push: {ROWS} outbox rows in {elapsed:.2f} s = {rows_s:,.0f} rows/s end to end "
          f"({result.batches} batches)")
    print(f"raw psycopg COPY of the same rows: {copy_rows_s:,.0f} rows/s "
          f"(push is {figures['ratio']}x of it)")
    return figures


if __name__ == "__main__":
    print(json.dumps({"bench": "push", **run()}))
