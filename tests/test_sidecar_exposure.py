"""What the sidecar gives away on loopback, asked of the real process as the shell starts it.

- The served page carries the launch token only when the operator asked for a browser UI.
- A browser page from the Vite dev server's origin may read the API only in dev mode.
- The key login tokens are signed with is nowhere in the data folder: a token forged with
  anything stored there (the old key row included) is refused, and the key file lives in the
  per-user configuration folder, readable by its owner only.
"""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from schema.migrate import downgrade_device
from schema.types import utcnow
from sidecar import security
from tests.support.seed import PASSWORD, seed_device
from tests.support.sidecar import SidecarProcess

INDEX = (
    "<!doctype html><html><head><title>kensa</title></head>"
    '<body><div id="root"></div></body></html>'
)
QUIET = {"KENSA_AI_WORKERS": "0", "KENSA_SYNC_ENABLED": "false", "KENSA_LOG_LEVEL": "WARNING"}
# The last device schema that kept the login-signing key in system_config.
KEY_IN_DATABASE = "0002"
OLD_KEY = "the-key-an-old-version-kept-in-the-database-0123456789"


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    root = tmp_path / "dist"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text(INDEX, encoding="utf-8")
    return root


@contextmanager
def running(data: Path, env: dict[str, str]) -> Iterator[SidecarProcess]:
    proc = SidecarProcess(data, env={**QUIET, **env})
    proc.start()
    try:
        yield proc
    finally:
        proc.kill()


@pytest.fixture
def tablet(tmp_path: Path, dist: Path) -> Iterator[SidecarProcess]:
    """``python -m sidecar`` with what the shell gives it (and a UI build on disk)."""
    seed_device(tmp_path / "data" / "kensa.db")
    config = tmp_path / "config"
    with running(
        tmp_path / "data", {"KENSA_UI_DIST": str(dist), "KENSA_CONFIG_DIR": str(config)}
    ) as proc:
        yield proc


# --- the served page --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "env,carries_token",
    [
        pytest.param({}, False, id="as-the-shell-launches-it"),
        pytest.param({"KENSA_BROWSER_UI": "0"}, False, id="browser-ui-off"),
        pytest.param({"KENSA_DEV": "1"}, False, id="dev-mode-alone"),
        pytest.param({"KENSA_BROWSER_UI": "1"}, True, id="browser-ui-asked-for"),
    ],
)
def test_the_page_carries_the_launch_token_only_for_a_browser_ui(
    tmp_path: Path, dist: Path, env: dict[str, str], carries_token: bool
) -> None:
    seed_device(tmp_path / "data" / "kensa.db")
    env = {"KENSA_UI_DIST": str(dist), **env}
    with running(tmp_path / "data", env) as proc, httpx.Client(base_url=proc.base_url) as anyone:
        for path in ("/", "/index.html"):
            page = anyone.get(path)
            assert page.status_code == 200, page.text
            assert '<div id="root">' in page.text
            assert (proc.token in page.text) is carries_token


# --- CORS -------------------------------------------------------------------------------------

DEV_ORIGINS = ["http://localhost:5173", "http://127.0.0.1:5173"]
TAURI_ORIGINS = ["tauri://localhost", "http://tauri.localhost", "https://tauri.localhost"]
STRANGERS = ["http://localhost:3000", "https://evil.example", "null", "http://localhost:5173.evil"]


def preflight(proc: SidecarProcess, origin: str) -> httpx.Response:
    with httpx.Client(base_url=proc.base_url) as anyone:
        return anyone.options(
            "/sessions/interrupted",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization,x-kensa-session,x-kensa-client",
            },
        )


def allowed(r: httpx.Response, origin: str) -> bool:
    return r.status_code == 200 and r.headers.get("access-control-allow-origin") == origin


@pytest.mark.parametrize("dev", [False, True], ids=["shell", "dev-mode"])
def test_dev_origins_may_read_the_api_only_in_dev_mode(
    tmp_path: Path, dist: Path, dev: bool
) -> None:
    seed_device(tmp_path / "data" / "kensa.db")
    env = {"KENSA_DEV": "1"} if dev else {}
    with running(tmp_path / "data", env) as proc:
        for origin in DEV_ORIGINS:
            assert allowed(preflight(proc, origin), origin) is dev, origin
            with httpx.Client(base_url=proc.base_url) as anyone:
                r = anyone.get("/health", headers={"Origin": origin})
            assert (r.headers.get("access-control-allow-origin") == origin) is dev
        for origin in TAURI_ORIGINS:
            assert allowed(preflight(proc, origin), origin), origin
        for origin in STRANGERS:
            assert not allowed(preflight(proc, origin), origin), origin


# --- the login-signing key --------------------------------------------------------------------


def forge(key: str, user_id: int, version: int = 1) -> str:
    claims = security.LoginClaims(user_id, utcnow() + timedelta(hours=1), version)
    return security.issue_login_token(key, claims)


def stored_texts(data: Path) -> list[str]:
    """Every text value in every table of the device database (what a reader of it gets)."""
    conn = sqlite3.connect(f"file:{data / 'kensa.db'}?mode=ro", uri=True)
    try:
        found: list[str] = []
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                found += [v for v in row if isinstance(v, str) and v]
        return found
    finally:
        conn.close()


