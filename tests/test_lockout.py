"""Login lockout that one guesser cannot turn against a whole shift.

The rule (``sidecar.domain.lockout``) is table-tested; then the real sidecar is attacked from
other clients (none named, one, a new one for every try) while the inspector's own tablet UI,
which has logged them in before, still gets in at once; and the supervisor lifts a lock.
"""

from __future__ import annotations

import concurrent.futures
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from schema.db import Database, create_sqlite_engine
from sidecar.domain import lockout
from sidecar.services import auth
from tests.support.seed import PASSWORD, seed_device
from tests.support.sidecar import SidecarProcess

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
WRONG = "not-the-password"
TABLET_UI = "tablet-ui-7f3a9c"  # the id the inspector's own UI sends (X-Kensa-Client)

# --- the rule ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header,source",
    [
        (None, lockout.UNKNOWN_SOURCE),
        ("", lockout.UNKNOWN_SOURCE),
        ("abcdefgh", "abcdefgh"),
        ("A1_b2-C3" * 8, "A1_b2-C3" * 8),
        (TABLET_UI, TABLET_UI),
    ],
)
def test_a_client_id_names_its_source(header: str | None, source: str) -> None:
    assert lockout.source_of(header) == source


BAD_CLIENT_IDS = [
    "short",
    "x" * 65,
    "has space1",
    "unknown",
    "ünïcode-id",
    "../../etc/passwd",
    "a;DROP TABLE",
    "line\nbreak1",
]


@pytest.mark.parametrize("header", BAD_CLIENT_IDS)
def test_a_malformed_client_id_is_refused(header: str) -> None:
    with pytest.raises(ValueError):
        lockout.source_of(header)


@pytest.mark.parametrize(
    "failures,wait_s",
    [
        (0, 0),
        (1, 0),
        (2, 0),
        (3, 1),
        (4, 2),
        (5, 4),
        (6, 8),
        (7, 16),
        (8, 30),
        (50, 30),
        (10**6, 30),
    ],
)
def test_the_slowdown_doubles_up_to_its_cap(failures: int, wait_s: int) -> None:
    expected = min(timedelta(seconds=wait_s), lockout.SLOWDOWN_CAP)
    assert lockout.slowdown(failures) == expected


@pytest.mark.parametrize(
    "source,last_success,trusted",
    [
        (TABLET_UI, NOW, True),
        (TABLET_UI, None, False),
        (lockout.UNKNOWN_SOURCE, NOW, False),  # anyone can send no id
        (lockout.UNKNOWN_SOURCE, None, False),
    ],
)
def test_only_a_named_client_that_logged_the_user_in_is_trusted(
    source: str, last_success: datetime | None, trusted: bool
) -> None:
    assert lockout.is_trusted(source, last_success) is trusted


@pytest.mark.parametrize(
    "state,last_failed,trusted,gone",
    [
        (lockout.Attempt(1, None), NOW - lockout.FORGET_AFTER, False, True),
        (lockout.Attempt(1, None), NOW - lockout.FORGET_AFTER / 2, False, False),
        (lockout.Attempt(5, NOW + timedelta(minutes=1)), NOW - timedelta(hours=5), False, False),
        (lockout.Attempt(5, NOW - timedelta(minutes=1)), NOW - timedelta(hours=5), False, True),
        (lockout.Attempt(1, None), NOW - timedelta(days=9), True, False),
        (lockout.Attempt(0, None), None, False, True),
    ],
)
def test_which_source_records_are_forgotten(
    state: lockout.Attempt, last_failed: datetime | None, trusted: bool, gone: bool
) -> None:
    assert lockout.forgotten(state, last_failed, trusted, NOW) is gone


# --- the real sidecar -------------------------------------------------------------------------


@pytest.fixture
def tablet(tmp_path: Path) -> Iterator[SidecarProcess]:
    seed_device(tmp_path / "kensa.db")  # tanaka (inspector), admin
    db = Database(create_sqlite_engine(tmp_path / "kensa.db"))
    try:
        with db.atomic() as session:
            auth.add_user(session, "suzuki", PASSWORD)
    finally:
        db.dispose()
    proc = SidecarProcess(tmp_path, env={"KENSA_AI_WORKERS": "0", "KENSA_SYNC_ENABLED": "false"})
    proc.start()
    yield proc
    proc.kill()


def login(
    proc: SidecarProcess, password: str, client_id: str | None, username: str = "tanaka"
) -> tuple[httpx.Response, float]:
    headers = {"X-Kensa-Client": client_id} if client_id is not None else {}
    with proc.client(**headers) as client:
        began = time.monotonic()
        r = client.post("/auth/login", json={"username": username, "password": password})
        return r, time.monotonic() - began


def code_of(r: httpx.Response) -> str:
    body: dict[str, Any] = r.json()
    return str(body["error"]["code"])


