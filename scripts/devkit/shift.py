"""An inspector's shift on a tablet, recorded through the product's own services while sync runs:
the device process that the fault runs SIGKILL.

    python -m scripts.devkit.shift --data-dir D --server URL --token T --inspections 20

Every record is made by ``sidecar.services`` as the sidecar's API makes it, each step one
``Database.atomic()`` unit of work as each API call is: a scan opens an inspection
(``inspection.start``), a photo is stored and attached (``images.store``,
``inspection.attach_image``), an AI item gets its judgment the way the job runner records one
(``mark_ai_running``, then ``record_ai_result``; no model runs: the verdict and the engine's
per-stage timings are drawn at random), a person verifies or skips each item and completes the
inspection (``verify``, ``skip``, ``complete``). Meanwhile ``SyncService`` pushes, pulls and
uploads in the background, as inside the sidecar.

Killed at any instant and started again on the same data directory, it first deals with the
inspections left open, as an inspector does after a crash (``inspection.interrupted``): most are
resumed where they stopped, some restarted, a few discarded. What committed is the device's
history, and sync must bring exactly that to the server. Progress is one JSON line per event on
stdout (``ready``, ``written``, ``synced``).

``--clock-offset`` runs the device's wall clock that many seconds off (a tablet a day ahead or
behind): every timestamp the product writes and sends uses it.

``--fork-server`` imports all this once and then starts each device process as a fork of itself,
one per line of JSON arguments on stdin (answering ``{"event": "forked", "pid": N}``), so that a
run that kills the device hundreds of times kills it while it works, not while Python imports.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import json
import os
import random
import signal
import sys
import time
import traceback
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select

import schema.types
from schema import device as d
from schema.db import Database
from schema.errors import SchemaError
from schema.formats.workflow import ITEM_DONE
from sidecar import __version__, key_source
from sidecar.errors import KensaError, ProductNotFound
from sidecar.keys import DataKey
from sidecar.qr.payload import parse_payload
from sidecar.services import images, inspection
from sync.device.service import SyncService
from sync.errors import TransportError
from sync.policy import BackoffPolicy

PRODUCT = "BRK-100"
# The stages the pipeline engine times (sidecar.pipeline.engine); the shift's drawn runs have
# one step per stage, which the server records as a component execution each.
STAGES = ("decode", "pre", "infer", "post", "judge")


def _steps(timings: dict[str, float]) -> list[dict[str, Any]]:
    """A drawn run's steps as the job runner reports them: one per stage, one after another."""
    steps, start = [], 0.0
    for stage, ms in timings.items():
        steps.append({"node": stage, "op": stage, "stage": stage, "start_ms": round(start, 3),
                      "ms": ms})
        start += ms
    return steps


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


# --- the device's wall clock -------------------------------------------------------------------

# Every wall-clock reading of the product (column defaults, the services, the outbox, the sync
# client's device-time header) is a call of ``schema.types.utcnow``, and everything that calls it
# holds that one function object (as a default, or imported by name). A tablet whose clock is off
# is therefore that function's body reading another time; the body runs in ``schema.types``'
# namespace, where the offset is put.
_DEVICE_CLOCK_OFFSET = timedelta(0)


def _device_now() -> datetime:
    return datetime.now(UTC) + _DEVICE_CLOCK_OFFSET


def set_device_clock(offset: timedelta) -> None:
    schema.types._DEVICE_CLOCK_OFFSET = offset  # type: ignore[attr-defined]
    schema.types.utcnow.__code__ = _device_now.__code__


# --- photos ------------------------------------------------------------------------------------


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


# --- the inspector -----------------------------------------------------------------------------


def inspector(db: Database) -> d.User | None:
    """The logged-in inspector: a user pulled from the server (None until the first pull)."""
    with db.read() as session:
        user = session.exec(
            select(d.User)
            .where(col(d.User.server_id).is_not(None), col(d.User.is_active))
            .order_by((col(d.User.role) == "inspector").desc(), col(d.User.username))
        ).first()
        try:
            inspection.find_master(session, PRODUCT)
        except ProductNotFound:
            return None
    return user