def user_ids(data: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{data / 'kensa.db'}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT username, id FROM users").fetchall())
    finally:
        conn.close()


def test_a_login_forged_from_the_data_folder_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    seed_device(data / "kensa.db")
    # A tablet from before: its key in system_config, readable by anyone with the data folder.
    downgrade_device(data / "kensa.db", KEY_IN_DATABASE)
    conn = sqlite3.connect(data / "kensa.db")
    with conn:
        conn.execute(
            "INSERT INTO system_config (key, value, updated_at) "
            "VALUES ('auth.signing_key', ?, CURRENT_TIMESTAMP)",
            (OLD_KEY,),
        )
    conn.close()
    ids = user_ids(data)
    with running(data, {"KENSA_CONFIG_DIR": str(tmp_path / "config")}) as proc:
        texts = stored_texts(data)
        assert OLD_KEY not in texts  # the upgrade removed the readable key
        candidates = {OLD_KEY, proc.token, *(t for t in texts if len(t) >= 16)}
        with proc.client() as client:
            for key in sorted(candidates):
                for version in (1, 2):
                    forged = forge(key, ids["admin"], version)
                    r = client.get("/auth/me", headers={"X-Kensa-Session": forged})
                    assert r.status_code == 401, (key, r.text)
                    assert r.json()["error"]["code"] == "login_invalid"
            # A real login still works, and is signed with a key the data folder does not hold.
            r = client.post("/auth/login", json={"username": "admin", "password": PASSWORD})
            assert r.status_code == 200, r.text
            me = client.get("/auth/me", headers={"X-Kensa-Session": r.json()["token"]})
            assert me.status_code == 200 and me.json()["username"] == "admin"


def test_the_key_file_is_the_users_own_outside_the_data_folder(tablet: SidecarProcess) -> None:
    config = Path(tablet.extra_env["KENSA_CONFIG_DIR"])
    key_file = config / "signing.key"
    assert key_file.is_file()
    assert not key_file.resolve().is_relative_to(tablet.data_dir.resolve())
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.stat().st_mode) == 0o700
    key = key_file.read_text(encoding="ascii").strip()
    assert len(key) >= security.SIGNING_KEY_MIN
    # Nothing under the data folder holds it, in any file.
    for path in tablet.data_dir.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path
    # And it is the key: a token it signs is a login.
    ids = user_ids(tablet.data_dir)
    with tablet.client() as client:
        r = client.get("/auth/me", headers={"X-Kensa-Session": forge(key, ids["tanaka"])})
        assert r.status_code == 200 and r.json()["username"] == "tanaka"


def test_a_key_the_shell_hands_in_is_used_and_no_file_is_made(tmp_path: Path) -> None:
    data = tmp_path / "data"
    seed_device(data / "kensa.db")
    shell_key = "from-the-os-keystore-" + "k" * 32
    config = tmp_path / "config"
    ids = user_ids(data)
    env = {"KENSA_CONFIG_DIR": str(config), "KENSA_SIGNING_KEY": shell_key}
    with running(data, env) as proc, proc.client() as client:
        r = client.get("/auth/me", headers={"X-Kensa-Session": forge(shell_key, ids["tanaka"])})
        assert r.status_code == 200 and r.json()["username"] == "tanaka"
        other = forge(security.new_signing_key(), ids["tanaka"])
        assert client.get("/auth/me", headers={"X-Kensa-Session": other}).status_code == 401
    assert not (config / "signing.key").exists()


def test_a_key_file_others_can_read_is_made_private_again(tmp_path: Path) -> None:
    data = tmp_path / "data"
    seed_device(data / "kensa.db")
    config = tmp_path / "config"
    config.mkdir(mode=0o700)
    key_file = config / "signing.key"
    key_file.write_text(security.new_signing_key() + "\n", encoding="ascii")
    key_file.chmod(0o644)
    with running(data, {"KENSA_CONFIG_DIR": str(config)}):
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("key_file", "env"),
    [
        (b"short\n", {}),                                   # damaged: too short
        (b"\xff\xfe" * 40, {}),                              # not text at all
        (None, {"KENSA_SIGNING_KEY": "too-short"}),          # the shell's key is no key
        (None, {"KENSA_CONFIG_DIR": "{data}/config"}),       # key folder inside the data folder
    ],
)
def test_a_signing_key_that_cannot_be_used_stops_the_start_with_status_2(
    tmp_path: Path, key_file: bytes | None, env: dict[str, str]
) -> None:
    import os
    import subprocess
    import sys

    data, config = tmp_path / "data", tmp_path / "config"
    config.mkdir(mode=0o700)
    if key_file is not None:
        (config / "signing.key").write_bytes(key_file)
        (config / "signing.key").chmod(0o600)
    extra = {k: v.replace("{data}", str(data)) for k, v in env.items()}
    proc = subprocess.run(
        [sys.executable, "-m", "sidecar"],
        env={**os.environ, "KENSA_TOKEN": "t" * 32, "KENSA_DATA_DIR": str(data),
             "KENSA_CONFIG_DIR": str(config), **extra},
        stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
    )
    # 2: "cannot start as configured", which the shell does not retry; no ready line.
    assert proc.returncode == 2, proc.stderr.decode()[-2000:]
    assert b'"ready"' not in proc.stdout
    assert b"signing key" in proc.stderr.lower() or b"signing_key" in proc.stderr.lower()
