"""Who may do what with an inspection, on a tablet several inspectors share.

The rule (``sidecar.domain.access``) is table-tested over roles x actions; then the real sidecar
process is asked, as another inspector and as the supervisor, for every route that takes an
inspection, a photo or an AI job of someone else. A refused request answers in the one error
shape and leaves the device exactly as it was (every table's row count, every stored file).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from schema import device as d
from schema.db import Database, create_sqlite_engine
from schema.types import new_id
from sidecar.domain.access import Action, may, sees_everyones
from sidecar.jobs import queue
from sidecar.services import auth
from tests.support.device_state import State, state
from tests.support.seed import PASSWORD, QR_JSON, photo_jpeg, seed_device
from tests.support.sidecar import SidecarProcess

OWNER, OTHER = 1, 2

# --- the rule ---------------------------------------------------------------------------------


# fmt: off
RULES = [
    # role,        user,  owner, action,         allowed
    ("inspector",  OWNER, OWNER, Action.READ,    True),
    ("inspector",  OWNER, OWNER, Action.WORK,    True),
    ("inspector",  OWNER, OWNER, Action.DISCARD, True),
    ("inspector",  OTHER, OWNER, Action.READ,    False),
    ("inspector",  OTHER, OWNER, Action.WORK,    False),
    ("inspector",  OTHER, OWNER, Action.DISCARD, False),
    ("inspector",  OTHER, None,  Action.READ,    False),
    ("admin",      OWNER, OWNER, Action.READ,    True),
    ("admin",      OWNER, OWNER, Action.WORK,    True),
    ("admin",      OWNER, OWNER, Action.DISCARD, True),
    ("admin",      OTHER, OWNER, Action.READ,    True),
    ("admin",      OTHER, OWNER, Action.WORK,    False),
    ("admin",      OTHER, OWNER, Action.DISCARD, True),
    ("admin",      OTHER, None,  Action.READ,    True),
    ("admin",      OTHER, None,  Action.WORK,    False),
    ("viewer",     OWNER, OWNER, Action.READ,    False),
    ("",           OWNER, OWNER, Action.READ,    False),
    ("Admin",      OTHER, OWNER, Action.READ,    False),
    ("inspector",  None,  None,  Action.READ,    False),
    ("admin",      None,  OWNER, Action.WORK,    False),
]
# fmt: on


@pytest.mark.parametrize("role,user,owner,action,allowed", RULES)
def test_who_may_do_what(
    role: str, user: int | None, owner: int | None, action: Action, allowed: bool
) -> None:
    assert may(role, user, owner, action) is allowed


@pytest.mark.parametrize(
    "role,everyone", [("admin", True), ("inspector", False), ("viewer", False), ("", False)]
)
def test_whose_rows_lists_show(role: str, everyone: bool) -> None:
    assert sees_everyones(role) is everyone


# --- the real sidecar -------------------------------------------------------------------------

VERIFY_OK = {"final_result": "OK", "verification_time": 1.0}


@dataclass
class Tablet:
    proc: SidecarProcess
    logins: dict[str, dict[str, str]] = field(default_factory=dict)

    def call(self, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self.proc.client(**self.logins[who]) as client:
            return client.request(method, path, **kwargs)

    def start(self, who: str) -> dict[str, Any]:
        r = self.call(who, "POST", "/sessions", json={"qr_code": QR_JSON})
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body


@pytest.fixture(scope="module")
def tablet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tablet]:
    data = tmp_path_factory.mktemp("tablet")
    seed_device(data / "kensa.db")  # tanaka (inspector) and admin
    db = Database(create_sqlite_engine(data / "kensa.db"))
    try:
        with db.atomic() as session:
            auth.add_user(session, "suzuki", PASSWORD)
    finally:
        db.dispose()
    proc = SidecarProcess(data, env={"KENSA_AI_WORKERS": "0", "KENSA_SYNC_ENABLED": "false"})
    proc.start()
    t = Tablet(proc)
    try:
        with proc.client() as client:
            for name in ("tanaka", "suzuki", "admin"):
                r = client.post("/auth/login", json={"username": name, "password": PASSWORD})
                assert r.status_code == 200, r.text
                t.logins[name] = {"X-Kensa-Session": r.json()["token"]}
        yield t
    finally:
        proc.kill()


@dataclass
class Work:
    """One inspection of tanaka's with a photo on its first item, and a queued AI job."""

    sid: str
    item: str
    image: str
    job: str


