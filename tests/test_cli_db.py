"""`kensa db upgrade`: creates a device database, and refuses files it must not touch."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from schema.migrate import head_revision, upgrade_device
from sidecar.cli import app

runner = CliRunner()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_upgrade_creates_a_device_database(tmp_path: Path) -> None:
    target = tmp_path / "new" / "kensa.db"
    result = runner.invoke(app, ["db", "upgrade", "--device", str(target)])
    assert result.exit_code == 0, result.output
    assert f"at revision {head_revision('device')}" in result.output
    conn = sqlite3.connect(target)
    try:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (
            head_revision("device"),
        )
    finally:
        conn.close()


def _truncated_kensa_db(tmp_path: Path) -> Path:
    good = tmp_path / "good.db"
    upgrade_device(good)
    conn = sqlite3.connect(good)
    conn.execute("PRAGMA journal_mode=DELETE")  # fold the WAL in so the main file is complete
    conn.close()
    data = good.read_bytes()
    bad = tmp_path / "truncated.db"
    bad.write_bytes(data[: len(data) // 3])
    return bad


def _garbled_pages(tmp_path: Path) -> Path:
    good = tmp_path / "good2.db"
    upgrade_device(good)
    conn = sqlite3.connect(good)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    data = bytearray(good.read_bytes())
    page = 4096
    for offset in range(page, len(data), page * 2):  # scribble over every other page, keep header
        data[offset : offset + 200] = os.urandom(200)
    bad = tmp_path / "garbled.db"
    bad.write_bytes(bytes(data))
    return bad


def _foreign_app_db(tmp_path: Path) -> Path:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount REAL)")
    conn.execute("INSERT INTO invoices (amount) VALUES (12.5)")
    conn.commit()
    conn.close()
    return path


def _newer_kensa_db(tmp_path: Path) -> Path:
    path = tmp_path / "newer.db"
    upgrade_device(path)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    conn.commit()
    conn.close()
    return path


def _text_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.db"
    path.write_text("検査メモ: これはデータベースではありません\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "make,message",
    [
        (_text_file, "is not a SQLite database"),
        (_truncated_kensa_db, "corrupt"),
        (_garbled_pages, "corrupt"),
        (_foreign_app_db, "tables that kensa did not make (invoices)"),
        (_newer_kensa_db, "9999_from_the_future"),
    ],
)
def test_upgrade_refuses_and_leaves_the_file_untouched(
    tmp_path: Path, make: object, message: str
) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    before = _digest(path)
    result = runner.invoke(app, ["db", "upgrade", "--device", str(path)])
    assert result.exit_code == 2
    assert message in result.output
    assert _digest(path) == before


def test_the_installed_command_reports_a_bad_file(tmp_path: Path) -> None:
    """The real entry point, as an admin would run it: a clear message, no traceback."""
    path = _text_file(tmp_path)
    kensa = Path(sys.executable).with_name("kensa")
    proc = subprocess.run(
        [str(kensa), "db", "upgrade", "--device", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "is not a SQLite database" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_upgrade_needs_exactly_one_target(tmp_path: Path) -> None:
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 2
    both = runner.invoke(
        app, ["db", "upgrade", "--device", str(tmp_path / "a.db"), "--server", "sqlite:///x"]
    )
    assert both.exit_code == 2


def test_unreachable_server_is_a_clear_error() -> None:
    from tests.support.postgres import free_port

    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing"
    result = runner.invoke(app, ["db", "upgrade", "--server", url])
    assert result.exit_code == 2
    assert "cannot reach the server database" in result.output


@pytest.mark.postgres
def test_upgrade_server_on_postgres(pg_url: str) -> None:
    result = runner.invoke(app, ["db", "upgrade", "--server", pg_url])
    assert result.exit_code == 0, result.output
    assert head_revision("server") in result.output


def test_snapshot_check_passes_on_the_committed_files() -> None:
    result = runner.invoke(app, ["db", "snapshot", "--check"])
    assert result.exit_code == 0, result.output
