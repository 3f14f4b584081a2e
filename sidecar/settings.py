"""The sidecar's settings: environment variables with the ``KENSA_`` prefix.

Built by the app factory (``sidecar.app.create_app``) or the CLI, never at import time, so tests
and the Tauri shell can each hand in their own.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

APP_NAME = "kensa"


def default_data_dir() -> Path:
    """The platform's per-user application-data folder: data there survives reboots and updates."""
    home = Path.home()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or os.environ.get("APPDATA")
        return Path(base) / APP_NAME if base else home / "AppData" / "Local" / APP_NAME
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / APP_NAME
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else home / ".local" / "share") / APP_NAME


def default_config_dir() -> Path:
    """The platform's per-user configuration folder, apart from the data folder: what is kept
    here (the login-signing key) must not travel with a copy of the data."""
    home = Path.home()
    if sys.platform == "win32":
        base = os.environ.get("APPDATA")
        return Path(base) / APP_NAME if base else home / "AppData" / "Roaming" / APP_NAME
    if sys.platform == "darwin":
        return home / "Library" / "Preferences" / APP_NAME
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return (Path(xdg) if xdg else home / ".config") / APP_NAME


def _default_ai_workers() -> int:
    return max(1, (os.cpu_count() or 2) // 2)


def _default_ui_dist() -> Path | None:
    dist = Path(__file__).resolve().parents[1] / "tauri-app" / "dist"
    return dist if dist.is_dir() else None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KENSA_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    # The per-launch secret the Tauri shell generates; every API call but /health must carry it.
    token: SecretStr | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    device_name: str = "kensa-device"
    device_type: str = "tablet"
    log_level: str = "INFO"
    # AI workers; 0 turns on-device analysis off (a tablet that only records verdicts).
    ai_workers: int = Field(default_factory=lambda: _default_ai_workers(), ge=0, le=16)
    # Background sync with the server (push, pull, image upload); seconds between runs.
    sync_enabled: bool = True
    sync_interval_s: float = Field(default=30.0, gt=0, le=3600)
    # Plain http to a server on another machine (development only: the device token and the
    # records would cross the network readable); loopback is always allowed.
    allow_http: bool = False
    # The factory's own CA (PEM) to verify the server's certificate with, instead of the public
    # CAs; KENSA_CA_BUNDLE.
    ca_bundle: Path | None = None
    # Origins allowed to call the API from a browser; empty means the Tauri origins (and the
    # Vite dev server's in dev mode).
    cors_origins: list[str] = Field(default_factory=list)
    # Development (KENSA_DEV=1): the Vite dev server's origins may call the API too.
    dev: bool = False
    # The built web UI to serve at / for a plain browser (sidecar.ui); None serves none.
    ui_dist: Path | None = Field(default_factory=lambda: _default_ui_dist())
    # Write the launch token into the served page, for an operator who asked for a browser UI
    # (`kensa serve`); the Tauri shell hands its webview the token itself (see sidecar.ui).
    browser_ui: bool = False
    # The key login tokens are signed with, when the shell keeps it (the OS keystore); without
    # it the key lives in a 0600 file in config_dir, never in the data folder.
    signing_key: SecretStr | None = None
    config_dir: Path = Field(default_factory=default_config_dir)

    @property
    def database_path(self) -> Path:
        return self.data_dir / "kensa.db"

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "images"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def signing_key_path(self) -> Path:
        return self.config_dir / "signing.key"