class Shift:
    """One inspector recording inspections of BRK-100 through the product's services."""

    def __init__(
        self,
        db: Database,
        data_dir: Path,
        user: d.User,
        *,
        image_size: tuple[int, int] = (96, 64),
        seed: int = 0,
        ng_rate: float = 0.1,
        data_key: DataKey | None = None,
    ) -> None:
        assert user.id is not None
        self.db = db
        self.data_dir = data_dir
        # The photos are encrypted as the tablet's are when the store has a key.
        self.data_key = data_key
        self.user = user
        self.ng_rate = ng_rate
        # Simulated verdicts, not secrets; each start of the process draws differently.
        self.rng = random.Random(seed ^ os.getpid() ^ time.monotonic_ns())
        self.base = base_jpeg(*image_size, seed=seed)

    @classmethod
    def on(cls, db: Database, data_dir: Path, **options: Any) -> Shift:
        """The shift of a device whose masters and users are pulled."""
        user = inspector(db)
        if user is None:
            raise LookupError(f"no {PRODUCT} master or no user on this device: pull first")
        return cls(db, data_dir, user, **options)

    def inspection(self, *, photos: bool = True) -> str:
        """Scan a unit, work through its items, complete; returns the inspection's id.
        ``photos=False`` records the verdicts only."""
        batch = f"A{self.rng.randint(10, 99)}-{self.rng.randint(1000, 9999)}"
        serial = f"{self.rng.randint(0, 9_999_999):07d}"
        unit = parse_payload(json.dumps({"product_id": PRODUCT, "batch_id": batch,
                                         "serial": serial}))
        with self.db.atomic() as session:
            session_id = inspection.start(session, unit, self.user).id
        self.finish(session_id, photos=photos)
        return session_id

    def carry_on(self) -> int:
        """Deal with the inspections a crash left open: most resumed, some restarted, a few
        discarded. Returns how many there were."""
        with self.db.read() as session:
            left = [x.session.id for x in inspection.interrupted(session)]
        for session_id in left:
            draw = self.rng.random()
            if draw < 0.1:
                with self.db.atomic() as session:
                    inspection.cancel(session, session_id)
                continue
            if draw < 0.2:
                with self.db.atomic() as session:
                    session_id = inspection.restart(session, session_id, self.user).id
            self.finish(session_id)
        return len(left)

    def finish(self, session_id: str, *, photos: bool = True) -> None:
        with self.db.read() as session:
            items = [i.item_id for i in inspection.session_items(session, session_id)]
        for item_id in items:
            self._item(session_id, item_id, photos)
        with self.db.atomic() as session:
            inspection.complete(session, session_id)

    def _item(self, session_id: str, item_id: str, photos: bool) -> None:
        """Move one item on, a step (one unit of work) at a time, until a person has judged it."""
        while True:
            with self.db.read() as session:
                item = inspection.get_item(session, session_id, item_id)
                master = session.get(d.InspectionItemMaster, item_id)
                assert master is not None
                status, required = item.status, item.required
                ai = master.ai_enabled and master.pipeline_id is not None
                photographed = photos and master.inspection_type != "FUNCTION"
            if status in ITEM_DONE:
                return
            if status == "pending" and photographed:
                self._photo(session_id, item_id)
            elif status == "pending" and not required and self.rng.random() < 0.3:
                with self.db.atomic() as session:
                    inspection.skip(session, session_id, item_id)
            elif status == "captured" and ai:
                with self.db.atomic() as session:
                    inspection.mark_ai_running(session, session_id, item_id)
            elif status == "ai_running":
                self._ai_result(session_id, item_id)
            else:
                self._verify(session_id, item_id)

    def _photo(self, session_id: str, item_id: str) -> None:
        body = unique_jpeg(self.base, f"{session_id}/{item_id}/{uuid.uuid4()}")
        with self.db.read() as session:
            inspection.check_can_attach(session, session_id, item_id)
        stored = images.store(self.data_dir, body, key=self.data_key)
        with self.db.atomic() as session:
            inspection.attach_image(session, session_id, item_id, stored)

    def _ai_result(self, session_id: str, item_id: str) -> None:
        verdict = "NG" if self.rng.random() < self.ng_rate else "OK"
        timings = {stage: round(self.rng.uniform(1, 40), 3) for stage in STAGES}
        with self.db.atomic() as session:
            master = session.get(d.InspectionItemMaster, item_id)
            assert master is not None and master.pipeline_id is not None
            pipeline = session.get(d.Pipeline, master.pipeline_id)
            assert pipeline is not None, "the item's pipeline is pulled with it"
            photo = session.exec(
                select(d.InspectionImage)
                .where(d.InspectionImage.session_id == session_id,
                       d.InspectionImage.item_id == item_id)
                .order_by(col(d.InspectionImage.created_at).desc())
            ).first()
            models = sorted(inspection.pipeline_models(pipeline.definition))
            score = round(self.rng.random(), 4)
            outcome = inspection.AIOutcome(
                image_id=photo.id if photo else None,
                pipeline_id=pipeline.id,
                pipeline_version=str(pipeline.version),
                model_sha256=models[0] if models else None,
                overall_result=verdict,
                # No model ran: there is no confidence to report, and none is made up.
                confidence=None,
                processing_time=round(sum(timings.values()) / 1000.0, 4),
                measurements={"score": score},
                timings=timings,
                step_timings=_steps(timings),
                detailed_results={"judgment": {"result": verdict, "value": score}},
            )
            inspection.record_ai_result(session, session_id, item_id, outcome)

    def _verify(self, session_id: str, item_id: str) -> None:
        ng = self.rng.random() < self.ng_rate
        verdict = inspection.Verdict(
            final_result="NG" if ng else "OK",
            verification_time=round(self.rng.uniform(1, 9), 3),
            defect_types=["scratch"] if ng else None,
            severity="minor" if ng else None,
        )
        with self.db.atomic() as session:
            inspection.verify(session, session_id, item_id, verdict, self.user)


