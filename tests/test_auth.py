"""Logging in on the tablet: offline from argon2 hashes, lockout, login tokens, `kensa user add`.

Time moves through the services' explicit ``now``, never by sleeping.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from click.testing import Result
from fastapi.testclient import TestClient
from sqlmodel import select
from typer.testing import CliRunner

from schema import device as d
from schema.db import Database, create_sqlite_engine
from schema.types import utcnow
from sidecar import security
from sidecar.app import create_app
from sidecar.cli import app as cli
from sidecar.domain import lockout
from sidecar.errors import Locked, Unauthorized
from sidecar.services import auth
from sidecar.settings import Settings
from tests.support.device_state import Template, make_template
from tests.support.seed import PASSWORD

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
WRONG = "not-the-password"


# A real argon2id hash at a low cost: login reads the cost from the hash and verifies it the same
# way, in a fraction of the time (the lockout tests verify many times). One test below uses the
# production cost, through auth.add_user.
CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture
def db(device_db: Database) -> Database:
    with device_db.atomic() as session:
        session.add(d.User(username="tanaka", password_hash=CHEAP.hash(PASSWORD), full_name="田中"))
    return device_db


def attempt(
    db: Database, password: str, now: datetime, username: str = "tanaka"
) -> auth.Login | Unauthorized | Locked:
    """One login as the API makes it: a failure is committed, then reported."""
    with db.atomic() as session:
        try:
            return auth.login(session, username, password, now=now)
        except (Unauthorized, Locked) as exc:
            return exc


def user_row(db: Database, username: str = "tanaka") -> d.User:
    with db.read() as session:
        return session.exec(select(d.User).where(d.User.username == username)).one()


def locked_until(db: Database, source: str = lockout.UNKNOWN_SOURCE) -> datetime | None:
    """The lock of tanaka at one source (a login without a client id is ``unknown``)."""
    with db.read() as session:
        row = session.get(d.LoginSource, (user_row(db).id, source))
        return row.locked_until if row else None


# --- offline login ----------------------------------------------------------------------------


def test_login_works_offline_from_the_argon2_hash(device_db: Database) -> None:
    db = device_db
    with db.atomic() as session:
        auth.add_user(session, "tanaka", PASSWORD, full_name="田中")
    stored = user_row(db)
    assert stored.password_hash.startswith("$argon2id$")
    assert PASSWORD not in stored.password_hash
    assert isinstance(attempt(db, "kensa-demo-2", NOW), Unauthorized)
    result = attempt(db, PASSWORD, NOW)
    assert isinstance(result, auth.Login)
    assert result.user.username == "tanaka"
    assert result.expires_at == NOW + security.LOGIN_TTL
    with db.atomic() as session:
        assert auth.current_user(session, result.token, now=NOW).username == "tanaka"
    after = user_row(db)
    assert after.last_login_at == NOW and after.failed_attempts == 0


def test_a_wrong_password_says_how_many_attempts_are_left(db: Database) -> None:
    for left in range(lockout.MAX_FAILURES - 1, 0, -1):
        error = attempt(db, WRONG, NOW)
        assert isinstance(error, Unauthorized) and not isinstance(error, Locked)
        assert error.code == "bad_credentials" and error.status_code == 401
        assert error.detail == {"attempts_left": left}
    assert user_row(db).failed_attempts == lockout.MAX_FAILURES - 1


def test_an_unknown_user_is_told_nothing_more(db: Database) -> None:
    error = attempt(db, PASSWORD, NOW, username="suzuki")
    assert isinstance(error, Unauthorized)
    assert error.code == "bad_credentials" and error.detail == {}
    assert error.message == "wrong username or password"


def test_a_success_resets_the_count(db: Database) -> None:
    for _ in range(3):
        attempt(db, WRONG, NOW)
    assert isinstance(attempt(db, PASSWORD, NOW), auth.Login)
    assert user_row(db).failed_attempts == 0
    error = attempt(db, WRONG, NOW)
    assert isinstance(error, Unauthorized) and error.detail == {"attempts_left": 4}


def test_five_failures_lock_the_account_until_the_lock_runs_out(db: Database) -> None:
    for _ in range(lockout.MAX_FAILURES - 1):
        attempt(db, WRONG, NOW)
    fifth = attempt(db, WRONG, NOW + timedelta(seconds=5))
    assert isinstance(fifth, Locked)
    assert fifth.code == "account_locked" and fifth.status_code == 423
    until = NOW + timedelta(seconds=5) + lockout.LOCK_FOR
    assert fifth.detail == {"locked_until": until.isoformat()}
    assert until.isoformat(timespec="seconds") in fifth.message
    assert locked_until(db) == until

    # The right password does not open a locked account, up to the last second of the lock.
    for later in (timedelta(0), lockout.LOCK_FOR / 2, lockout.LOCK_FOR - timedelta(seconds=1)):
        refused = attempt(db, PASSWORD, until - lockout.LOCK_FOR + later)
        assert isinstance(refused, Locked), later
        assert refused.detail == {"locked_until": until.isoformat()}
    assert locked_until(db) == until  # refusals while locked do not extend the lock

    opened = attempt(db, PASSWORD, until)
    assert isinstance(opened, auth.Login)
    after = user_row(db)
    assert after.failed_attempts == 0 and locked_until(db) is None


def test_after_a_lock_runs_out_one_typo_does_not_lock_again(db: Database) -> None:
    for _ in range(lockout.MAX_FAILURES):
        attempt(db, WRONG, NOW)
    error = attempt(db, WRONG, NOW + lockout.LOCK_FOR + timedelta(minutes=1))
    assert isinstance(error, Unauthorized) and not isinstance(error, Locked)
    assert error.detail == {"attempts_left": lockout.MAX_FAILURES - 1}


# --- login tokens -----------------------------------------------------------------------------


def login_token(db: Database, now: datetime = NOW) -> str:
    result = attempt(db, PASSWORD, now)
    assert isinstance(result, auth.Login)
    return result.token


def current(db: Database, token: str, now: datetime) -> d.User:
    with db.atomic() as session:
        return auth.current_user(session, token, now=now)


def test_a_login_expires_after_one_shift(db: Database) -> None:
    token = login_token(db)
    assert current(db, token, NOW + security.LOGIN_TTL - timedelta(seconds=1)).username == "tanaka"
    with pytest.raises(Unauthorized) as caught:
        current(db, token, NOW + security.LOGIN_TTL)
    assert caught.value.code == "login_expired"


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda body, sig: f"{body}.{sig[::-1]}", id="signature-reversed"),
        pytest.param(
            lambda body, sig: f"{body[:-1]}{'A' if body[-1] != 'A' else 'B'}.{sig}",
            id="body-changed",
        ),
        pytest.param(
            lambda body, sig: security.issue_login_token(
                "another-device-key", security.LoginClaims(1, NOW + timedelta(hours=1), 1)
            ),
            id="signed-by-another-key",
        ),
        pytest.param(lambda body, sig: body, id="no-signature"),
        pytest.param(lambda body, sig: f"{body}.{sig}.x", id="extra-part"),
        pytest.param(lambda body, sig: "", id="empty"),
        pytest.param(lambda body, sig: "ä.ö", id="non-ascii"),
    ],
)
def test_a_tampered_token_is_refused(db: Database, tamper: Callable[[str, str], str]) -> None:
    body, sig = login_token(db).split(".")
    forged = tamper(body, sig)
    with pytest.raises(Unauthorized) as caught:
        current(db, forged, NOW)
    assert caught.value.code == "login_invalid"


def test_logout_ends_the_login(db: Database) -> None:
    token = login_token(db)
    user = current(db, token, NOW)
    with db.atomic() as session:
        auth.logout(session, session.merge(user))
    with pytest.raises(Unauthorized) as caught:
        current(db, token, NOW)
    assert caught.value.code == "login_invalid"
    # A new login works again.
    assert current(db, login_token(db), NOW).username == "tanaka"


# --- the same over HTTP -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return make_template(tmp_path_factory.mktemp("template"))


@pytest.fixture
def client(tmp_path: Path, template: Template) -> Iterator[TestClient]:
    db = Database(create_sqlite_engine(template.copy_to(tmp_path)))
    try:
        with db.atomic() as session:
            user = session.exec(select(d.User).where(d.User.username == "tanaka")).one()
            user.password_hash = CHEAP.hash(PASSWORD)
            session.add(user)
    finally:
        db.dispose()
    app = create_app(Settings(data_dir=tmp_path, token="t", ai_workers=0))
    with TestClient(app, base_url="http://127.0.0.1") as c:
        c.headers["Authorization"] = "Bearer t"
        yield c


def login(client: TestClient, password: str = PASSWORD) -> httpx.Response:
    return client.post("/auth/login", json={"username": "tanaka", "password": password})


def test_http_lockout(client: TestClient) -> None:
    for left in (4, 3, 2, 1):
        r = login(client, WRONG)
        assert r.status_code == 401
        error = r.json()["error"]
        assert error["code"] == "bad_credentials" and error["detail"] == {"attempts_left": left}
    r = login(client, WRONG)
    assert r.status_code == 423
    error = r.json()["error"]
    assert error["code"] == "account_locked"
    until = datetime.fromisoformat(error["detail"]["locked_until"])
    assert until > utcnow()
    r = login(client, PASSWORD)
    assert r.status_code == 423
    assert r.json()["error"]["detail"]["locked_until"] == error["detail"]["locked_until"]


def test_http_tokens(client: TestClient, tmp_path: Path) -> None:
    r = client.post("/auth/login", json={"username": "tanaka", "password": PASSWORD})
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    assert datetime.fromisoformat(r.json()["expires_at"]) > utcnow()
    me = client.get("/auth/me", headers={"X-Kensa-Session": token})
    assert me.status_code == 200 and me.json()["username"] == "tanaka"

    # A token issued a shift ago (the service takes the time it is told).
    db = Database(create_sqlite_engine(tmp_path / "kensa.db"))
    try:
        with db.atomic() as session:
            old = auth.login(session, "tanaka", PASSWORD, now=utcnow() - timedelta(hours=13))
    finally:
        db.dispose()
    r = client.get("/auth/me", headers={"X-Kensa-Session": old.token})
    assert r.status_code == 401 and r.json()["error"]["code"] == "login_expired"

    body, sig = token.split(".")
    r = client.get("/auth/me", headers={"X-Kensa-Session": f"{body}x.{sig}"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "login_invalid"

    assert client.post("/auth/logout", headers={"X-Kensa-Session": token}).status_code == 204
    r = client.get("/auth/me", headers={"X-Kensa-Session": token})
    assert r.status_code == 401 and r.json()["error"]["code"] == "login_invalid"
    r = client.post("/auth/logout", headers={"X-Kensa-Session": token})
    assert r.status_code == 401


def test_http_login_takes_the_password_as_typed(client: TestClient, tmp_path: Path) -> None:
    # Spaces at either end are part of a password; stripping them would lock this user out.
    db = Database(create_sqlite_engine(tmp_path / "kensa.db"))
    try:
        with db.atomic() as session:
            session.add(d.User(username="sato", password_hash=CHEAP.hash("  two spaces  ")))
    finally:
        db.dispose()
    r = client.post("/auth/login", json={"username": " sato ", "password": "  two spaces  "})
    assert r.status_code == 200, r.text
    assert r.json()["user"]["username"] == "sato"
    r = client.post("/auth/login", json={"username": "sato", "password": "two spaces"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "bad_credentials"


# --- kensa user add ---------------------------------------------------------------------------


def run_cli(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input)


def can_log_in(data_dir: Path, username: str, password: str) -> bool:
    db = Database(create_sqlite_engine(data_dir / "kensa.db"))
    try:
        with db.atomic() as session:
            return auth.login(session, username, password).user.username == username
    finally:
        db.dispose()


def test_user_add_creates_a_user_who_can_log_in(tmp_path: Path) -> None:
    data = tmp_path / "tablet"
    data.mkdir()
    result = run_cli("user", "add", "suzuki", "--password", "suzuki-pw-1", "--data-dir", str(data))
    assert result.exit_code == 0, result.output
    assert "added inspector suzuki" in result.stdout
    assert can_log_in(data, "suzuki", "suzuki-pw-1")

    # The password typed at the prompt, twice, as an admin would.
    result = run_cli(
        "user", "add", "sato", "--role", "admin", "--data-dir", str(data),
        input="sato-pw-12\nsato-pw-12\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "added admin sato" in result.stdout
    assert "sato-pw-12" not in result.output
    assert can_log_in(data, "sato", "sato-pw-12")


def test_user_add_refuses_a_duplicate(tmp_path: Path) -> None:
    args = ("user", "add", "suzuki", "--data-dir", str(tmp_path))
    assert run_cli(*args, "--password", "suzuki-pw-1").exit_code == 0
    again = run_cli(*args, "--password", "other-pw-22")
    assert again.exit_code == 2
    assert "user suzuki already exists" in again.stderr
    assert "Traceback" not in again.output
    assert can_log_in(tmp_path, "suzuki", "suzuki-pw-1")


@pytest.mark.parametrize(
    "args,message",
    [
        (("--password", "short"), "at least 8 characters"),
        (("--password", "long-enough", "--role", "boss"), "role must be one of"),
    ],
)
def test_user_add_refuses_bad_input(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = run_cli("user", "add", "suzuki", "--data-dir", str(tmp_path), *args)
    assert result.exit_code == 2
    assert message in result.stderr
