"""The tablet's audit trail on real SQLite files: every change writes a chained entry in its own
transaction, the triggers refuse rewriting it, and ``kensa audit verify`` (run as the command)
names what was tampered with — an edited result row, an edited, deleted or re-ordered entry, a
removed record — and passes an untouched store."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from schema import device as d
from schema.db import Database, create_sqlite_engine
from schema.formats import audit as fmt
from sidecar import audit
from sidecar.errors import Locked, Unauthorized
from sidecar.services import auth, images, inspection
from tests.support.seed import photo_jpeg
from tests.test_outbox import KEY, seed_masters, start, tanaka

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def db(device_db: Database) -> Database:
    seed_masters(device_db)
    return device_db


def entries(path: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        rows = [dict(r) for r in conn.execute("SELECT * FROM audit_log ORDER BY seq")]
    finally:
        conn.close()
    for row in rows:
        for name in ("changes", "detail"):
            if row[name] is not None:
                row[name] = json.loads(row[name])
    return rows


def verify(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "audit", "verify", "--database", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def inspect(db: Database, tmp_path: Path) -> tuple[str, dict[str, str]]:
    """One whole inspection as the services record it: photo, verdicts (one NG), a skip,
    complete."""
    sid, items = start(db)
    stored = images.store(tmp_path, photo_jpeg(1), key=KEY)
    with db.atomic() as session:
        audit.acting_as(session, tanaka(session))
        inspection.attach_image(session, sid, items["V-SCRATCH"], stored)
    with db.atomic() as session:
        user = tanaka(session)
        audit.acting_as(session, user)
        for code in ("V-SCRATCH", "V-FOREIGN", "T-MARKING"):
            inspection.verify(session, sid, items[code], inspection.Verdict("OK", 1.5), user)
    ng = inspection.Verdict(
        "NG", 4.0, notes="burr", defect_types=["bore_oversize"], severity="major"
    )
    with db.atomic() as session:
        audit.acting_as(session, tanaka(session))
        inspection.verify(session, sid, items["D-BORE"], ng, tanaka(session))
    with db.atomic() as session:
        audit.give_reason(session, "no piston fitted on this batch")
        inspection.skip(session, sid, items["F-PISTON"])
    with db.atomic() as session:
        inspection.complete(session, sid)
    return sid, items


def unguarded(path: Path) -> sqlite3.Connection:
    """Plain sqlite3 on the file, as someone with the file could: triggers dropped."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("DROP TRIGGER audit_log_no_delete")
    return conn


# --- the writes ------------------------------------------------------------------------------


def test_every_change_is_one_chained_entry_with_who_what_and_the_rows_digest(
    db: Database, device_path: Path, tmp_path: Path
) -> None:
    sid, _ = inspect(db, tmp_path)
    log = entries(device_path)
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
    assert fmt.verify_chain(log) is None
    assert log[0]["prev_hash"] == fmt.GENESIS
    # One entry per outbox row of a record, naming the same record and action.
    with db.read() as session:
        changes = session.exec(
            select(d.Outbox)
            .where(d.Outbox.entity_type != "audit_entry")
            .order_by(col(d.Outbox.seq))
        ).all()
        travelled = session.exec(
            select(d.Outbox)
            .where(d.Outbox.entity_type == "audit_entry")
            .order_by(col(d.Outbox.seq))
        ).all()
    assert [(e["entity"], e["entity_id"], e["action"]) for e in log] == [
        (c.entity_type, c.entity_id, c.operation.lower()) for c in changes
    ]
    # Each entry travels once, as it is stored (its hash included).
    assert [t.data for t in travelled] == log
    # Who: the photo and the verdicts name tanaka and his role; the start named nobody (no
    # request, no acting_as) rather than a guess.
    photo = next(e for e in log if e["entity"] == "inspection_image")
    assert (photo["username"], photo["role"], photo["user_server_id"]) == (
        "tanaka",
        "inspector",
        "srv-user-7",
    )
    # What: an update carries its fields before and after.
    completed = log[-1]
    assert (completed["entity"], completed["entity_id"], completed["action"]) == (
        "inspection_session",
        sid,
        "update",
    )
    assert completed["changes"]["status"] == {"before": "human_review", "after": "completed"}
    assert completed["changes"]["result"]["after"] == "NG"
    # Why: the reason given in the unit of work.
    skipped = [e for e in log if e["entity_id"] and e["reason"]]
    assert skipped and all(e["reason"] == "no piston fitted on this batch" for e in skipped)
    # The digest is of the record as stored after the change.
    from sidecar import outbox

    with db.read() as session:
        row = inspection.get_session(session, sid)
        assert outbox.digest(session, row) == completed["row_digest"]


def test_a_failed_unit_of_work_leaves_no_entry(db: Database, device_path: Path) -> None:
    start(db)
    before = entries(device_path)
    with pytest.raises(RuntimeError), db.atomic() as session:
        audit.record(session, entity="device", entity_id="x", action="connect")
        raise RuntimeError("power cut")
    assert entries(device_path) == before


