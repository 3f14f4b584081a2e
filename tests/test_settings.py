"""Settings come from KENSA_* variables, through the app factory, never at import time."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sidecar.app import create_app
from sidecar.settings import Settings, default_data_dir


def test_env_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KENSA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("KENSA_TOKEN", "s3cret")
    monkeypatch.setenv("KENSA_PORT", "8123")
    settings = Settings()
    assert settings.data_dir == tmp_path
    assert settings.database_path == tmp_path / "kensa.db"
    assert settings.token is not None and settings.token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)  # a secret never lands in a log line
    assert settings.port == 8123


def test_bad_port_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KENSA_PORT", "70000")
    with pytest.raises(ValueError, match="port"):
        Settings()


def test_default_data_dir_is_the_platform_app_data_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_data_dir() == tmp_path / ".local" / "share" / "kensa"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "kensa"
    assert not str(default_data_dir()).startswith(tempfile.gettempdir() + "/kensa")


def test_app_factory_uses_the_settings_it_is_given(tmp_path: Path) -> None:
    from schema.migrate import upgrade_device

    settings = Settings(data_dir=tmp_path)
    upgrade_device(settings.database_path)  # the launch migrates before it builds the app
    app = create_app(settings)
    assert app.state.settings is settings
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert client.get("/health").json()["status"] == "ok"


def test_importing_the_app_builds_no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    import sidecar.app

    monkeypatch.setenv("KENSA_PORT", "not-a-number")  # would fail if anything built Settings now
    importlib.reload(sidecar.app)