def tanaka_with_photo(tablet: Tablet) -> Work:
    started = tablet.start("tanaka")
    sid, item = started["id"], started["items"][0]["item_id"]
    r = tablet.call(
        "tanaka",
        "POST",
        f"/sessions/{sid}/items/{item}/images",
        content=photo_jpeg(),
        headers={"Content-Type": "image/jpeg"},
    )
    assert r.status_code == 201, r.text
    image = r.json()["id"]
    # A job as the queue writes one (this sidecar runs no AI workers, so it stays waiting).
    db = Database(create_sqlite_engine(tablet.proc.data_dir / "kensa.db"))
    try:
        with db.atomic() as session:
            row = session.get(d.InspectionSession, sid)
            assert row is not None
            job, _ = queue.enqueue(
                session,
                image_id=image,
                session_id=sid,
                item_id=item,
                pipeline_id="p",
                pipeline_version=1,
                priority="normal",
                user_id=row.user_id,
            )
            job_id = job.id
    finally:
        db.dispose()
    return Work(sid, item, image, job_id)


# Every route that names an inspection, a photo or a job, with what it does to it.
# fmt: off
ROUTES: list[tuple[str, str, Action, dict[str, Any]]] = [
    ("GET",  "/sessions/{sid}",                               Action.READ,    {}),
    ("GET",  "/images/{image}",                               Action.READ,    {}),
    ("GET",  "/images/{image}/thumbnail",                     Action.READ,    {}),
    ("GET",  "/jobs/{job}",                                   Action.READ,    {}),
    ("POST", "/sessions/{sid}/items/{item}/images",           Action.WORK,
     {"content": photo_jpeg(1), "headers": {"Content-Type": "image/jpeg"}}),
    ("POST", "/sessions/{sid}/items/{item}/verification",     Action.WORK,    {"json": VERIFY_OK}),
    ("POST", "/sessions/{sid}/items/{item}/skip",             Action.WORK,    {}),
    ("POST", "/sessions/{sid}/items/{item}/retry",            Action.WORK,    {}),
    ("POST", "/sessions/{sid}/items/{item}/analyse",          Action.WORK,    {"json": {}}),
    ("POST", "/sessions/{sid}/complete",                      Action.WORK,    {}),
    ("POST", "/sessions/{sid}/resume",                        Action.WORK,    {}),
    ("POST", "/jobs/{job}/cancel",                            Action.WORK,    {}),
    ("POST", "/sessions/{sid}/restart",                       Action.DISCARD, {}),
    ("POST", "/sessions/{sid}/discard",                       Action.DISCARD, {}),
    ("POST", "/sessions/{sid}/cancel",                        Action.DISCARD, {}),
]
# fmt: on
ROUTE_IDS = [f"{m} {p}" for m, p, _, _ in ROUTES]


def assert_only_audited(before: State, after: State) -> None:
    """Nothing changed but the audit trail: a refusal may be an audit entry, which syncs as one
    outbox row of its own."""
    audited = after.counts.get("audit_log", 0) - before.counts.get("audit_log", 0)
    assert after.counts["outbox"] - before.counts["outbox"] == audited
    ignored = {"audit_log", "outbox"}
    assert {k: v for k, v in after.counts.items() if k not in ignored} == {
        k: v for k, v in before.counts.items() if k not in ignored
    }
    assert after.files == before.files


def error_of(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "detail"}, body
    error: dict[str, Any] = body["error"]
    return error


