"""The fault shift: a device process records a shift through the product's services
(``scripts/devkit/shift.py``) while it is SIGKILLed over and over, the server is restarted, and a
fault-injecting proxy sits between them. Then the faults stop, the device finishes syncing, and
the server must hold exactly the device's history — a history the product's rules allow.

Used by ``tests/test_sync_fault.py`` (short form) and ``scripts/fault-shift`` (long form: ≥ 200
kills, ≥ 50 server restarts).
"""

from __future__ import annotations

import hashlib
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.faultproxy import FaultProxy
from tests.support.sync_harness import (
    ForkedShift,
    ServerProcess,
    device_history,
    device_max_seq,
    queue_facts,
    seed_site,
    server_history,
    stored_image_hashes,
    wait_until,
)


@dataclass
class FaultReport:
    kills: int = 0
    server_restarts: int = 0
    seconds: float = 0.0
    inspections: int = 0
    images: int = 0
    queue: dict[str, Any] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kills": self.kills, "server_restarts": self.server_restarts,
            "seconds": round(self.seconds, 1), "inspections": self.inspections,
            "images": self.images, "queue": self.queue, "faults": self.faults,
            "problems": self.problems,
        }


def run_fault_shift(
    pg_url: str,
    base: Path,
    *,
    kills: int,
    server_restarts: int,
    seed: int = 7,
    pause: tuple[float, float] = (0.3, 1.5),
    settle_timeout: float = 120.0,
    log: Any = None,
) -> FaultReport:
    rng = random.Random(seed)
    files = base / "files"
    site = seed_site(pg_url, files.as_uri())
    device_dir = base / "tab01"
    report = FaultReport()
    started = time.monotonic()
    server = ServerProcess(pg_url, base / "server", storage=files.as_uri())
    proxy = FaultProxy(0, seed=seed)
    shift = ForkedShift(
        device_dir, "", site.tokens["TAB-01"], inspections=1_000_000,
        extra_args=["--write-delay", "0.02", "--sync-interval", "0.5", "--backoff-cap", "1.0",
                    "--batch-size", "50"],
    )
    try:
        server.start()
        proxy.target_port = server.port
        proxy.start()
        shift.server_url = proxy.url
        shift.start()
        # The shift starts at 07:55 on the network: masters pulled, recording under way. Only
        # then do the kills begin, or a slow machine could kill every start before it writes.
        wait_until(lambda: _recorded(device_dir) > 0, settle_timeout, what="a first inspection")
        restart_every = max(1, kills // max(1, server_restarts))
        for index in range(kills):
            time.sleep(rng.uniform(*pause))
            shift.kill()
            report.kills += 1
            if report.server_restarts < server_restarts and index % restart_every == 0:
                server.restart(signal.SIGKILL if rng.random() < 0.5 else signal.SIGTERM)
                report.server_restarts += 1
            shift.start()
            if log and report.kills % 25 == 0:
                log(f"{report.kills} kills, {report.server_restarts} server restarts, "
                    f"faults {dict(proxy.counts)}")
        # Calm: no more faults and no new inspections (the shift finishes those a kill left
        # open); the device must drain everything by itself.
        shift.kill()
        proxy.enabled = False
        shift.start(exit_when_synced=True, args=["--inspections", "0"])
        shift.wait_event("synced", settle_timeout)
        device_id = site.device_ids["TAB-01"]
        wait_until(lambda: queue_facts(pg_url, device_id)["unprocessed"] == 0, settle_timeout,
                   what="the queue to be applied")
        report.queue = queue_facts(pg_url, device_id)
        report.faults = dict(proxy.counts)
        _compare(pg_url, device_dir, files, report)
        report.problems.extend(product_rule_problems(pg_url, device_id, device_dir / "kensa.db"))
    finally:
        shift.close()
        proxy.stop()
        server.kill()
    report.seconds = time.monotonic() - started
    return report


def _recorded(device_dir: Path) -> int:
    import sqlite3

    path = device_dir / "kensa.db"
    if not path.exists():
        return 0
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5)
    try:
        return int(conn.execute(
            "SELECT count(*) FROM inspection_sessions WHERE status = 'completed'"
        ).fetchone()[0])
    except sqlite3.Error:
        return 0  # not migrated yet
    finally:
        conn.close()