# --- the device process ------------------------------------------------------------------------


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
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
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
    if args.clock_offset:
        set_device_clock(timedelta(seconds=args.clock_offset))

    # The store opens as every ``kensa`` command opens it: the tablet's key from KENSA_KEY_FILE
    # or the OS keystore (made there for a new folder), a plaintext store only with
    # KENSA_PLAINTEXT=1; no key or a wrong one is exit 2 with nothing written.
    try:
        db, loaded = key_source.open_store(data_dir, create=True)
    except SchemaError as exc:
        emit("error", message=str(exc))
        return 2
    except KensaError as exc:
        emit("error", message=exc.message)
        return 2
    service = SyncService(
        db, data_dir, __version__, "tablet",
        interval_s=args.sync_interval, probe_interval_s=args.probe_interval,
        backoff=BackoffPolicy(base=args.backoff_base, cap=args.backoff_cap),
        batch_size=args.batch_size, tick_s=args.tick, data_key=loaded.key,
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
        user = inspector(db)
        while user is None and not stopping:
            time.sleep(0.1)
            user = inspector(db)
        if user is None:
            return 0
        shift = Shift(db, data_dir, user, image_size=(args.image_width, args.image_height),
                      seed=args.seed, data_key=loaded.key)
        shift.carry_on()
        while not stopping and completed_inspections(db) < args.inspections:
            shift.inspection()
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


def fork_server() -> int:
    # What every start would import on its first photo, imported once.
    import cv2  # noqa: F401
    import numpy  # noqa: F401

    # Before any engine, thread or connection exists: a fork shares none of them. Children are
    # reaped by the kernel, so a SIGKILLed one is gone at once for whoever waits for its pid.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    emit("fork_server", pid=os.getpid())
    for line in sys.stdin:
        argv = [str(a) for a in json.loads(line)]
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            code = 1
            try:
                code = main(argv)
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        emit("forked", pid=pid)
    return 0


if __name__ == "__main__":
    raise SystemExit(fork_server() if sys.argv[1:] == ["--fork-server"] else main())
