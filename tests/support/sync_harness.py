"""Real processes for the sync tests: the sync server, an inspector's shift, and a seeded site.

Every process is started by a context manager or fixture and killed by process group on the way
out, so a failing test leaves nothing running.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra or {})
    return env


class EventReader:
    """Reads a child's stdout in a thread, so waiting for an event can time out."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self.proc = proc
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line)
        self.lines.put(None)

    def wait(self, event: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no '{event}' event within {timeout}s")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait(5)
                raise RuntimeError(
                    f"process exited with {self.proc.returncode} before '{event}'"
                )
            with contextlib.suppress(ValueError):
                payload = json.loads(line)
                if isinstance(payload, dict) and payload.get("event") == event:
                    return dict(payload)


def _stop(proc: subprocess.Popen[str] | None, sig: int = signal.SIGTERM, wait: float = 10) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@dataclass
class ServerProcess:
    """``python -m sync.server run`` as a child process; restartable on the same port."""

    database_url: str
    data_dir: Path
    storage: str | None = None
    port: int = 0
    processors: int = 1
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[str] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir / "server.log").open("a")
        command = [
            PYTHON, "-m", "sync.server", "run", "--data-dir", str(self.data_dir),
            "--port", str(self.port), "--processors", str(self.processors),
            "--log-level", "WARNING",
        ]
        if self.database_url:  # empty: the embedded default, SQLite in the data directory
            command += ["--database-url", self.database_url]
        if self.storage:
            command += ["--storage", self.storage]
        deadline = time.monotonic() + timeout
        while True:
            self.proc = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=log, text=True, cwd=REPO,
                env=_env(self.extra_env), start_new_session=True,
            )
            try:
                ready = EventReader(self.proc).wait("ready", timeout)
                break
            except RuntimeError:
                # The port of a killed server can stay busy a moment; try again.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        log.close()
        self.port = int(ready["port"])
        self.starts += 1
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        _stop(self.proc, sig)
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()

    def __enter__(self) -> ServerProcess:
        return self if self.proc is not None else self.start()

    def __exit__(self, *_: object) -> None:
        self.kill()


@dataclass
class ShiftProcess:
    """``python -m scripts.devkit.shift`` — a device process recording inspections through the
    product's services while it syncs; the one the fault tests kill."""

    data_dir: Path
    server_url: str
    token: str
    inspections: int = 10
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[str] | None = None
    events: EventReader | None = None
    starts: int = 0

    def start(self, *, exit_when_synced: bool = False, args: list[str] | None = None
              ) -> ShiftProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir / "shift.log").open("a")
        command = [
            PYTHON, "-m", "scripts.devkit.shift", "--data-dir", str(self.data_dir),
            "--server", self.server_url, "--inspections", str(self.inspections),
            *self.extra_args, *(args or []),
        ]
        if exit_when_synced:
            command.append("--exit-when-synced")
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=log, text=True, cwd=REPO,
            env=_env({"KENSA_DEVICE_TOKEN": self.token}), start_new_session=True,
        )
        log.close()
        self.events = EventReader(self.proc)
        self.starts += 1
        return self

    def wait_event(self, event: str, timeout: float) -> dict[str, Any]:
        assert self.events is not None
        return self.events.wait(event, timeout)

    def kill(self) -> None:
        _stop(self.proc, signal.SIGKILL)
        self.proc = None

    def stop(self) -> None:
        _stop(self.proc, signal.SIGTERM)
        self.proc = None

    def __enter__(self) -> ShiftProcess:
        return self if self.proc is not None else self.start()

    def __exit__(self, *_: object) -> None:
        self.kill()