@pytest.mark.parametrize("method,path,action,kwargs", ROUTES, ids=ROUTE_IDS)
def test_another_inspector_finds_nothing_and_changes_nothing(
    tablet: Tablet, method: str, path: str, action: Action, kwargs: dict[str, Any]
) -> None:
    work = tanaka_with_photo(tablet)
    before = state(tablet.proc.data_dir)
    r = tablet.call("suzuki", method, path.format(**work.__dict__), **kwargs)
    error = error_of(r, 404)
    # Word for word what an id that does not exist gets: ids cannot be probed.
    missing = {"sid": new_id(), "image": new_id(), "job": new_id()}
    ghost = tablet.call("suzuki", method, path.format(**{**work.__dict__, **missing}), **kwargs)
    ghost_error = error_of(ghost, 404)
    assert error["code"] == ghost_error["code"]
    for real, fake in missing.items():
        ghost_error["message"] = ghost_error["message"].replace(fake, getattr(work, real))
    assert error["message"] == ghost_error["message"]
    assert state(tablet.proc.data_dir) == before
    # The owner still has it all.
    assert tablet.call("tanaka", "GET", f"/sessions/{work.sid}").status_code == 200


@pytest.mark.parametrize(
    "method,path,action,kwargs",
    [r for r in ROUTES if r[2] is Action.WORK],
    ids=[i for i, r in zip(ROUTE_IDS, ROUTES, strict=True) if r[2] is Action.WORK],
)
def test_the_supervisor_records_nothing_in_anothers_inspection(
    tablet: Tablet, method: str, path: str, action: Action, kwargs: dict[str, Any]
) -> None:
    work = tanaka_with_photo(tablet)
    before = state(tablet.proc.data_dir)
    r = tablet.call("admin", method, path.format(**work.__dict__), **kwargs)
    assert error_of(r, 403)["code"] in ("not_your_inspection", "not_your_job")
    assert_only_audited(before, state(tablet.proc.data_dir))


@pytest.mark.parametrize(
    "method,path",
    [(m, p) for m, p, a, _ in ROUTES if a is Action.READ],
)
def test_the_supervisor_reads_anothers_inspection(tablet: Tablet, method: str, path: str) -> None:
    work = tanaka_with_photo(tablet)
    r = tablet.call("admin", method, path.format(**work.__dict__))
    assert r.status_code == 200, r.text


# Discarding needs the signer's password again (sidecar.domain.signatures).
DISCARD_SIGNED = {"signature": {"password": PASSWORD, "meaning": "discarded"}}


@pytest.mark.parametrize("route", ["discard", "cancel"])
def test_the_supervisor_discards_anothers_interrupted_inspection(
    tablet: Tablet, route: str
) -> None:
    work = tanaka_with_photo(tablet)
    r = tablet.call("admin", "POST", f"/sessions/{work.sid}/{route}", json=DISCARD_SIGNED)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"


def test_the_supervisor_restarts_anothers_inspection_as_their_own(tablet: Tablet) -> None:
    work = tanaka_with_photo(tablet)
    r = tablet.call("admin", "POST", f"/sessions/{work.sid}/restart", json=DISCARD_SIGNED)
    assert r.status_code == 201, r.text
    fresh = r.json()["id"]
    assert fresh != work.sid
    assert tablet.call("admin", "GET", f"/sessions/{fresh}").status_code == 200
    assert tablet.call("tanaka", "GET", f"/sessions/{fresh}").status_code == 404
    old = tablet.call("tanaka", "GET", f"/sessions/{work.sid}")
    assert old.status_code == 200 and old.json()["status"] == "cancelled"


def test_interrupted_inspections_are_each_inspectors_own(tablet: Tablet) -> None:
    tanakas = tanaka_with_photo(tablet).sid
    suzukis = tablet.start("suzuki")["id"]

    def listed(who: str) -> set[str]:
        r = tablet.call(who, "GET", "/sessions/interrupted")
        assert r.status_code == 200, r.text
        return {row["id"] for row in r.json()}

    assert tanakas in listed("tanaka") and suzukis not in listed("tanaka")
    assert suzukis in listed("suzuki") and tanakas not in listed("suzuki")
    assert {tanakas, suzukis} <= listed("admin")


