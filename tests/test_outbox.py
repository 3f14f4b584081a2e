"""The outbox, through the services on a real SQLite file: one row per change, in order, and none
for a unit of work that fails.

DESIGN.md, "Sync protocol": an INSERT carries the whole record, an UPDATE only the changed fields
and the version it was based on; a local user travels as ``user_server_id`` and ``username``,
never as the device's integer id, and local file paths stay on the device.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select

from schema import device as d
from schema.db import Database
from schema.types import utcnow
from sidecar.errors import Conflict, ProductNotFound
from sidecar.keys import DataKey
from sidecar.outbox import ENTITY_TYPES
from sidecar.qr.payload import parse_payload
from sidecar.services import images, inspection
from tests.support.device_state import state
from tests.support.seed import QR_JSON, photo_jpeg

LOCAL_ONLY = {"file_path", "thumbnail_path", "uploaded_at", "user_id"}
USER_REF = {"user_server_id", "username"}
KEY = DataKey.generate()  # the photos are stored as a tablet stores them: encrypted
CODES = ["V-SCRATCH", "V-FOREIGN", "T-MARKING", "D-BORE", "F-PISTON"]


def seed_masters(db: Database) -> None:
    """BRK-100 with five items (the last optional, without AI) and a user synced from a server.

    The password hash is never checked here, so it is not computed (argon2 is slow on purpose).
    """
    with db.atomic() as session:
        session.add(
            d.InspectionTargetMaster(
                id="target-brk100", product_code="BRK-100", product_name="caliper", version="3"
            )
        )
        for order, code in enumerate(CODES, start=1):
            session.add(
                d.InspectionItemMaster(
                    id=f"item-{code.lower()}",
                    target_id="target-brk100",
                    item_code=code,
                    item_name=code,
                    inspection_type="FUNCTION" if code == "F-PISTON" else "VISUAL",
                    ai_enabled=code != "F-PISTON",
                    criteria={"judgment_type": "BINARY", "measurement": "ok", "expected": True},
                    order_sequence=order,
                    required=code != "F-PISTON",
                )
            )
        # An AI result may name only a pipeline the tablet has (the server resolves the id).
        session.add(
            d.Pipeline(id="brk100-v-scratch", name="scratch", definition={"steps": []}, version=3)
        )
        session.add(d.User(username="tanaka", password_hash="not-checked", server_id="srv-user-7"))


@pytest.fixture
def db(device_db: Database) -> Database:
    seed_masters(device_db)
    return device_db


def tanaka(session: Session) -> d.User:
    return session.exec(select(d.User).where(d.User.username == "tanaka")).one()


def outbox(db: Database, *, with_audit: bool = False) -> list[d.Outbox]:
    """The outbox's rows of records (and with ``with_audit`` their audit entries too)."""
    with db.read() as session:
        rows = list(session.exec(select(d.Outbox).order_by(col(d.Outbox.seq))).all())
    return rows if with_audit else [r for r in rows if r.entity_type != "audit_entry"]


def start(db: Database) -> tuple[str, dict[str, str]]:
    with db.atomic() as session:
        row = inspection.start(session, parse_payload(QR_JSON), tanaka(session))
        items = {i.item_code: i.item_id for i in inspection.session_items(session, row.id)}
    return row.id, items


def jsonable(row: Any) -> dict[str, Any]:
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in row.model_dump().items()}


T, S, I, IMG, AI, HV = (  # noqa: E741
    "inspection_target",
    "inspection_session",
    "inspection_session_item",
    "inspection_image",
    "ai_inspection_result",
    "human_verification_result",
)
INSERT, UPDATE = "INSERT", "UPDATE"