@dataclass
class ForkedShift(ShiftProcess):
    """The same device process, each start a fork of one ``--fork-server`` that imported
    everything once: a start costs milliseconds, so a kill lands while the shift records and
    syncs rather than while Python imports. ``close()`` ends the fork server too."""

    server: subprocess.Popen[str] | None = None
    pid: int | None = None

    def start(self, *, exit_when_synced: bool = False, args: list[str] | None = None
              ) -> ShiftProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.server is None or self.server.poll() is not None:
            log = (self.data_dir / "shift.log").open("a")
            self.server = subprocess.Popen(
                [PYTHON, "-m", "scripts.devkit.shift", "--fork-server"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, cwd=REPO,
                env=_env({"KENSA_DEVICE_TOKEN": self.token}), start_new_session=True,
            )
            log.close()
            self.events = EventReader(self.server)
            self.wait_event("fork_server", 120)
        argv = [
            "--data-dir", str(self.data_dir), "--server", self.server_url,
            "--inspections", str(self.inspections), *self.extra_args, *(args or []),
        ]
        if exit_when_synced:
            argv.append("--exit-when-synced")
        assert self.server.stdin is not None
        self.server.stdin.write(json.dumps(argv) + "\n")
        self.server.stdin.flush()
        self.pid = int(self.wait_event("forked", 30)["pid"])
        self.starts += 1
        return self

    def _signal(self, sig: int, wait: float) -> None:
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.01)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self.pid = None

    def kill(self) -> None:
        self._signal(signal.SIGKILL, 10)

    def stop(self) -> None:
        self._signal(signal.SIGTERM, 10)

    def close(self) -> None:
        self.kill()
        _stop(self.server, signal.SIGKILL)
        self.server = None

    def __enter__(self) -> ShiftProcess:
        return self if self.pid is not None else self.start()

    def __exit__(self, *_: object) -> None:
        self.close()


# --- a seeded site ---------------------------------------------------------------------------


@dataclass
class Site:
    database_url: str
    tokens: dict[str, str]
    device_ids: dict[str, str]
    model_sha: str | None = None
    passwords: dict[str, str] = field(default_factory=dict)


def seed_site(database_url: str, storage_url: str, *, model_bytes: int = 0) -> Site:
    """Migrate and seed: users, TAB-01/TAB-02, BRK-100 with five items, one pipeline; a model of
    ``model_bytes`` random bytes when asked."""
    from schema.db import Database, create_engine
    from schema.migrate import upgrade_server
    from scripts.devkit.seed_demo import FALLBACK_ITEMS
    from sync.server import masters
    from sync.server.storage import open_storage

    upgrade_server(database_url)
    db = Database(create_engine(database_url))
    storage = open_storage(storage_url)
    tokens: dict[str, str] = {}
    ids: dict[str, str] = {}
    model_sha = None
    try:
        with db.atomic() as session:
            masters.add_user(session, "admin", "admin-pass", role="admin")
            masters.add_user(session, "tanaka", "tanaka-pass", full_name="田中")
            masters.add_user(session, "suzuki", "suzuki-pass")
            for name in ("TAB-01", "TAB-02"):
                device, token = masters.add_device(session, name)
                tokens[name], ids[name] = token, str(device.id)
            if model_bytes:
                body = os.urandom(model_bytes)
                model_sha = hashlib.sha256(body).hexdigest()
                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / "scratch.onnx"
                    path.write_bytes(body)
                    masters.add_model(session, storage, path, "scratch.onnx")
            # Well-formed, so the server publishes it; its model (random bytes, or none at all)
            # never loads, so a tablet's AI fails and the inspector judges by eye.
            definition: dict[str, Any] = {
                "id": "test-scratch", "name": "surface-scratch", "version": 1,
                "steps": [{"name": "model", "type": "onnx",
                           "params": {"model": f"sha256:{model_sha or '0' * 64}"},
                           "input": "$inputs.image"}],
                "outputs": {"defect_probability": "$steps.model.output[0][1]"},
            }
            pipeline = masters.put_pipeline(session, definition)
            masters.add_target(session, "BRK-100", "ブレーキキャリパー", "3")
            masters.add_target(session, "PMP-220", "オイルポンプ", "1")
            for item in FALLBACK_ITEMS:
                ai = item["item_code"] == "V-SCRATCH"
                masters.add_item(
                    session, "BRK-100", item_code=item["item_code"], item_name=item["name"],
                    inspection_type=item["type"], criteria=item["criteria"],
                    order_sequence=item["order_sequence"], required=item["required"],
                    ai_enabled=ai, pipeline_id=str(pipeline.id) if ai else None,
                )
    finally:
        storage.close()
        db.dispose()
    return Site(database_url, tokens, ids, model_sha,
                {"admin": "admin-pass", "tanaka": "tanaka-pass", "suzuki": "suzuki-pass"})


