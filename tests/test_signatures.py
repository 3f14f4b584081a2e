"""Electronic signatures through the real sidecar process: the acts that need one answer 428
naming the meaning without it, 401 for a wrong password (counted toward the login lockout at the
same client), and with it write the act and the signature together, bound to the digest of the
record as it was written; the inspection's answer lists them.

The AI verdicts to override are written into the tablet's database as the job runner would
leave them (a job needs the real models to say NG on cue, which is not what is tested here).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from schema import device as d
from schema.db import Database, create_sqlite_engine
from schema.formats import audit
from sidecar import outbox
from sidecar.services import auth
from tests.support.seed import PASSWORD, QR_JSON, seed_device
from tests.support.sidecar import SidecarProcess

CLIENT = "tablet-ui-5ig9ed"
WRONG = "not-the-password"
USERS = ("admin", "tanaka", "sato")


@dataclass
class Tablet:
    proc: SidecarProcess
    logins: dict[str, str]

    @property
    def path(self) -> Path:
        return self.proc.data_dir / "kensa.db"

    def client(self, who: str = "admin", client: str = CLIENT) -> httpx.Client:
        return self.proc.client(**{"X-Kensa-Session": self.logins[who], "X-Kensa-Client": client})

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True) as conn:
            return conn.execute(sql, args).fetchall()

    def write(self, sql: str, *args: Any) -> None:
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            with conn:
                conn.execute(sql, args)
        finally:
            conn.close()


@pytest.fixture(scope="module")
def tablet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tablet]:
    data = tmp_path_factory.mktemp("signatures")
    seed_device(data / "kensa.db")
    db = Database(create_sqlite_engine(data / "kensa.db"))
    try:
        with db.atomic() as session:
            auth.add_user(session, "sato", PASSWORD, full_name="佐藤")
    finally:
        db.dispose()
    proc = SidecarProcess(data, env={"KENSA_AI_WORKERS": "0"})
    proc.start()
    try:
        logins = {}
        with proc.client() as client:
            for who in USERS:
                r = client.post("/auth/login", json={"username": who, "password": PASSWORD})
                assert r.status_code == 200, r.text
                logins[who] = r.json()["token"]
        yield Tablet(proc, logins)
    finally:
        proc.kill()


@dataclass
class Inspection:
    sid: str
    items: dict[str, str]

    def item(self, code: str) -> str:
        return f"/sessions/{self.sid}/items/{self.items[code]}"


def inspect(tablet: Tablet, who: str = "admin") -> Inspection:
    with tablet.client(who) as client:
        r = client.post("/sessions", json={"qr_code": QR_JSON})
    assert r.status_code == 201, r.text
    return Inspection(r.json()["id"], {i["item_code"]: i["item_id"] for i in r.json()["items"]})


def ai_says(tablet: Tablet, insp: Inspection, code: str, result: str) -> str:
    """An AI result for the item, as the job runner leaves one."""
    rid = str(uuid.uuid4())
    tablet.write(
        "INSERT INTO ai_inspection_results (id, session_id, item_id, overall_result, confidence,"
        " processing_time) VALUES (?, ?, ?, ?, 0.93, 0.05)",
        rid,
        insp.sid,
        insp.items[code],
        result,
    )
    tablet.write(
        "UPDATE inspection_session_items SET status = 'ai_completed' "
        "WHERE session_id = ? AND item_id = ?",
        insp.sid,
        insp.items[code],
    )
    return rid


def verdict(result: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"final_result": result, "verification_time": 2.0, **extra}
    if result == "NG":
        body |= {"defect_types": ["other"], "severity": "major"}
    return body


def signature(meaning: str, password: str = PASSWORD) -> dict[str, str]:
    return {"password": password, "meaning": meaning}


def signatures_of(tablet: Tablet, sid: str) -> list[tuple[Any, ...]]:
    return tablet.rows(
        "SELECT username, full_name, role, meaning, record_type, record_id, record_digest "
        "FROM signatures WHERE session_id = ? ORDER BY signed_at",
        sid,
    )


def stored_digest(tablet: Tablet, model: type[outbox.Entity], record_id: str) -> str:
    """The digest of the record as it reads from the file now (``schema.formats.audit``)."""
    db = Database(create_sqlite_engine(tablet.path))
    try:
        with db.read() as session:
            row: Any = session.get(model, record_id)
            assert row is not None
            data = outbox.payload(session, row)
            data.pop("user_server_id", None)
            return audit.row_digest(outbox.ENTITY_TYPES[model], data)
    finally:
        db.dispose()


def test_releasing_an_ng_item_needs_a_signature_bound_to_the_verdict(tablet: Tablet) -> None:
    insp = inspect(tablet)
    ai_says(tablet, insp, "V-SCRATCH", "NG")
    path = insp.item("V-SCRATCH") + "/verification"
    with tablet.client() as client:
        missing = client.post(path, json=verdict("OK"))
        other = client.post(path, json=verdict("OK", signature=signature("overridden")))
        wrong = client.post(path, json=verdict("OK", signature=signature("released", WRONG)))
    assert missing.status_code == 428, missing.text
    assert missing.json()["error"]["code"] == "signature_required"
    assert missing.json()["error"]["detail"]["meaning"] == "released"
    assert other.status_code == 428
    assert other.json()["error"]["detail"] == {"meaning": "released", "given": "overridden"}
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "signature_invalid"
    assert wrong.json()["error"]["detail"]["attempts_left"] == 4
    # Nothing of the act was written by any of them.
    assert (
        tablet.rows("SELECT id FROM human_verification_results WHERE session_id = ?", insp.sid)
        == []
    )
    assert signatures_of(tablet, insp.sid) == []

    with tablet.client() as client:
        r = client.post(path, json=verdict("OK", signature=signature("released")))
    assert r.status_code == 201, r.text
    vid = r.json()["id"]
    [(username, full_name, role, meaning, rtype, rid, digest)] = signatures_of(tablet, insp.sid)
    assert (username, full_name, role, meaning) == ("admin", None, "admin", "released")
    assert (rtype, rid) == ("human_verification_result", vid)
    assert digest == stored_digest(tablet, d.HumanVerificationResult, vid)
    # It travels to the server with the verdict.
    [(data,)] = tablet.rows(
        "SELECT data FROM outbox WHERE entity_type = 'signature' AND operation = 'INSERT' "
        "AND json_extract(data, '$.session_id') = ?",
        insp.sid,
    )
    assert '"meaning": "released"' in data or '"meaning":"released"' in data
    # The inspection's answer lists it.
    with tablet.client() as client:
        shown = client.get(f"/sessions/{insp.sid}").json()["signatures"]
    assert [(s["username"], s["role"], s["meaning"], s["record_id"]) for s in shown] == [
        ("admin", "admin", "released", vid)
    ]
    assert shown[0]["record_digest"] == digest


def test_a_signed_record_edited_afterwards_no_longer_matches(tablet: Tablet) -> None:
    insp = inspect(tablet)
    ai_says(tablet, insp, "V-SCRATCH", "OK")
    with tablet.client() as client:
        r = client.post(
            insp.item("V-SCRATCH") + "/verification",
            json=verdict("NG", signature=signature("overridden")),
        )
    assert r.status_code == 201, r.text
    [row] = signatures_of(tablet, insp.sid)
    assert row[3] == "overridden"
    assert row[6] == stored_digest(tablet, d.HumanVerificationResult, r.json()["id"])
    tablet.write(
        "UPDATE human_verification_results SET final_result = 'OK', defect_types = NULL, "
        "severity = NULL WHERE id = ?",
        r.json()["id"],
    )
    assert row[6] != stored_digest(tablet, d.HumanVerificationResult, r.json()["id"])


@pytest.mark.parametrize(
    ("ai", "result"),
    [(None, "OK"), (None, "NG"), ("OK", "OK"), ("NG", "NG"), ("PENDING_REVIEW", "OK")],
)
def test_a_verdict_that_overrides_nothing_needs_no_signature(
    tablet: Tablet, ai: str | None, result: str
) -> None:
    insp = inspect(tablet)
    if ai is not None:
        ai_says(tablet, insp, "V-SCRATCH", ai)
    with tablet.client() as client:
        r = client.post(insp.item("V-SCRATCH") + "/verification", json=verdict(result))
    assert r.status_code == 201, r.text
    assert signatures_of(tablet, insp.sid) == []


def _finish_items(tablet: Tablet, insp: Inspection, ng: str | None) -> None:
    with tablet.client() as client:
        for code in insp.items:
            result = "NG" if code == ng else "OK"
            r = client.post(insp.item(code) + "/verification", json=verdict(result))
            assert r.status_code == 201, r.text


def test_completing_with_ng_items_needs_an_approval_signed_on_the_session(tablet: Tablet) -> None:
    insp = inspect(tablet)
    _finish_items(tablet, insp, ng="D-BORE")
    with tablet.client() as client:
        missing = client.post(f"/sessions/{insp.sid}/complete")
        assert missing.status_code == 428, missing.text
        assert missing.json()["error"]["detail"]["meaning"] == "approved"
        assert tablet.rows("SELECT status FROM inspection_sessions WHERE id = ?", insp.sid) != [
            ("completed",)
        ]
        r = client.post(f"/sessions/{insp.sid}/complete", json={"signature": signature("approved")})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "completed" and r.json()["result"] == "NG"
    [row] = signatures_of(tablet, insp.sid)
    assert row[3:6] == ("approved", "inspection_session", insp.sid)
    assert row[6] == stored_digest(tablet, d.InspectionSession, insp.sid)
    assert [s["meaning"] for s in r.json()["signatures"]] == ["approved"]


def test_completing_an_ok_inspection_needs_no_signature(tablet: Tablet) -> None:
    insp = inspect(tablet)
    _finish_items(tablet, insp, ng=None)
    with tablet.client() as client:
        r = client.post(f"/sessions/{insp.sid}/complete")
    assert r.status_code == 200, r.text
    assert r.json()["signatures"] == []


@pytest.mark.parametrize("route", ["discard", "cancel"])
def test_discarding_needs_a_signature(tablet: Tablet, route: str) -> None:
    insp = inspect(tablet, "tanaka")
    with tablet.client("tanaka") as client:
        missing = client.post(f"/sessions/{insp.sid}/{route}")
        assert missing.status_code == 428
        assert missing.json()["error"]["detail"]["meaning"] == "discarded"
        r = client.post(f"/sessions/{insp.sid}/{route}", json={"signature": signature("discarded")})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    [row] = signatures_of(tablet, insp.sid)
    assert row[:6] == ("tanaka", "田中", "inspector", "discarded", "inspection_session", insp.sid)
    assert row[6] == stored_digest(tablet, d.InspectionSession, insp.sid)


def test_restarting_signs_the_discarded_inspection(tablet: Tablet) -> None:
    insp = inspect(tablet, "tanaka")
    with tablet.client("tanaka") as client:
        assert client.post(f"/sessions/{insp.sid}/restart").status_code == 428
        r = client.post(f"/sessions/{insp.sid}/restart", json={"signature": signature("discarded")})
    assert r.status_code == 201, r.text
    assert r.json()["id"] != insp.sid
    [row] = signatures_of(tablet, insp.sid)
    assert row[3:6] == ("discarded", "inspection_session", insp.sid)


def test_wrong_signatures_count_toward_the_login_lockout(tablet: Tablet) -> None:
    insp = inspect(tablet, "sato")
    path = f"/sessions/{insp.sid}/discard"
    answers = []
    with tablet.client("sato") as client:
        for _ in range(5):
            r = client.post(path, json={"signature": signature("discarded", WRONG)})
            answers.append((r.status_code, r.json()["error"]["code"]))
        # Locked now: even the right password does not sign at this client.
        locked = client.post(path, json={"signature": signature("discarded")})
    assert answers == [(401, "signature_invalid")] * 4 + [(423, "account_locked")]
    assert locked.status_code == 423
    with tablet.proc.client(**{"X-Kensa-Client": CLIENT}) as client:
        login = client.post("/auth/login", json={"username": "sato", "password": PASSWORD})
    assert login.status_code == 423, login.text
    [(status,)] = tablet.rows("SELECT status FROM inspection_sessions WHERE id = ?", insp.sid)
    assert status != "cancelled"
    assert signatures_of(tablet, insp.sid) == []
    # Each wrong password is on the audit trail as a failed login, and so is the lock.
    failed = tablet.rows(
        "SELECT action FROM audit_log WHERE entity = 'user' AND entity_id = 'sato' AND"
        " (json_extract(detail, '$.why') = 'bad_signature' OR action = 'lockout') ORDER BY seq"
    )
    assert [a for (a,) in failed] == ["login_failed"] * 5 + ["lockout"]
    # The supervisor lifts the lock, and the signature goes through.
    with tablet.client("admin") as client:
        assert client.post("/users/sato/unlock").status_code == 200
    with tablet.client("sato") as client:
        r = client.post(path, json={"signature": signature("discarded")})
    assert r.status_code == 200, r.text
    assert [row[3] for row in signatures_of(tablet, insp.sid)] == ["discarded"]


def test_a_malformed_client_id_is_refused_before_any_password_check(tablet: Tablet) -> None:
    insp = inspect(tablet, "tanaka")
    with tablet.client("tanaka", client="bad id") as client:
        r = client.post(
            f"/sessions/{insp.sid}/discard", json={"signature": signature("discarded", WRONG)}
        )
    assert r.status_code == 400
    assert r.json()["error"]["detail"]["field"] == "X-Kensa-Client"


@pytest.mark.parametrize(
    "body",
    [
        {"signature": {"password": "", "meaning": "discarded"}},
        {"signature": {"password": "x" * 1025, "meaning": "discarded"}},
        {"signature": {"password": PASSWORD, "meaning": "because"}},
        {"signature": {"password": PASSWORD}},
        {"signature": {"password": PASSWORD, "meaning": "discarded", "extra": 1}},
    ],
    ids=["empty", "long", "unknown-meaning", "no-meaning", "extra-field"],
)
def test_a_malformed_signature_is_a_422(tablet: Tablet, body: dict[str, Any]) -> None:
    insp = inspect(tablet, "tanaka")
    with tablet.client("tanaka") as client:
        r = client.post(f"/sessions/{insp.sid}/discard", json=body)
    assert r.status_code == 422, r.text
    assert signatures_of(tablet, insp.sid) == []


def test_kensa_audit_verify_catches_an_edited_signature(tablet: Tablet) -> None:
    """A signature is a record like the others: its audit entry carries its digest, so one
    rewritten with plain sqlite3 (another meaning, another signer) is reported by the command."""
    insp = inspect(tablet, "tanaka")
    with tablet.client("tanaka") as client:
        r = client.post(f"/sessions/{insp.sid}/discard", json={"signature": signature("discarded")})
    assert r.status_code == 200, r.text
    [(sig_id,)] = tablet.rows("SELECT id FROM signatures WHERE session_id = ?", insp.sid)

    def verify() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "sidecar.cli",
                "audit",
                "verify",
                "--database",
                str(tablet.path),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )

    # (Other tests of this module edit their records too: only this signature is looked at.)
    before = verify()
    assert before.returncode in (0, 1), before.stdout + before.stderr
    assert f"record signatures {sig_id}" not in before.stdout
    tablet.write(
        "UPDATE signatures SET username = 'admin', role = 'admin', meaning = 'approved' "
        "WHERE id = ?",
        sig_id,
    )
    broken = verify()
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert f"record signatures {sig_id}" in broken.stdout