def test_triggers_refuse_update_and_delete(db: Database, device_path: Path) -> None:
    start(db)
    conn = sqlite3.connect(device_path, isolation_level=None)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE audit_log SET username = 'suzuki' WHERE seq = 1")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM audit_log WHERE seq = 1")
        assert conn.execute("SELECT username IS NULL FROM audit_log WHERE seq = 1").fetchone()
    finally:
        conn.close()


def test_logins_failures_and_lockouts_are_entries(db: Database, device_path: Path) -> None:
    with db.atomic() as session:
        auth.add_user(session, "suzuki", "correct-horse")
    with db.atomic() as session:
        auth.login(session, "suzuki", "correct-horse", key="k" * 32, source="client-a")
    with db.atomic() as session, pytest.raises(Unauthorized):
        auth.login(session, "nobody", "whatever", key="k" * 32, source="client-a")
    failures = 0
    while True:
        with db.atomic() as session:
            try:
                auth.login(session, "suzuki", "wrong-password", key="k" * 32, source="client-b")
            except Locked:
                break
            except Unauthorized:
                failures += 1
        assert failures < 20
    with db.atomic() as session:
        audit.acting_as(session, audit.Actor(1, None, "admin", "admin"))
        auth.unlock(session, "suzuki")
    log = entries(device_path)
    assert fmt.verify_chain(log) is None
    seen = [(e["action"], e["username"], (e["detail"] or {}).get("why")) for e in log]
    assert seen[:3] == [
        ("insert", None, None),
        ("login", "suzuki", None),
        ("login_failed", "nobody", "unknown_user"),
    ]
    assert seen[3 : 3 + failures] == [("login_failed", "suzuki", "bad_password")] * failures
    assert seen[3 + failures : 3 + failures + 2] == [
        ("login_failed", "suzuki", "bad_password"),
        ("lockout", "suzuki", None),
    ]
    assert seen[-1] == ("unlock", "admin", None)
    assert log[-1]["entity_id"] == "suzuki"


# --- verify ----------------------------------------------------------------------------------


