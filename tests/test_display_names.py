"""Where a person is named, people read their name, not their login: the verdict's author, the
audit trail's who and the history list carry ``display_name`` (the full name, else the
username), from the real sidecar process."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from schema.db import Database, create_sqlite_engine
from sidecar.services import auth
from tests.support.seed import PASSWORD, QR_JSON, photo_jpeg, seed_device
from tests.support.sidecar import SidecarProcess

VERIFY_OK = {"final_result": "OK", "verification_time": 1.0}


class Tablet:
    def __init__(self, proc: SidecarProcess) -> None:
        self.proc = proc
        self.logins: dict[str, dict[str, str]] = {}

    def call(self, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self.proc.client(**self.logins[who]) as client:
            return client.request(method, path, **kwargs)

    def verified_item(self, who: str) -> tuple[str, dict[str, Any]]:
        """An inspection of ``who``'s with its first item photographed and verified OK."""
        r = self.call(who, "POST", "/sessions", json={"qr_code": QR_JSON})
        assert r.status_code == 201, r.text
        sid, item = r.json()["id"], r.json()["items"][0]["item_id"]
        r = self.call(
            who,
            "POST",
            f"/sessions/{sid}/items/{item}/images",
            content=photo_jpeg(),
            headers={"Content-Type": "image/jpeg"},
        )
        assert r.status_code == 201, r.text
        r = self.call(who, "POST", f"/sessions/{sid}/items/{item}/verification", json=VERIFY_OK)
        assert r.status_code in (200, 201), r.text
        body: dict[str, Any] = r.json()
        return sid, body


@pytest.fixture(scope="module")
def tablet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tablet]:
    data = tmp_path_factory.mktemp("tablet")
    seed_device(data / "kensa.db")  # tanaka (田中, inspector) and admin
    db = Database(create_sqlite_engine(data / "kensa.db"))
    try:
        with db.atomic() as session:
            auth.add_user(session, "suzuki", PASSWORD)  # no full name
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


@pytest.mark.parametrize("who,name", [("tanaka", "田中"), ("suzuki", "suzuki")])
def test_a_verdict_names_who_gave_it(tablet: Tablet, who: str, name: str) -> None:
    sid, answer = tablet.verified_item(who)
    assert (answer["username"], answer["display_name"]) == (who, name)
    r = tablet.call(who, "GET", f"/sessions/{sid}")
    assert r.status_code == 200, r.text
    [verified] = [v for i in r.json()["items"] for v in i["verifications"]]
    assert (verified["username"], verified["display_name"]) == (who, name)


@pytest.mark.parametrize("who,name", [("tanaka", "田中"), ("suzuki", "suzuki")])
def test_the_audit_trail_names_who_acted(tablet: Tablet, who: str, name: str) -> None:
    sid, _ = tablet.verified_item(who)
    r = tablet.call("admin", "GET", f"/sessions/{sid}/audit")
    assert r.status_code == 200, r.text
    theirs = [e for e in r.json() if e["username"] == who]
    assert theirs, "the inspector's own entries are in the trail"
    assert {e["display_name"] for e in theirs} == {name}
    # An entry without a user names nobody.
    assert all(e["display_name"] is None for e in r.json() if e["username"] is None)


def test_the_history_list_names_each_inspector(tablet: Tablet) -> None:
    tanakas, _ = tablet.verified_item("tanaka")
    suzukis, _ = tablet.verified_item("suzuki")
    r = tablet.call("admin", "GET", "/history", params={"page_size": 200})
    assert r.status_code == 200, r.text
    rows = {row["id"]: row for row in r.json()["rows"]}
    assert (rows[tanakas]["username"], rows[tanakas]["display_name"]) == ("tanaka", "田中")
    assert (rows[suzukis]["username"], rows[suzukis]["display_name"]) == ("suzuki", "suzuki")
    # An inspector's own list names them the same way.
    r = tablet.call("tanaka", "GET", "/history")
    assert r.status_code == 200, r.text
    assert {row["display_name"] for row in r.json()["rows"]} == {"田中"}


def test_the_history_is_filtered_by_the_name_it_shows_or_the_login_name(tablet: Tablet) -> None:
    tanakas, _ = tablet.verified_item("tanaka")
    for name in ("田中", "tanaka"):
        r = tablet.call("admin", "GET", "/history", params={"inspector": name, "page_size": 200})
        assert r.status_code == 200, r.text
        rows = r.json()["rows"]
        assert tanakas in {row["id"] for row in rows}, name
        assert {row["username"] for row in rows} == {"tanaka"}, name
    # An inspector may name themself either way; anyone else is refused, not shown their own.
    for name in ("田中", "tanaka"):
        r = tablet.call("tanaka", "GET", "/history", params={"inspector": name})
        assert r.status_code == 200, r.text
    r = tablet.call("tanaka", "GET", "/history", params={"inspector": "suzuki"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_your_inspections"