def _compare(pg_url: str, device_dir: Path, files: Path, report: FaultReport) -> None:
    top = device_max_seq(device_dir / "kensa.db")
    q = report.queue
    if not q["rows"] == q["seqs"] == q["op_ids"] == top == q["max_seq"]:
        report.problems.append(f"queue holds {q} but the device used sequences 1..{top}")
    if q["conflicts"]:
        report.problems.append(f"{q['conflicts']} conflicts")
    device = device_history(device_dir / "kensa.db")
    server = server_history(pg_url)
    for table, rows in device.items():
        lost = set(rows) - set(server[table])
        extra = set(server[table]) - set(rows)
        changed = [k for k in set(rows) & set(server[table]) if rows[k] != server[table][k]]
        if lost or extra or changed:
            report.problems.append(
                f"{table}: {len(lost)} lost, {len(extra)} extra, {len(changed)} differ"
            )
    report.inspections = sum(1 for v in device["inspection_sessions"].values()
                             if v[0] == "completed")
    hashes = {sha for sha, _ in device["inspection_images"].values()}
    report.images = len(hashes)
    missing = hashes - stored_image_hashes(pg_url)
    if missing:
        report.problems.append(f"{len(missing)} images not recorded on the server")
    for sha in hashes - missing:
        path = files / sha[:2] / sha
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != sha:
            report.problems.append(f"image {sha} missing or corrupt in storage")


def product_rule_problems(pg_url: str, device_id: str, device_db: Path) -> list[str]:
    """What the device recorded is what the product's services write: every inspection and item
    state the server heard of, in the device's order, is a move of the product's table from where
    the services open them; no required item is skipped; an AI result exists only for an item the
    AI judges, by that item's pipeline; a completed inspection's result is its items' roll-up; and
    once the shift has carried on after its last kill, no inspection is left open."""
    import sqlite3

    import sqlalchemy as sa

    from schema.db import create_engine
    from schema.formats import workflow as wf
    from sidecar.domain.workflow import ItemView, roll_up

    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            changes = conn.execute(sa.text(
                "SELECT entity_type, entity_id, operation, data->>'status', data->>'required' "
                "FROM tauri_sync_queue WHERE device_id = :d AND entity_type IN "
                "('inspection_session', 'inspection_session_item') ORDER BY seq"
            ), {"d": device_id}).all()
    finally:
        engine.dispose()
    problems: list[str] = []
    states: dict[str, str] = {}
    required: dict[str, bool] = {}
    for entity, key, operation, status, is_required in changes:
        if status is None:
            continue
        if operation == "INSERT" and entity == "inspection_session_item":
            required[key] = is_required == "true"
            if status != wf.ITEM_START:
                problems.append(f"item {key} opened as '{status}'")
        elif entity == "inspection_session":
            current = states.get(key, wf.SESSION_START)
            if not wf.session_may_move(current, status):
                problems.append(f"inspection {key} moved '{current}' -> '{status}'")
        else:
            current = states.get(key, "?")
            if not wf.item_may_move(current, status):
                problems.append(f"item {key} moved '{current}' -> '{status}'")
            if status == "skipped" and required.get(key, True):
                problems.append(f"required item {key} skipped")
        states[key] = status

    device = sqlite3.connect(f"{device_db.as_uri()}?mode=ro", uri=True)
    try:
        stray = device.execute(
            "SELECT count(*) FROM ai_inspection_results r "
            "LEFT JOIN inspection_items_master m ON m.id = r.item_id "
            "WHERE m.id IS NULL OR NOT m.ai_enabled OR r.pipeline_id IS NOT m.pipeline_id"
        ).fetchone()[0]
        if stray:
            problems.append(f"{stray} AI results for items the AI does not judge")
        items: dict[str, list[ItemView]] = {}
        for session_id, status, is_required, result in device.execute(
            "SELECT session_id, status, required, result FROM inspection_session_items"
        ):
            items.setdefault(session_id, []).append(ItemView(status, bool(is_required), result))
        for session_id, status, result in device.execute(
            "SELECT id, status, result FROM inspection_sessions"
        ):
            if status not in wf.SESSION_ENDS:
                problems.append(f"inspection {session_id} left '{status}'")
            elif status == "completed" and result != roll_up(items.get(session_id, [])):
                problems.append(f"inspection {session_id} is {result}, its items roll up to "
                                f"{roll_up(items.get(session_id, []))}")
    finally:
        device.close()
    return problems
