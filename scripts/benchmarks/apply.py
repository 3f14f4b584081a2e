"""Apply throughput of the queue processor alone: a backlog already in ``tauri_sync_queue``.

``--devices`` tablets each push ``--inspections`` inspections through the server's push path
(``sync.server.push.store_batch``): per inspection a target, a session, an image, an AI result,
a verdict and the session's completion, each with the audit entry the tablet chains to it. Then
one processor (``sync.server.processor.QueueProcessor``) applies the whole backlog on the real
PostgreSQL while a statement counter listens on its engine.

    scripts/bench apply [--devices 20] [--inspections 25]

Figures: ``rows``, ``seconds``, ``rows_s``, ``statements_per_row``, and the CPU time per row of
the processor (this process, with the statement counter's own small share) and of PostgreSQL
(``processor_cpu_us_per_row``, ``postgresql_cpu_us_per_row``): on a shared machine the wall-clock
rate moves with the neighbours, the CPU per row much less. At the end every row is applied (none
refused, none pending) or the run fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


class _Tablet:
    """One tablet's operations and audit chain, as the tablet's sync sends them."""

    def __init__(self, device_id: str, name: str) -> None:
        from sync.server.auth import DeviceIdentity

        self.identity = DeviceIdentity(uuid.UUID(device_id), name, "tablet")
        self.seq = 0
        self.prev: str | None = None
        self.entries = 0
        self.rows: dict[str, dict[str, Any]] = {}

    def _op(self, entity_type: str, key: str, operation: str,
            data: dict[str, Any]) -> dict[str, Any]:
        self.seq += 1
        return {"seq": self.seq, "op_id": str(uuid.uuid4()), "entity_type": entity_type,
                "entity_id": key, "operation": operation, "data": data}

    def _change(self, entity: str, key: str, operation: str, data: dict[str, Any],
                username: str | None = "tanaka") -> list[dict[str, Any]]:
        from schema.formats import audit as fmt

        travels = {k: v for k, v in data.items()
                   if k not in ("base_version", "user_server_id", "actor_username")}
        row = self.rows[key] = {**self.rows.get(key, {}), **travels}
        prev = self.prev or fmt.GENESIS
        self.entries += 1
        entry_id = str(uuid.uuid4())
        fields: dict[str, Any] = {
            "id": entry_id, "seq": self.entries,
            "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "user_id": 2,
            "user_server_id": None, "username": username, "role": "inspector",
            "entity": entity, "entity_id": key, "action": operation.lower(), "changes": None,
            "reason": None, "detail": None, "row_digest": fmt.row_digest(entity, row),
            "prev_hash": prev,
        }
        self.prev = fmt.entry_hash(prev, fields)
        return [self._op(entity, key, operation, data),
                self._op("audit_entry", entry_id, "INSERT", {**fields, "hash": self.prev})]

    def inspection(self) -> list[dict[str, Any]]:
        now = datetime.now(UTC).isoformat()
        ids = {k: str(uuid.uuid4()) for k in ("target", "session", "image", "ai", "check")}
        return [
            *self._change("inspection_target", ids["target"], "INSERT", {
                "id": ids["target"], "product_id": "BRK-100", "batch_id": "A12-3456",
                "qr_code": "{}", "created_at": now}),
            *self._change("inspection_session", ids["session"], "INSERT", {
                "id": ids["session"], "target_id": ids["target"], "status": "in_progress",
                "started_at": now, "version": 1, "user_server_id": None,
                "username": "tanaka"}),
            *self._change("inspection_image", ids["image"], "INSERT", {
                "id": ids["image"], "session_id": ids["session"], "sha256": "a" * 64,
                "file_size": 10, "created_at": now}),
            *self._change("ai_inspection_result", ids["ai"], "INSERT", {
                "id": ids["ai"], "session_id": ids["session"], "image_id": ids["image"],
                "overall_result": "OK", "confidence": 0.91, "processing_time": 0.05,
                "detailed_results": '{"label": "ok"}', "model_hashes": ["b" * 64],
                "step_timings": [{"node": "model", "op": "onnx", "stage": "infer",
                                  "start_ms": 1.0, "ms": 30.0}],
                "version": 1, "created_at": now}, username=None),
            *self._change("human_verification_result", ids["check"], "INSERT", {
                "id": ids["check"], "session_id": ids["session"], "ai_result_id": ids["ai"],
                "final_result": "OK", "verification_time": 2.5, "username": "tanaka",
                "user_server_id": None, "version": 1, "created_at": now}),
            *self._change("inspection_session", ids["session"], "UPDATE", {
                "id": ids["session"], "status": "completed", "result": "OK",
                "completed_at": now, "base_version": 1, "version": 2}),
        ]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench apply")
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--inspections", type=int, default=25)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--statements", action="store_true",
                        help="list the statements the processor ran, most frequent first")
    return parser.parse_args(argv)


def run(argv: list[str] | None = None) -> dict[str, object]:
    import sqlalchemy as sa

    from schema.db import Database, create_engine
    from sync.server import masters
    from sync.server.processor import QueueProcessor
    from sync.server.push import store_batch
    from sync.server.settings import ServerSettings
    from tests.support import cpu
    from tests.support.postgres import running_cluster
    from tests.support.sync_harness import seed_site

    args = parse(argv or [])
    settings = ServerSettings(data_dir=Path("/nonexistent"))
    with running_cluster() as cluster, tempfile.TemporaryDirectory() as tmp:
        url = cluster.url(cluster.create_database())
        seed_site(url, (Path(tmp) / "files").as_uri())
        db = Database(create_engine(url))
        try:
            tablets = []
            with db.atomic() as session:
                for i in range(args.devices):
                    device, _ = masters.add_device(session, f"BENCH-{i:04d}")
                    tablets.append(_Tablet(str(device.id), f"BENCH-{i:04d}"))
            for tablet in tablets:
                ops = [op for _ in range(args.inspections) for op in tablet.inspection()]
                for start in range(0, len(ops), 500):
                    body = {"device_id": tablet.identity.key, "device_type": "tablet",
                            "app_version": "bench", "ops": ops[start:start + 500]}
                    store_batch(db, tablet.identity, json.dumps(body).encode(), settings)
            with db.read() as session:
                rows = int(session.execute(sa.text(
                    "SELECT count(*) FROM tauri_sync_queue WHERE processed_at IS NULL")
                ).scalar_one())
            ran: Counter[str] = Counter()

            def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
                ran[" ".join(statement.split())[:120]] += 1

            sa.event.listen(db.engine, "before_cursor_execute", count)
            processor = QueueProcessor(db, batch=args.batch)
            postgres = {"postgresql": cpu.Part(names=frozenset({"postgres"}))}
            pg_before, cpu_before = cpu.sample(postgres), time.process_time()
            started = time.perf_counter()
            processor.drain()
            seconds = time.perf_counter() - started
            processor_cpu = time.process_time() - cpu_before
            pg_cpu = cpu.spent(pg_before, cpu.sample(postgres))["postgresql"]
            sa.event.remove(db.engine, "before_cursor_execute", count)
            statements = sum(ran.values())
            if args.statements:
                for text, n in ran.most_common(30):
                    print(f"{n / rows:8.3f} per row  {text}")
            with db.read() as session:
                pending, refused = session.execute(sa.text(
                    "SELECT count(*) FILTER (WHERE processed_at IS NULL), "
                    "count(*) FILTER (WHERE refusal IS NOT NULL) FROM tauri_sync_queue")).one()
                broken = int(session.execute(sa.text(
                    "SELECT count(*) FROM audit_chains WHERE status <> 'ok'")).scalar_one())
            if pending or refused or broken:
                raise SystemExit(f"apply bench: {pending} rows pending, {refused} refused, "
                                 f"{broken} chains broken after the drain")
        finally:
            db.dispose()
    figures: dict[str, object] = {
        "devices": args.devices, "rows": rows, "seconds": round(seconds, 2),
        "rows_s": round(rows / seconds, 1), "statements_per_row": round(statements / rows, 2),
        "processor_cpu_us_per_row": round(processor_cpu * 1e6 / rows),
        "postgresql_cpu_us_per_row": round(pg_cpu * 1e6 / rows),
    }
    print(f"{rows} rows from {args.devices} devices applied in {seconds:.2f} s: "
          f"{figures['rows_s']} rows/s, {figures['statements_per_row']} statements per row; "
          f"CPU per row: processor {figures['processor_cpu_us_per_row']} µs, PostgreSQL "
          f"{figures['postgresql_cpu_us_per_row']} µs")
    return figures


if __name__ == "__main__":
    print(json.dumps({"bench": "apply", **run(sys.argv[1:])}))