def test_an_untouched_store_verifies_clean(db: Database, device_path: Path, tmp_path: Path) -> None:
    inspect(db, tmp_path)
    db.dispose()
    result = verify(device_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "intact" in result.stdout
    n = len(entries(device_path))
    assert f"{n} entries" in result.stdout


def _result_row(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        (rid,) = conn.execute(
            "SELECT id FROM human_verification_results WHERE final_result = 'NG'"
        ).fetchone()
    finally:
        conn.close()
    return str(rid)


def test_an_edited_result_row_is_named(db: Database, device_path: Path, tmp_path: Path) -> None:
    inspect(db, tmp_path)
    db.dispose()
    rid = _result_row(device_path)
    conn = sqlite3.connect(device_path, isolation_level=None)
    conn.execute("UPDATE human_verification_results SET final_result = 'OK' WHERE id = ?", (rid,))
    conn.close()
    result = verify(device_path)
    assert result.returncode == 1, result.stdout + result.stderr
    newest = max(e["seq"] for e in entries(device_path) if e["entity_id"] == rid)
    assert (
        f"record human_verification_results {rid}: does not match the digest in its newest "
        f"audit entry ({newest})"
    ) in result.stdout


def test_a_removed_record_is_named(db: Database, device_path: Path, tmp_path: Path) -> None:
    inspect(db, tmp_path)
    db.dispose()
    rid = _result_row(device_path)
    conn = sqlite3.connect(device_path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("DELETE FROM human_verification_results WHERE id = ?", (rid,))
    conn.close()
    result = verify(device_path)
    assert result.returncode == 1
    assert f"record human_verification_results {rid}: is missing" in result.stdout


def _tamper(path: Path, *statements: str) -> None:
    conn = unguarded(path)
    try:
        conn.execute("BEGIN")
        for sql in statements:
            conn.execute(sql)
        conn.execute("COMMIT")
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("statements", "named"),
    [
        (
            ["UPDATE audit_log SET username = 'suzuki' WHERE seq = 5"],
            "entry 5 (id {id5}): hash_mismatch",
        ),
        (["DELETE FROM audit_log WHERE seq = 5"], "entry 6 (id {id6}): sequence_gap"),
        (
            # Entries 5 and 6 trade places: the sequence still reads 1, 2, 3…
            [
                "UPDATE audit_log SET seq = 1000000 WHERE seq = 5",
                "UPDATE audit_log SET seq = 5 WHERE seq = 6",
                "UPDATE audit_log SET seq = 6 WHERE seq = 1000000",
            ],
            "entry 5 (id {id6}): hash_mismatch",
        ),
        (
            # The last entry removed and the one before re-hashed: the chain reads clean, but
            # the record it described no longer matches an entry.
            ["DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)"],
            "record inspection_sessions {sid}: does not match",
        ),
    ],
    ids=["edited-entry", "deleted-entry", "reordered-chain", "last-entry-removed"],
)
def test_a_tampered_trail_is_named(
    db: Database, device_path: Path, tmp_path: Path, statements: list[str], named: str
) -> None:
    sid, _ = inspect(db, tmp_path)
    db.dispose()
    log = entries(device_path)
    _tamper(device_path, *statements)
    result = verify(device_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert named.format(id5=log[4]["id"], id6=log[5]["id"], sid=sid) in result.stdout
    assert "BROKEN" in result.stdout


def test_a_file_that_is_not_there_is_exit_2(tmp_path: Path) -> None:
    result = verify(tmp_path / "missing.db")
    assert result.returncode == 2
    assert "cannot read" in result.stderr


# --- through the real sidecar ----------------------------------------------------------------


def test_the_sidecar_names_who_acted_refusals_included_and_serves_the_trail(
    tmp_path: Path,
) -> None:
    from tests.support.seed import PASSWORD, QR_JSON, seed_device
    from tests.support.sidecar import SidecarProcess

    data = tmp_path / "tablet"
    data.mkdir()
    seed_device(data / "kensa.db")  # tanaka (inspector) and admin
    seeded = Database(create_sqlite_engine(data / "kensa.db"))
    try:
        with seeded.atomic() as session:
            auth.add_user(session, "suzuki", PASSWORD)
    finally:
        seeded.dispose()
    proc = SidecarProcess(data, env={"KENSA_AI_WORKERS": "0", "KENSA_SYNC_ENABLED": "false"})
    proc.start()
    try:
        logins: dict[str, dict[str, str]] = {}
        with proc.client() as client:
            for name in ("tanaka", "suzuki", "admin"):
                r = client.post("/auth/login", json={"username": name, "password": PASSWORD})
                assert r.status_code == 200, r.text
                logins[name] = {"X-Kensa-Session": r.json()["token"]}
            r = client.post("/auth/login", json={"username": "tanaka", "password": "wrong-one"})
            assert r.status_code == 401
        with proc.client(**logins["tanaka"]) as client:
            r = client.post("/sessions", json={"qr_code": QR_JSON})
            assert r.status_code == 201, r.text
            sid = r.json()["id"]
            first = r.json()["items"][0]["item_id"]
            r = client.post(f"/sessions/{sid}/items/{first}/skip")
            assert r.status_code in (200, 409), r.text
            # Why: a reason is bounded at the edge, and kept on the act's entries.
            signature = {"password": PASSWORD, "meaning": "discarded"}
            for bad in ("x" * 501, "", "bell\a"):
                r = client.post(
                    f"/sessions/{sid}/discard", json={"signature": signature, "reason": bad}
                )
                assert r.status_code == 422, r.text
            r = client.post(
                f"/sessions/{sid}/discard",
                json={"signature": signature, "reason": "wrong part scanned"},
            )
            assert r.status_code == 200, r.text
            trail = client.get(f"/sessions/{sid}/audit")
            assert trail.status_code == 200, trail.text
        with proc.client(**logins["suzuki"]) as client:
            # Another inspector's inspection does not exist for them, nor does its trail.
            assert client.get(f"/sessions/{sid}/audit").status_code == 404
            refused = client.post("/users/tanaka/unlock")
            assert refused.status_code == 403, refused.text
        with proc.client(**logins["admin"]) as client:
            assert client.get(f"/sessions/{sid}/audit").json() == trail.json()
    finally:
        proc.kill()

    body = trail.json()
    assert body and [e["seq"] for e in body] == sorted(e["seq"] for e in body)
    assert {(e["entity"], e["action"]) for e in body} >= {
        ("inspection_target", "insert"),
        ("inspection_session", "insert"),
        ("inspection_session_item", "insert"),
    }
    # Every change made in tanaka's requests names him, from his login.
    assert {(e["username"], e["role"]) for e in body} == {("tanaka", "inspector")}
    discarded = [
        e for e in body if (e["changes"] or {}).get("status", {}).get("after") == "cancelled"
    ]
    assert [e["reason"] for e in discarded] == ["wrong part scanned"]
    assert discarded[0]["changes"]["status"]["before"] == "identified"
    log = entries(data / "kensa.db")
    assert fmt.verify_chain(log) is None
    events = [(e["action"], e["username"]) for e in log if e["entity"] in ("user", "request")]
    assert ("login", "tanaka") in events and ("login", "admin") in events
    assert ("login_failed", "tanaka") in events
    refusal = next(e for e in log if e["action"] == "refused")
    assert (refusal["username"], refusal["role"]) == ("suzuki", "inspector")
    assert refusal["detail"]["code"] == refused.json()["error"]["code"]
    assert refusal["detail"]["route"] == "/users/{username}/unlock"
    result = verify(data / "kensa.db")
    assert result.returncode == 0, result.stdout + result.stderr
