"""The encrypted device store, through the real sidecar process and the real ``kensa`` command.

A tablet's store opens only with its data key: without it, or with any other key, the sidecar
exits 2 with a clear message and leaves every file in the data folder as it was. Encrypting a
plaintext store and rotating the key may be killed at any point and run again.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from schema.db import Database, create_sqlite_engine
from schema.errors import KeyRefused
from schema.migrate import SQLITE_MAGIC
from sidecar import key_source
from sidecar.keys import DataKey
from tests.support.seed import PASSWORD, QR_JSON, qr_png, seed_device
from tests.support.sidecar import SidecarProcess

PRODUCT_NAME = "ブレーキキャリパー"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KENSA_PLAINTEXT", "KENSA_KEY_FILE")}
    return {**env, "KENSA_AI_WORKERS": "0", "KENSA_SYNC_ENABLED": "0", **extra}


def _tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (the -wal and -shm files included) and its SHA-256."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _key_file(folder: Path, key: DataKey) -> Path:
    path = folder / "tablet.key"
    key_source.write_key_file(path, key)
    return path


def _kensa(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sidecar.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _login(client: httpx.Client, username: str) -> dict[str, str]:
    r = client.post("/auth/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"X-Kensa-Session": r.json()["token"]}


def _users(path: Path, key: DataKey | None) -> list[str]:
    db = Database(create_sqlite_engine(path, key=key))
    try:
        with db.read() as session:
            rows = session.connection().exec_driver_sql("SELECT username FROM users")
            return sorted(str(r[0]) for r in rows)
    finally:
        db.dispose()


def test_a_tablet_store_keeps_nothing_in_clear_and_reopens_with_its_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key = DataKey.generate()
    seed_device(data / "kensa.db", key)
    sidecar = SidecarProcess(data, key=key, env=_env(), stderr_path=tmp_path / "stderr.log")
    ready = sidecar.start()
    assert ready["encrypted"] is True
    try:
        with sidecar.client() as client:
            login = _login(client, "tanaka")
            client.headers.update(login)
            scan = client.post("/scan", files={"file": ("label.png", qr_png(), "image/png")})
            assert scan.status_code == 200, scan.text
            started = client.post("/sessions", json={"qr_code": QR_JSON})
            assert started.status_code == 201, started.text
            session_id = started.json()["id"]
    finally:
        assert sidecar.close_stdin_and_wait() == 0
    assert os.stat(data).st_mode & 0o777 == 0o700
    # The login signing key lives in the encrypted store, not in a file beside it.
    assert not list(data.rglob("signing.key"))
    secrets = [b"tanaka", QR_JSON.encode(), PRODUCT_NAME.encode(), SQLITE_MAGIC]
    for path in data.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            for secret in secrets:
                assert secret not in content, f"{secret!r} in {path.relative_to(data)}"

    # The same key reopens it; the login made before the restart still holds (same signing key).
    again = SidecarProcess(data, key=key, env=_env(), stderr_path=tmp_path / "stderr.log")
    again.start()
    try:
        with again.client(**login) as client:
            r = client.get(f"/sessions/{session_id}")
            assert r.status_code == 200, r.text
            assert r.json()["id"] == session_id
    finally:
        assert again.close_stdin_and_wait() == 0


def test_no_key_wrong_key_truncated_key_another_tablets_key_exit_2_files_unchanged(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    key = DataKey.generate()
    seed_device(data / "kensa.db", key)
    first = SidecarProcess(data, key=key, env=_env(), stderr_path=tmp_path / "stderr.log")
    first.start()
    assert first.close_stdin_and_wait() == 0
    before = _tree(data)
    assert "kensa.db" in before and "logs/sidecar.log" in before

    def start(args: list[str], stdin: bytes, **env: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "sidecar", *args],
            input=stdin,
            env=_env(KENSA_TOKEN="t" * 32, KENSA_DATA_DIR=str(data), **env),
            capture_output=True,
            timeout=60,
        )

    other_tablet = DataKey.generate()
    loose = tmp_path / "loose.key"
    loose.write_text(key.hex() + "\n")
    loose.chmod(0o644)
    cases = {
        "wrong key": (["--key-stdin"], {"data_key": other_tablet.hex()}, {}, "cannot be opened"),
        "truncated": (["--key-stdin"], {"data_key": key.hex()[:63]}, {}, "64 lower-case hex"),
        "no line": (["--key-stdin"], None, {}, "stdin closed before"),
        "not json": (["--key-stdin"], key.hex(), {}, "must be"),
        "no key": ([], None, {}, "no data key"),
        "key file 0644": ([], None, {"KENSA_KEY_FILE": str(loose)}, "must be 0600"),
        "wrong key file": (
            [],
            None,
            {"KENSA_KEY_FILE": str(_key_file(tmp_path, other_tablet))},
            "cannot be opened",
        ),
    }
    for name, (args, line, env, message) in cases.items():
        if isinstance(line, dict):
            stdin = json.dumps(line).encode() + b"\n"
        else:
            stdin = b"" if line is None else line.encode() + b"\n"
        proc = start(args, stdin, **env)
        stderr = proc.stderr.decode()
        assert proc.returncode == 2, (name, stderr)
        assert message in stderr, (name, stderr)
        assert proc.stdout == b"", name
        # The key itself is never repeated in what the sidecar says.
        assert key.hex() not in stderr and other_tablet.hex() not in stderr, name
        assert _tree(data) == before, name

    # A plaintext store is refused with a key, and an encrypted one without one even when a
    # plaintext store is allowed.
    proc = start([], b"", KENSA_PLAINTEXT="1")
    assert proc.returncode == 2 and "data key" in proc.stderr.decode()
    assert _tree(data) == before


def test_the_key_line_leaves_stdin_to_the_watcher(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    key = DataKey.generate()
    os.write(write_end, json.dumps({"data_key": key.hex()}).encode() + b"\nmore")
    os.close(write_end)
    try:
        assert key_source.read_stdin_line(read_end) == key
        assert os.read(read_end, 100) == b"more"
    finally:
        os.close(read_end)


@pytest.mark.parametrize("crash_at", ["exported", "checked", "replaced", None])
def test_db_encrypt_killed_at_any_point_loses_nothing(tmp_path: Path, crash_at: str | None) -> None:
    data = tmp_path / "data"
    plain = _env(KENSA_DATA_DIR=str(data), KENSA_PLAINTEXT="1")
    made = _kensa(
        "user", "add", "kobayashi", "--role", "admin", "--password", "pw-12345678", env=plain
    )
    assert made.returncode == 0, made.stderr
    key_path = tmp_path / "keys" / "tablet.key"
    env = _env(KENSA_DATA_DIR=str(data), KENSA_KEY_FILE=str(key_path))
    if crash_at is not None:
        killed = _kensa("db", "encrypt", env={**env, "KENSA_TEST_CRASH_AT": crash_at})
        assert killed.returncode == 137, killed.stderr
    key = key_source.read_key_file(key_path) if key_path.exists() else None
    db_path = data / "kensa.db"
    if crash_at in ("exported", "checked"):
        # Stopped before the rename: the plaintext store is whole.
        assert db_path.read_bytes().startswith(SQLITE_MAGIC)
        assert _users(db_path, None) == ["kobayashi"]
    done = _kensa("db", "encrypt", env=env)
    assert done.returncode == 0, done.stderr
    assert ("already encrypted" in done.stdout) == (crash_at == "replaced")
    key = key_source.read_key_file(key_path)
    assert oct(key_path.stat().st_mode & 0o777) == "0o600"
    assert not db_path.read_bytes().startswith(SQLITE_MAGIC)
    assert not (data / "kensa.db.encrypting").exists()
    assert _users(db_path, key) == ["kobayashi"]
    assert b"kobayashi" not in db_path.read_bytes()


def test_key_rotate_rekeys_and_keeps_the_new_key_where_the_old_was(tmp_path: Path) -> None:
    data = tmp_path / "data"
    old = DataKey.generate()
    seed_device(data / "kensa.db", old)
    key_path = _key_file(tmp_path, old)
    env = _env(KENSA_DATA_DIR=str(data), KENSA_KEY_FILE=str(key_path))
    rotated = _kensa("key", "rotate", env=env)
    assert rotated.returncode == 0, rotated.stderr
    new = key_source.read_key_file(key_path)
    assert new != old
    assert oct(key_path.stat().st_mode & 0o777) == "0o600"
    assert "tanaka" in _users(data / "kensa.db", new)
    with pytest.raises(KeyRefused):
        _users(data / "kensa.db", old)


def test_key_rotate_killed_after_rekeying_is_finished_by_the_next_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    old = DataKey.generate()
    seed_device(data / "kensa.db", old)
    key_path = _key_file(tmp_path, old)
    env = _env(KENSA_DATA_DIR=str(data), KENSA_KEY_FILE=str(key_path))
    killed = _kensa("key", "rotate", env={**env, "KENSA_TEST_CRASH_AT": "rekeyed"})
    assert killed.returncode == 137
    # The store has the new key; the key file still the old one, the new one beside it.
    assert key_source.read_key_file(key_path) == old
    with pytest.raises(KeyRefused):
        _users(data / "kensa.db", old)
    sidecar = SidecarProcess(data, env=env, stderr_path=tmp_path / "stderr.log")
    assert sidecar.start()["encrypted"] is True
    with sidecar.client() as client:
        client.headers.update(_login(client, "tanaka"))
    assert sidecar.close_stdin_and_wait() == 0
    new = key_source.read_key_file(key_path)
    assert new != old
    assert not key_path.with_name(key_path.name + ".next").exists()
    assert "tanaka" in _users(data / "kensa.db", new)


def test_kensa_commands_open_the_encrypted_store_with_its_key_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key = DataKey.generate()
    seed_device(data / "kensa.db", key)
    good = _env(KENSA_DATA_DIR=str(data), KENSA_KEY_FILE=str(_key_file(tmp_path, key)))
    other = tmp_path / "other"
    other.mkdir()
    bad = {**good, "KENSA_KEY_FILE": str(_key_file(other, DataKey.generate()))}

    upgraded = _kensa("db", "upgrade", "--device", str(data / "kensa.db"), env=good)
    assert upgraded.returncode == 0, upgraded.stderr
    verified = _kensa("audit", "verify", env=good)
    assert verified.returncode == 0, verified.stderr
    assert "audit trail intact" in verified.stdout
    doctor = _kensa("doctor", "--no-load", env=good)
    assert "encrypted (SQLCipher" in doctor.stdout, doctor.stdout + doctor.stderr

    before = _tree(data)

    for args in (["db", "upgrade", "--device", str(data / "kensa.db")], ["audit", "verify"]):
        refused = _kensa(*args, env=bad)
        assert refused.returncode == 2, (args, refused.stderr)
        assert "cannot be opened with this data key" in refused.stderr, refused.stderr
    assert _tree(data) == before


def test_doctor_shows_a_plaintext_store_loudly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    seed_device(data / "kensa.db")
    doctor = _kensa("doctor", "--no-load", env=_env(KENSA_DATA_DIR=str(data), KENSA_PLAINTEXT="1"))
    assert "PLAINTEXT — NOT ENCRYPTED" in doctor.stdout, doctor.stdout + doctor.stderr
    assert "KENSA_PLAINTEXT=1" in doctor.stdout
