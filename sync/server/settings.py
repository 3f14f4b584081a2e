"""The sync server's settings: ``KENSA_SERVER_*`` variables or ``kensa-server run`` options.

Built by the CLI or a test and handed to ``create_app``; never read at import time.

The database URL picks the mode: by default a SQLite file in the data directory (embedded: a demo
or a single small site), PostgreSQL when given ``postgresql+psycopg://…``. The storage URL picks
where image and model bodies go: ``file:///dir`` (default: ``<data_dir>/files``) or
``s3://bucket?endpoint=http://host:port&region=…&access_key=…&secret_key=…``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_server_data_dir() -> Path:
    home = Path.home()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or os.environ.get("APPDATA")
        return (Path(base) if base else home / "AppData" / "Local") / "kensa-server"
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else home / ".local" / "share") / "kensa-server"


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KENSA_SERVER_", extra="ignore")

    data_dir: Path = Field(default_factory=default_server_data_dir)
    database_url: str | None = None
    storage: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8400, ge=0, le=65535)
    log_level: str = "INFO"
    # "json": one JSON object a line, each with the id of the request it belongs to, and an
    # access line per request (sync.server.logs); "text" for a person reading a terminal.
    log_format: Literal["text", "json"] = "text"
    # The bearer token /metrics asks for; unset, /metrics is off (sync.server.ops says why it
    # is not the admin API's credentials).
    metrics_token: SecretStr | None = None
    # TLS served by the server itself (PEM certificate chain and key, KENSA_SERVER_TLS_CERT /
    # KENSA_SERVER_TLS_KEY); without them it speaks plain http, for a reverse proxy in front
    # that terminates TLS, or for loopback.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Run migrations when the server starts (convenient for the embedded SQLite mode).
    migrate: bool = True

    # Limits on what a device may send.
    max_batch_ops: int = Field(default=5000, ge=1)
    max_batch_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    max_file_bytes: int = Field(default=64 * 1024 * 1024, ge=1)

    access_token_ttl_s: int = Field(default=3600, ge=10)

    # Queue processors in this process (0: another process runs `kensa-server process`).
    processors: int = Field(default=1, ge=0)
    processor_batch: int = Field(default=200, ge=1)
    processor_idle_s: float = Field(default=0.5, gt=0)
    # On PostgreSQL processors sleep until a push's NOTIFY wakes them (sync.server.notify), and
    # look at the queue at least this often anyway.
    processor_poll_s: float = Field(default=5.0, gt=0)
    # `kensa-server run --workers N`: N API processes sharing the port, and `processors` queue
    # processor processes beside them, under one supervisor (sync.server.run); 0: one process
    # serving the API with `processors` threads.
    workers: int = Field(default=0, ge=0, le=64)
    # A queue row that failed to apply waits at least this long before the next try.
    processor_retry_s: float = Field(default=2.0, ge=0)

    # Backpressure on pushes (sync.server.backpressure): each device may push push_burst_rows
    # operations at once, then push_rows_per_s (per server process); while the apply lag is over
    # max_apply_lag_s every push is answered 429 with Retry-After until the processors catch up.
    push_rows_per_s: float = Field(default=2000.0, gt=0)
    push_burst_rows: int = Field(default=20_000, ge=1)
    max_apply_lag_s: float = Field(default=60.0, gt=0)

    page_limit_default: int = Field(default=1000, ge=1)
    page_limit_max: int = Field(default=5000, ge=1)
    # Tombstones older than this are pruned; a device whose cursor predates them resyncs.
    tombstone_retention_days: float = Field(default=30.0, gt=0)
    clock_skew_threshold_s: float = Field(default=120.0, gt=0)

    # /docs, /redoc and /openapi.json: the API's shape is no secret, but a production server
    # need not hand a map to whoever probes it. On for development and API tests.
    api_docs: bool = False

    # Failed admin logins: this many at once per username and per client address, then one
    # more every admin_login_refill_s seconds (429 with Retry-After meanwhile).
    admin_login_burst: int = Field(default=10, ge=1)
    admin_login_refill_s: float = Field(default=6.0, gt=0)

    # Enrollment codes (sync.server.enrollment): how long one is valid, and wrong guesses at
    # /sync/v1/enroll: this many at once per client address (and ten times that across all
    # clients), then one more every enrollment_refill_s seconds.
    enrollment_ttl_s: float = Field(default=900.0, gt=0, le=86_400)
    enrollment_burst: int = Field(default=5, ge=1)
    enrollment_refill_s: float = Field(default=12.0, gt=0)
    # The server's address as tablets reach it, for the enrollment QR (`device add --qr`).
    public_url: str | None = None

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'server.db'}"

    @property
    def storage_url(self) -> str:
        return self.storage or (self.data_dir / "files").resolve().as_uri()

    @property
    def staging_dir(self) -> Path:
        """Where uploads are streamed to before their hash is checked."""
        return self.data_dir / "staging"