def test_interrupted_inspections_name_their_owner_and_what_a_discard_loses(tablet: Tablet) -> None:
    # The resume dialog labels another's work by the name people know and, before a discard,
    # says how many photos it throws away.
    tanakas = tanaka_with_photo(tablet).sid
    suzukis = tablet.start("suzuki")["id"]
    r = tablet.call("admin", "GET", "/sessions/interrupted")
    assert r.status_code == 200, r.text
    rows = {row["id"]: row for row in r.json()}
    assert (rows[tanakas]["username"], rows[tanakas]["display_name"]) == ("tanaka", "田中")
    assert rows[tanakas]["photos"] == 1
    # No full name: the username stands in.
    assert (rows[suzukis]["display_name"], rows[suzukis]["photos"]) == ("suzuki", 0)
    # The inspection itself names its inspector the same way (the summary shows it).
    assert tablet.call("tanaka", "GET", f"/sessions/{tanakas}").json()["display_name"] == "田中"


def test_ai_jobs_are_listed_to_their_inspector_only(tablet: Tablet) -> None:
    work = tanaka_with_photo(tablet)

    def jobs(who: str, **query: str) -> set[str]:
        r = tablet.call(who, "GET", "/jobs", params=query)
        assert r.status_code == 200, r.text
        return {j["id"] for j in r.json()}

    assert work.job in jobs("tanaka") and work.job in jobs("admin")
    assert work.job not in jobs("suzuki")
    assert jobs("suzuki", session_id=work.sid) == set()


def complete(tablet: Tablet, who: str) -> str:
    started = tablet.start(who)
    sid = started["id"]
    for item in started["items"]:
        r = tablet.call(
            who, "POST", f"/sessions/{sid}/items/{item['item_id']}/verification", json=VERIFY_OK
        )
        assert r.status_code == 201, r.text
    r = tablet.call(who, "POST", f"/sessions/{sid}/complete")
    assert r.status_code == 200, r.text
    return str(sid)


@pytest.mark.parametrize("who", ["tanaka", "suzuki"])
@pytest.mark.parametrize("named", ["tanaka", "suzuki", "admin", "nobody"])
def test_an_inspector_may_not_search_anothers_history(tablet: Tablet, who: str, named: str) -> None:
    r = tablet.call(who, "GET", "/history", params={"inspector": named})
    if named == who:
        assert r.status_code == 200, r.text
        assert {row["username"] for row in r.json()["rows"]} <= {who}
    else:
        assert error_of(r, 403)["code"] == "not_your_inspections"


def test_history_and_stats_show_an_inspector_their_own(tablet: Tablet) -> None:
    tanakas = complete(tablet, "tanaka")
    suzukis = complete(tablet, "suzuki")

    def history(who: str) -> dict[str, str]:
        r = tablet.call(who, "GET", "/history", params={"page_size": 200})
        assert r.status_code == 200, r.text
        return {row["id"]: row["username"] for row in r.json()["rows"]}

    def completed(who: str) -> int:
        r = tablet.call(who, "GET", "/stats", params={"period": "month"})
        assert r.status_code == 200, r.text
        return sum(b["total"] for b in r.json()["buckets"])

    assert tanakas in history("tanaka") and suzukis not in history("tanaka")
    assert set(history("suzuki").values()) == {"suzuki"}
    assert {tanakas, suzukis} <= set(history("admin"))
    assert completed("admin") == completed("tanaka") + completed("suzuki")
    assert completed("suzuki") >= 1 and completed("tanaka") >= 1


def test_a_supervisor_may_name_any_inspector(tablet: Tablet) -> None:
    tanakas = complete(tablet, "tanaka")
    r = tablet.call("admin", "GET", "/history", params={"inspector": "tanaka", "page_size": 200})
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    assert tanakas in {row["id"] for row in rows}
    assert {row["username"] for row in rows} == {"tanaka"}
