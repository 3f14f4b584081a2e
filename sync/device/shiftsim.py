"""A simulated inspection shift: a device process that records inspections and syncs them.

    python -m sync.device.shiftsim --data-dir D --server URL --token T --inspections 20

It stands in for the sidecar where a test needs a device process to SIGKILL: it writes what the
sidecar writes — a scanned unit, a session with BRK-100's items, per item a JPEG image (stored as
``<data_dir>/images/<sha[:2]>/<sha>``, temp file + fsync + rename), an AI result with per-step
timings, a person's verification, item and session updates — each step in one
``Database.atomic()`` unit of work together with its outbox rows (``sidecar.outbox``). Meanwhile
``SyncService`` pushes, pulls and uploads in the background, exactly as inside the sidecar.

Killed at any instant and started again on the same data directory, it carries on: what was
committed is the device's history, and sync must bring exactly that to the server. Progress is
one JSON line per event on stdout (``ready``, ``written``, ``synced``).

``--clock-offset`` runs the device's wall clock that many seconds off (a tablet a day ahead or
behind): every timestamp it writes and sends uses it.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import hashlib
import json
import os
import random
import signal
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from schema import device as d
from schema.db import Database, create_sqlite_engine
from schema.migrate import upgrade_device
from schema.types import utcnow
from sidecar import __version__
from sidecar.outbox import record_insert, record_update
from sync.device.service import SyncService
from sync.errors import TransportError
from sync.policy import BackoffPolicy

PRODUCT = "BRK-100"


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def base_jpeg(width: int, height: int, seed: int) -> bytes:
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise RuntimeError("cannot encode the test JPEG")
    return bytes(encoded.tobytes())


def unique_jpeg(base: bytes, tag: str) -> bytes:
    """The base JPEG with a COM segment naming ``tag``: a valid JPEG with its own hash."""
    comment = tag.encode("utf-8")
    segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
    return base[:2] + segment + base[2:]


def store_image(data_dir: Path, body: bytes) -> tuple[str, str]:
    """Write an image the way the sidecar does; returns (sha256, path relative to data_dir)."""
    sha = hashlib.sha256(body).hexdigest()
    relative = Path("images") / sha[:2] / sha
    target = data_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{sha}.{os.getpid()}.tmp")
    with partial.open("wb") as fh:
        fh.write(body)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(partial, target)
    fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return sha, str(relative)


@dataclass
class Masters:
    target: d.InspectionTargetMaster
    items: list[d.InspectionItemMaster]
    user: d.User
    pipelines: dict[str, d.Pipeline]


def load_masters(db: Database) -> Masters | None:
    with db.read() as session:
        target = session.exec(
            select(d.InspectionTargetMaster).where(
                d.InspectionTargetMaster.product_code == PRODUCT,
                col(d.InspectionTargetMaster.deleted_at).is_(None),
            )
        ).first()
        user = session.exec(
            select(d.User).where(col(d.User.server_id).is_not(None), d.User.is_active)
            .order_by(col(d.User.role).desc(), col(d.User.username))
        ).first()
        if target is None or user is None:
            return None
        items = list(session.exec(
            select(d.InspectionItemMaster)
            .where(d.InspectionItemMaster.target_id == target.id,
                   col(d.InspectionItemMaster.deleted_at).is_(None))
            .order_by(col(d.InspectionItemMaster.order_sequence))
        ))
        pipelines = {p.id: p for p in session.exec(select(d.Pipeline))}
    if not items:
        return None
    return Masters(target, items, user, pipelines)


class ShiftWriter:
    """Writes inspections into the device database as the sidecar would."""

    def __init__(
        self,
        db: Database,
        data_dir: Path,
        masters: Masters,
        clock: Callable[[], datetime],
        *,
        image_size: tuple[int, int] = (96, 64),
        seed: int = 0,
    ) -> None:
        self.db = db
        self.data_dir = data_dir
        self.m = masters
        assert masters.user.id is not None
        self.user_id: int = masters.user.id
        self.clock = clock
        # Simulated verdicts and timings, not secrets.
        self.rng = random.Random(seed ^ os.getpid() ^ time.monotonic_ns())  # noqa: S311
        self.base = base_jpeg(*image_size, seed=seed)

    def _outbox(self, session: Session, entry: d.Outbox) -> None:
        entry.created_at = self.clock()
        session.add(entry)

    def inspection(self, *, images: bool = True) -> str:
        """One whole inspection; ``images=False`` records the verdicts only (no photos)."""
        now = self.clock
        batch = f"A{self.rng.randint(10, 99)}-{self.rng.randint(1000, 9999)}"
        serial = f"{self.rng.randint(0, 9_999_999):07d}"
        with self.db.atomic() as session:
            unit = d.InspectionTarget(
                product_id=PRODUCT, batch_id=batch, serial=serial,
                qr_code=json.dumps({"product_id": PRODUCT, "batch_id": batch, "serial": serial}),
                master_id=self.m.target.id, master_version=self.m.target.version,
                payload_format="json", created_at=now(), updated_at=now(),
            )
            session.add(unit)
            inspection = d.InspectionSession(
                target_id=unit.id, user_id=self.m.user.id, status="in_progress",
                product_code=PRODUCT, started_at=now(), updated_at=now(),
            )
            session.add(inspection)
            steps = [
                d.InspectionSessionItem(
                    session_id=inspection.id, item_id=item.id, item_code=item.item_code,
                    order_sequence=item.order_sequence, required=item.required,
                    created_at=now(), updated_at=now(),
                )
                for item in self.m.items
            ]
            session.add_all(steps)
            session.flush()
            self._outbox(session, record_insert(session, unit))
            self._outbox(session, record_insert(session, inspection))
            for step in steps:
                self._outbox(session, record_insert(session, step))
        results = []
        for item, step in zip(self.m.items, steps, strict=True):
            results.append(self._item(inspection, item, step, images))
        with self.db.atomic() as session:
            inspection = session.get(d.InspectionSession, inspection.id) or inspection
            base = inspection.version
            inspection.status = "completed"
            inspection.result = "NG" if "NG" in results else "OK"
            inspection.completed_at = now()
            inspection.version = base + 1
            inspection.updated_at = now()
            session.add(inspection)
            session.flush()
            self._outbox(session, record_update(
                session, inspection,
                {"status": inspection.status, "result": inspection.result,
                 "completed_at": inspection.completed_at, "updated_at": inspection.updated_at},
                base_version=base,
            ))
        return inspection.id

    def _item(
        self, inspection: d.InspectionSession, item: d.InspectionItemMaster,
        step: d.InspectionSessionItem, images: bool = True,
    ) -> str:
        now = self.clock
        verdict = "NG" if self.rng.random() < 0.1 else "OK"
        image_row: d.InspectionImage | None = None
        ai: d.AIInspectionResult | None = None
        if images and (item.ai_enabled or item.inspection_type != "FUNCTION"):
            body = unique_jpeg(self.base, f"{inspection.id}/{item.item_code}/{uuid.uuid4()}")
            sha, relative = store_image(self.data_dir, body)
            image_row = d.InspectionImage(
                session_id=inspection.id, item_id=item.id, file_path=relative,
                file_size=len(body), sha256=sha, mime_type="image/jpeg",
                width=96, height=64, created_at=now(),
            )
            pipeline = self.m.pipelines.get(item.pipeline_id or "")
            timings = {name: round(self.rng.uniform(1, 40), 3)
                       for name in ("decode", "pre", "infer", "post", "judge")}
            ai = d.AIInspectionResult(
                session_id=inspection.id, item_id=item.id, image_id=image_row.id,
                pipeline_id=pipeline.id if pipeline else None,
                pipeline_version=str(pipeline.version) if pipeline else None,
                model_sha256=None, overall_result=verdict,
                confidence=round(self.rng.uniform(0.6, 1.0), 4),
                processing_time=round(sum(timings.values()) / 1000.0, 4),
                detailed_results=json.dumps({"label": verdict.lower()}),
                measurements={"score": round(self.rng.random(), 4)}, timings=timings,
                created_at=now(), updated_at=now(),
            )
        with self.db.atomic() as session:
            if image_row is not None and ai is not None:
                session.add(image_row)
                session.add(ai)
                session.flush()
                self._outbox(session, record_insert(session, image_row))
                self._outbox(session, record_insert(session, ai, priority=1))
            check = d.HumanVerificationResult(
                session_id=inspection.id, user_id=self.user_id, final_result=verdict,
                verification_time=round(self.rng.uniform(1, 9), 3), item_id=item.id,
                ai_result_id=ai.id if ai else None, overrode_ai=False, created_at=now(),
                updated_at=now(),
                defect_types=["scratch"] if verdict == "NG" else None,
                severity="minor" if verdict == "NG" else None,
            )
            session.add(check)
            row = session.get(d.InspectionSessionItem, step.id) or step
            base = row.version
            row.status, row.result, row.attempts = "verified", verdict, row.attempts + 1
            row.version, row.updated_at = base + 1, now()
            session.add(row)
            session.flush()
            self._outbox(session, record_insert(session, check))
            self._outbox(session, record_update(
                session, row,
                {"status": row.status, "result": row.result, "attempts": row.attempts,
                 "updated_at": row.updated_at},
                base_version=base,
            ))
        return verdict


def completed_inspections(db: Database) -> int:
    with db.read() as session:
        return int(session.execute(
            sa.text("SELECT count(*) FROM inspection_sessions WHERE status = 'completed'")
        ).scalar_one())


def fully_synced(db: Database) -> bool:
    with db.read() as session:
        pending = session.execute(sa.text(
            "SELECT (SELECT count(*) FROM outbox WHERE set_aside_at IS NULL) + "
            "(SELECT count(*) FROM inspection_images WHERE uploaded_at IS NULL)"
        )).scalar_one()
    return int(pending) == 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--server", required=True)
    parser.add_argument("--token", default=os.environ.get("KENSA_DEVICE_TOKEN"))
    parser.add_argument("--inspections", type=int, default=10)
    parser.add_argument("--write-delay", type=float, default=0.0,
                        help="seconds between inspections")
    parser.add_argument("--clock-offset", type=float, default=0.0,
                        help="seconds the device clock is off (negative: behind)")
    parser.add_argument("--image-width", type=int, default=96)
    parser.add_argument("--image-height", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sync-interval", type=float, default=2.0)
    parser.add_argument("--probe-interval", type=float, default=0.5)
    parser.add_argument("--backoff-base", type=float, default=0.2)
    parser.add_argument("--backoff-cap", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--tick", type=float, default=0.2)
    parser.add_argument("--exit-when-synced", action="store_true")
    parser.add_argument("--no-sync", action="store_true", help="write only; do not sync")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # `kill -USR1 <pid>` prints every thread's stack: a hung device process explains itself.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    data_dir: Path = args.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    offset = timedelta(seconds=args.clock_offset)

    def clock() -> datetime:
        return utcnow() + offset

    upgrade_device(data_dir / "kensa.db")
    db = Database(create_sqlite_engine(data_dir / "kensa.db"))
    service = SyncService(
        db, data_dir, __version__, "tablet",
        interval_s=args.sync_interval, probe_interval_s=args.probe_interval,
        backoff=BackoffPolicy(base=args.backoff_base, cap=args.backoff_cap),
        batch_size=args.batch_size, tick_s=args.tick, clock=clock,
    )
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    try:
        if service.status().configured is False:
            if not args.token:
                emit("error", message="no device token (--token or KENSA_DEVICE_TOKEN)")
                return 2
            # Connecting stores nothing until the server answers: through a faulty network,
            # try again as whoever sets the tablet up would.
            while True:
                try:
                    service.connect(args.server, args.token)
                    break
                except TransportError:
                    if stopping:
                        return 0
                    time.sleep(0.2)
        if not args.no_sync:
            service.start()
        emit("ready", pid=os.getpid())
        masters = load_masters(db)
        while masters is None and not stopping:
            time.sleep(0.1)
            masters = load_masters(db)
        if masters is None:
            return 0
        writer = ShiftWriter(db, data_dir, masters, clock,
                             image_size=(args.image_width, args.image_height), seed=args.seed)
        while not stopping and completed_inspections(db) < args.inspections:
            writer.inspection()
            if args.write_delay:
                time.sleep(args.write_delay)
        emit("written", inspections=completed_inspections(db))
        while not stopping:
            if args.exit_when_synced and fully_synced(db):
                emit("synced")
                return 0
            time.sleep(0.2)
        return 0
    finally:
        with contextlib.suppress(Exception):
            service.stop()
        db.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