def test_a_whole_inspection_writes_one_row_per_change_in_order(
    db: Database, tmp_path: Path
) -> None:
    sid, items = start(db)
    stored = images.store(tmp_path, photo_jpeg(1), key=KEY)
    with db.atomic() as session:
        image = inspection.attach_image(session, sid, items["V-SCRATCH"], stored)
    outcome = inspection.AIOutcome(
        image_id=image.id,
        pipeline_id="brk100-v-scratch",
        pipeline_version="3",
        model_sha256="a" * 64,
        overall_result="OK",
        confidence=0.93,
        processing_time=0.21,
        measurements={"defect_probability": 0.07},
    )
    with db.atomic() as session:
        ai = inspection.record_ai_result(session, sid, items["V-SCRATCH"], outcome)
    with db.atomic() as session:
        user = tanaka(session)
        inspection.verify(session, sid, items["V-SCRATCH"], inspection.Verdict("OK", 2.5), user)
        for code in ("V-FOREIGN", "T-MARKING"):
            inspection.verify(session, sid, items[code], inspection.Verdict("OK", 1.0), user)
    ng = inspection.Verdict(
        "NG", 4.0, notes="burr", defect_types=["bore_oversize"], severity="major"
    )
    with db.atomic() as session:
        inspection.verify(session, sid, items["D-BORE"], ng, tanaka(session))
    with db.atomic() as session:
        inspection.skip(session, sid, items["F-PISTON"])
    with db.atomic() as session:
        inspection.complete(session, sid)

    rows = outbox(db)
    assert [(r.entity_type, r.operation) for r in rows] == [
        # start: the scanned unit, the session, its five items in order
        (T, INSERT), (S, INSERT), *[(I, INSERT)] * 5,
        # photo: item pending → captured, the image, session identified → in_progress
        (I, UPDATE), (IMG, INSERT), (S, UPDATE),
        # AI result posted directly: the result, item captured → ai_completed in one row
        (AI, INSERT), (I, UPDATE),
        # three OK verdicts: item → verified, the verdict
        (I, UPDATE), (HV, INSERT), (I, UPDATE), (HV, INSERT), (I, UPDATE), (HV, INSERT),
        # the NG verdict on the last AI item: session in_progress → ai_completed
        (I, UPDATE), (HV, INSERT), (S, UPDATE),
        # optional item skipped: session → human_review
        (I, UPDATE), (S, UPDATE),
        # complete
        (S, UPDATE),
    ]  # fmt: skip

    # Each record's row is followed by its audit entry's, which travels the same way.
    every = outbox(db, with_audit=True)
    assert len(every) == 2 * len(rows)
    for change, entry in zip(every[0::2], every[1::2], strict=True):
        assert (entry.entity_type, entry.operation) == ("audit_entry", INSERT)
        assert entry.entity_id == entry.data["id"]
        assert (entry.data["entity"], entry.data["entity_id"], entry.data["action"]) == (
            change.entity_type,
            change.entity_id,
            change.operation.lower(),
        )
    assert [e.data["seq"] for e in every[1::2]] == list(range(1, len(rows) + 1))

    seqs = [r.seq for r in rows]
    assert all(a is not None and b is not None and a < b for a, b in pairwise(seqs))
    assert len({r.op_id for r in rows}) == len(rows)
    assert {r.operation for r in rows} <= {INSERT, UPDATE}
    assert all(r.priority == 0 and r.retry_count == 0 for r in rows)

    # Entity ids: the session's rows name the session, item rows the session item.
    with db.read() as session:
        item_rows = {i.id: i for i in inspection.session_items(session, sid)}
        session_row = inspection.get_session(session, sid)
        target = session.get(d.InspectionTarget, session_row.target_id)
        assert target is not None
        finals = {
            **{(I, k): v for k, v in item_rows.items()},
            (S, sid): session_row,
            (T, target.id): target,
        }
    assert {r.entity_id for r in rows if r.entity_type == S} == {sid}
    assert {r.entity_id for r in rows if r.entity_type == I} == set(item_rows)
    assert [r.entity_id for r in rows if r.entity_type == I][:5] == list(item_rows)

    # UPDATEs: only what changed, with a version chain per record that ends at the stored one.
    versions: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for r in rows:
        if r.operation != UPDATE:
            continue
        assert r.data["id"] == r.entity_id
        assert r.data["version"] == r.data["base_version"] + 1
        versions[(r.entity_type, r.entity_id)].append((r.data["base_version"], r.data["version"]))
        assert not LOCAL_ONLY & set(r.data)
    for key, chain in versions.items():
        assert chain[0][0] == 1, key
        assert all(a[1] == b[0] for a, b in pairwise(chain)), key
        assert chain[-1][1] == finals[key].version, key

    updates = [r.data for r in rows if r.operation == UPDATE]
    bookkeeping = {"id", "base_version", "version"}
    changed = [{k: v for k, v in u.items() if k not in bookkeeping} for u in updates]
    completed_at = changed[-1].pop("completed_at")
    assert changed == [
        {"status": "captured"},
        {"status": "in_progress"},
        {"status": "ai_completed"},
        {"status": "verified", "result": "OK"},
        {"status": "verified", "result": "OK"},
        {"status": "verified", "result": "OK"},
        {"status": "verified", "result": "NG"},
        {"status": "ai_completed"},
        {"status": "skipped"},
        {"status": "human_review"},
        {"status": "completed", "result": "NG"},
    ]
    assert completed_at == session_row.completed_at.isoformat()
    assert completed_at.endswith("+00:00")

    # INSERTs: the whole record, without local paths or the local user id.
    for r in rows:
        if r.operation != INSERT:
            continue
        model = next(m for m, name in ENTITY_TYPES.items() if name == r.entity_type)
        columns = set(model.__table__.columns.keys())
        expected = columns - LOCAL_ONLY
        if "user_id" in columns:
            expected |= USER_REF
        assert set(r.data) == expected, r.entity_type
        assert r.data["id"] == r.entity_id
        assert r.data["version" if "version" in columns else "id"] is not None
    inserts = {(r.entity_type, r.entity_id): r.data for r in rows if r.operation == INSERT}
    started = inserts[(S, sid)]
    assert started["status"] == "identified" and started["version"] == 1
    assert started["username"] == "tanaka" and started["user_server_id"] == "srv-user-7"
    assert started["target_id"] == target.id and started["product_code"] == "BRK-100"
    assert inserts[(T, target.id)]["qr_code"] == QR_JSON
    assert inserts[(T, target.id)]["batch_id"] == "A12-3456"
    assert all(data["status"] == "pending" for (kind, _), data in inserts.items() if kind == I)

    image_data = inserts[(IMG, image.id)]
    assert image_data["sha256"] == stored.sha256 and image_data["file_size"] == stored.size
    assert "file_path" not in image_data and "thumbnail_path" not in image_data
    assert inserts[(AI, ai.id)] == jsonable(ai)
    verdicts = [data for (kind, _), data in inserts.items() if kind == HV]
    assert len(verdicts) == 4
    for data in verdicts:
        assert data["username"] == "tanaka" and data["user_server_id"] == "srv-user-7"
        assert "user_id" not in data
    assert verdicts[0]["ai_result_id"] == ai.id and verdicts[0]["overrode_ai"] is False
    assert verdicts[-1]["defect_types"] == ["bore_oversize"] and verdicts[-1]["severity"] == "major"
    for data in inserts.values():
        for key in ("created_at", "updated_at", "started_at"):
            if data.get(key) is not None:
                assert data[key].endswith("+00:00"), (key, data[key])