# --- comparing the device's history with the server's tables ---------------------------------

# device table -> (server table, columns compared as text)
HISTORY: dict[str, tuple[str, tuple[str, ...]]] = {
    "inspection_targets": ("inspection_targets", ("product_id", "batch_id", "serial")),
    "inspection_sessions": ("inspection_sessions", ("status", "result", "version")),
    "inspection_session_items": (
        "inspection_session_items", ("item_code", "status", "result", "version", "attempts")
    ),
    "inspection_images": ("inspection_images", ("sha256", "file_size")),
    "ai_inspection_results": ("ai_inspection_results", ("overall_result",)),
    "human_verification_results": ("human_verification_results", ("final_result",)),
}


def _norm(value: Any) -> str:
    if isinstance(value, uuid.UUID):
        return str(value)
    return "" if value is None else str(value)


def device_history(device_db: Path) -> dict[str, dict[str, tuple[str, ...]]]:
    engine = sa.create_engine(f"sqlite:///{device_db}")
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    try:
        with engine.connect() as conn:
            for table, (_, columns) in HISTORY.items():
                rows = conn.execute(sa.text(f"SELECT id, {', '.join(columns)} FROM {table}"))
                out[table] = {str(r[0]): tuple(_norm(v) for v in r[1:]) for r in rows}
    finally:
        engine.dispose()
    return out


def server_history(database_url: str) -> dict[str, dict[str, tuple[str, ...]]]:
    from schema.db import create_engine

    engine = create_engine(database_url)
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    try:
        with engine.connect() as conn:
            for table, (server_table, columns) in HISTORY.items():
                rows = conn.execute(sa.text(f"SELECT id, {', '.join(columns)}"
                                            f" FROM {server_table}"))
                out[table] = {str(r[0]): tuple(_norm(v) for v in r[1:]) for r in rows}
    finally:
        engine.dispose()
    return out


def queue_facts(database_url: str, device_id: str) -> dict[str, Any]:
    from schema.db import create_engine

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT count(*), count(DISTINCT seq), count(DISTINCT op_id), "
                    "coalesce(max(seq), 0), count(*) FILTER (WHERE processed_at IS NULL), "
                    "count(*) FILTER (WHERE last_error LIKE 'conflict:%') "
                    "FROM tauri_sync_queue WHERE device_id = :d"
                ),
                {"d": device_id},
            ).one()
    finally:
        engine.dispose()
    return {"rows": row[0], "seqs": row[1], "op_ids": row[2], "max_seq": row[3],
            "unprocessed": row[4], "conflicts": row[5]}


def device_max_seq(device_db: Path) -> int:
    engine = sa.create_engine(f"sqlite:///{device_db}")
    try:
        with engine.connect() as conn:
            value = conn.execute(
                sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'")
            ).scalar()
    finally:
        engine.dispose()
    return int(value or 0)


def wait_until(predicate: Any, timeout: float, interval: float = 0.2, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what or predicate}")


def stored_image_hashes(database_url: str) -> set[str]:
    from schema.db import create_engine

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return {r[0] for r in conn.execute(
                sa.text("SELECT checksum FROM files WHERE kind = 'image'"))}
    finally:
        engine.dispose()


@contextlib.contextmanager
def running(*procs: Any) -> Iterator[None]:
    try:
        yield
    finally:
        for proc in procs:
            with contextlib.suppress(Exception):
                proc.kill()