def login_rows(data: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{data / 'kensa.db'}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT * FROM login_sources ORDER BY user_id, source").fetchall()
        users = conn.execute("SELECT username, failed_attempts FROM users ORDER BY id").fetchall()
        return rows + users
    finally:
        conn.close()


def guessers(kind: str) -> Iterator[str | None]:
    n = 0
    while True:
        n += 1
        if kind == "no-client-id":
            yield None
        elif kind == "one-client":
            yield "guesser-0001"
        else:
            yield f"guesser-{n:04d}"


@pytest.mark.parametrize("kind", ["no-client-id", "one-client", "a-new-client-every-try"])
def test_a_guesser_cannot_lock_the_inspector_out_of_their_own_tablet(
    tablet: SidecarProcess, kind: str
) -> None:
    r, _ = login(tablet, PASSWORD, TABLET_UI)  # the inspector's tablet has logged them in
    assert r.status_code == 200, r.text
    sources = guessers(kind)
    waited = 0.0
    for n in range(1, lockout.MAX_FAILURES + 1):
        r, took = login(tablet, WRONG, next(sources))
        expected = "account_locked" if kind != "a-new-client-every-try" and n == 5 else None
        assert code_of(r) == (expected or "bad_credentials"), r.text
        # Every failure counts for tanaka wherever it comes from: the untrusted wait grows.
        wait = lockout.slowdown(n - 1).total_seconds()
        assert took >= wait * 0.95, (n, took, wait)
        waited += wait
    assert waited >= 3  # 1 s + 2 s: guessing got slower
    if kind != "a-new-client-every-try":
        # That client is locked, even with the right password.
        r, _ = login(tablet, PASSWORD, "guesser-0001" if kind == "one-client" else None)
        assert r.status_code == 423 and code_of(r) == "account_locked", r.text
    # The inspector's own tablet: no lock, no wait, although 8 s are owed elsewhere now.
    r, took = login(tablet, PASSWORD, TABLET_UI)
    assert r.status_code == 200, r.text
    assert took < lockout.slowdown(lockout.MAX_FAILURES).total_seconds() / 2, took
    # And another inspector was never touched.
    r, _ = login(tablet, PASSWORD, None, username="suzuki")
    assert r.status_code == 200, r.text


def test_guesses_in_parallel_from_new_clients_wait_their_turn(tablet: SidecarProcess) -> None:
    for n in range(lockout.FREE_FAILURES):
        r, _ = login(tablet, WRONG, f"warm-up-{n:04d}")
        assert code_of(r) == "bad_credentials"
    # Three at once, each from a client never seen: one at a time, 1 s, 2 s and 4 s apart.
    began = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        done = list(pool.map(lambda n: login(tablet, WRONG, f"burst-{n:04d}"), range(3)))
    elapsed = time.monotonic() - began
    assert all(code_of(r) == "bad_credentials" for r, _ in done)
    expected = sum(lockout.slowdown(lockout.FREE_FAILURES + n).total_seconds() for n in range(3))
    assert elapsed >= expected * 0.95, (elapsed, expected)


@pytest.mark.parametrize("header", BAD_CLIENT_IDS[:-1])  # httpx refuses a newline in a header
def test_a_malformed_client_id_is_a_clear_error_and_counts_nothing(
    tablet: SidecarProcess, header: str
) -> None:
    before = login_rows(tablet.data_dir)
    with tablet.client() as client:
        r = client.post(
            "/auth/login",
            json={"username": "tanaka", "password": WRONG},
            headers={"X-Kensa-Client": header.encode("utf-8")},
        )
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_input" and error["detail"] == {"field": "X-Kensa-Client"}
    assert login_rows(tablet.data_dir) == before


def test_the_supervisor_unlocks_a_user(tablet: SidecarProcess) -> None:
    for _ in range(lockout.MAX_FAILURES):
        login(tablet, WRONG, "guesser-0001")
    r, _ = login(tablet, PASSWORD, "guesser-0001")
    assert r.status_code == 423, r.text

    with tablet.client() as client:
        admin = client.post("/auth/login", json={"username": "admin", "password": PASSWORD})
        suzuki = client.post("/auth/login", json={"username": "suzuki", "password": PASSWORD})
        as_admin = {"X-Kensa-Session": admin.json()["token"]}
        as_suzuki = {"X-Kensa-Session": suzuki.json()["token"]}
        before = login_rows(tablet.data_dir)
        # Only a supervisor or an admin may.
        r = client.post("/users/tanaka/unlock")
        assert r.status_code == 401 and code_of(r) == "login_required"
        r = client.post("/users/tanaka/unlock", headers=as_suzuki)
        assert r.status_code == 403 and code_of(r) == "forbidden_role"
        r = client.post("/users/nobody/unlock", headers=as_admin)
        assert r.status_code == 404, r.text
        assert login_rows(tablet.data_dir) == before
        r = client.post("/users/tanaka/unlock", headers=as_admin)
        assert r.status_code == 200 and r.json()["username"] == "tanaka", r.text
    # The lock is gone, and so is the slowdown.
    r, _ = login(tablet, PASSWORD, "guesser-0001")
    assert r.status_code == 200, r.text