def test_ai_failure_retry_and_cancel(db: Database, tmp_path: Path) -> None:
    sid, items = start(db)
    before = len(outbox(db))
    stored = images.store(tmp_path, photo_jpeg(2), key=KEY)
    item = items["V-FOREIGN"]
    with db.atomic() as session:
        inspection.attach_image(session, sid, item, stored)
    with db.atomic() as session:
        inspection.mark_ai_running(session, sid, item)
    with db.atomic() as session:
        inspection.mark_ai_failed(session, sid, item)
    with db.atomic() as session:
        inspection.retry(session, sid, item)
    with db.atomic() as session:
        inspection.cancel(session, sid)
    rows = outbox(db)[before:]
    assert [(r.entity_type, r.operation) for r in rows] == [
        (I, UPDATE), (IMG, INSERT), (S, UPDATE),  # captured, image, in_progress
        (I, UPDATE),  # ai_running
        (I, UPDATE),  # failed
        (I, UPDATE),  # retried: captured again, one more attempt
        (S, UPDATE),  # cancelled
    ]  # fmt: skip
    assert rows[5].data["status"] == "captured" and rows[5].data["attempts"] == 1
    assert (rows[5].data["base_version"], rows[5].data["version"]) == (4, 5)
    assert rows[-1].data["status"] == "cancelled" and "completed_at" in rows[-1].data
    assert set(rows[-1].data) == {"status", "completed_at", "id", "base_version", "version"}


def test_the_same_photo_twice_is_one_file_and_two_image_records(
    db: Database, tmp_path: Path
) -> None:
    sid, items = start(db)
    first = images.store(tmp_path, photo_jpeg(3), key=KEY)
    second = images.store(tmp_path, photo_jpeg(3), key=KEY)
    assert first == second
    with db.atomic() as session:
        a = inspection.attach_image(session, sid, items["V-SCRATCH"], first)
        b = inspection.attach_image(session, sid, items["V-SCRATCH"], second)
    rows = [r for r in outbox(db) if r.entity_type == IMG]
    assert [r.entity_id for r in rows] == [a.id, b.id]
    assert state(tmp_path).files == (first.relative_path, first.thumbnail_path)


# --- failures leave nothing -------------------------------------------------------------------


def counts(db: Database) -> dict[str, int]:
    return state(Path(str(db.engine.url.database)).parent).counts


class PowerCut(Exception):
    pass


@pytest.fixture
def started(db: Database) -> Iterator[tuple[str, dict[str, str]]]:
    yield start(db)


def test_raise_after_a_service_call_writes_nothing(db: Database) -> None:
    before = counts(db)
    with pytest.raises(PowerCut), db.atomic() as session:
        inspection.start(session, parse_payload(QR_JSON), tanaka(session))
        session.flush()  # the rows reached SQLite: only the rollback can take them back
        raise PowerCut
    assert counts(db) == before
    assert outbox(db) == []


def test_a_conflict_after_earlier_writes_in_the_block_writes_nothing(
    db: Database, started: tuple[str, dict[str, str]]
) -> None:
    sid, items = started
    before = counts(db)
    with pytest.raises(Conflict), db.atomic() as session:
        user = tanaka(session)
        inspection.verify(session, sid, items["V-SCRATCH"], inspection.Verdict("OK", 1), user)
        # A result without a photo: the result and its outbox row are added, then the item
        # refuses to move from 'pending'.
        outcome = inspection.AIOutcome(None, None, None, None, "OK", 0.9, 0.1)
        inspection.record_ai_result(session, sid, items["V-FOREIGN"], outcome)
    assert counts(db) == before
    with db.read() as session:
        statuses = {i.item_code: i.status for i in inspection.session_items(session, sid)}
    assert set(statuses.values()) == {"pending"}


def test_a_service_that_fails_after_its_own_writes_leaves_nothing(
    db: Database, started: tuple[str, dict[str, str]]
) -> None:
    # restart() cancels the old session (an UPDATE and its outbox row), then finds the product
    # gone from the masters.
    sid, _ = started
    with db.atomic() as session:
        master = session.get(d.InspectionTargetMaster, "target-brk100")
        assert master is not None
        master.deleted_at = utcnow()
        session.add(master)
    before = counts(db)
    with pytest.raises(ProductNotFound), db.atomic() as session:
        inspection.restart(session, sid, tanaka(session))
    assert counts(db) == before
    with db.read() as session:
        assert inspection.get_session(session, sid).status == "identified"


def test_a_failed_inner_block_rolls_back_only_its_own_rows(
    db: Database, started: tuple[str, dict[str, str]]
) -> None:
    sid, items = started
    before = outbox(db)
    with db.atomic() as session:
        user = tanaka(session)
        inspection.verify(session, sid, items["V-SCRATCH"], inspection.Verdict("OK", 1), user)
        with pytest.raises(Conflict), db.atomic() as inner:
            inspection.skip(inner, sid, items["F-PISTON"])
            inspection.skip(inner, sid, items["V-FOREIGN"])  # required: refused
        inspection.verify(session, sid, items["T-MARKING"], inspection.Verdict("OK", 1), user)
    new = outbox(db)[len(before) :]
    assert [(r.entity_type, r.operation) for r in new] == [
        (I, UPDATE), (HV, INSERT), (S, UPDATE),  # V-SCRATCH verified, session in_progress
        (I, UPDATE), (HV, INSERT),  # T-MARKING verified
    ]  # fmt: skip
    assert [r.seq for r in new] == sorted(r.seq for r in new)
    assert new[0].seq is not None and before[-1].seq is not None and new[0].seq > before[-1].seq
    with db.read() as session:
        statuses = {i.item_code: i.status for i in inspection.session_items(session, sid)}
    assert statuses["F-PISTON"] == "pending" and statuses["V-FOREIGN"] == "pending"


def test_the_sequence_goes_on_after_a_rollback(
    db: Database, started: tuple[str, dict[str, str]]
) -> None:
    sid, items = started
    last = outbox(db)[-1].seq
    assert last is not None
    with pytest.raises(PowerCut), db.atomic() as session:
        inspection.skip(session, sid, items["F-PISTON"])
        session.flush()
        raise PowerCut
    with db.atomic() as session:
        inspection.skip(session, sid, items["F-PISTON"])
    rows = outbox(db)
    assert rows[-1].seq is not None and rows[-1].seq > last
    assert len(rows) == 7 + 2
