"""A fleet of simulated tablets against a scaled-out server: the fleet benchmark's and the chaos
test's machinery (``scripts/benchmarks/fleet.py``, ``tests/test_sync_fleet.py``).

Everything real: a throw-away PostgreSQL, SeaweedFS as the S3 store, ``kensa-server run
--workers N --processors M`` as one supervised process tree. Each tablet is a device database and
data folder of its own, enrolled with a one-time code through ``/sync/v1/enroll`` (so each has its
own device token), its masters pulled, and a shift recorded through the product's services
(``scripts.devkit.shift.Shift``: inspections with their items, photos, AI results and verdicts).
Then every tablet's own ``SyncService`` runs at once — the sidecar's push, pull and upload code,
driven by a thread per tablet in a few worker processes — until its outbox and photos are on the
server, and the clock runs until the processors have applied every row.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa

from tests.support import cpu
from tests.support.postgres import Cluster, free_port, running_cluster
from tests.support.seaweed import running_seaweed
from tests.support.sync_harness import REPO, _env, seed_site

APP_VERSION = "0.1.0"
_MIGRATING = threading.Lock()


# --- the server as one supervised process tree ----------------------------------------------


@dataclass
class FleetServer:
    """``python -m sync.server run --workers N --processors M``, its events kept as they come."""

    database_url: str
    data_dir: Path
    storage: str
    port: int
    workers: int = 2
    processors: int = 2
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[str] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def start(self, timeout: float = 90.0) -> FleetServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.events = []
        command = [
            sys.executable, "-m", "sync.server", "run", "--data-dir", str(self.data_dir),
            "--database-url", self.database_url, "--storage", self.storage,
            "--port", str(self.port), "--workers", str(self.workers),
            "--processors", str(self.processors), "--log-level", "WARNING",
        ]
        deadline = time.monotonic() + timeout
        while True:
            with (self.data_dir / "server.log").open("a") as log:
                self.proc = subprocess.Popen(
                    command, stdout=subprocess.PIPE, stderr=log, text=True, cwd=REPO,
                    env=_env({"KENSA_PLAINTEXT": "1", **self.extra_env}),
                    start_new_session=True,
                )
            threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()
            try:
                self.wait_event("ready", max(1.0, deadline - time.monotonic()))
                return self
            except RuntimeError:
                # The port of the run before can stay busy a moment: try again.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict):
                    with self._cond:
                        self.events.append(event)
                        self._cond.notify_all()
        with self._cond:
            self.events.append({"event": "exited"})
            self._cond.notify_all()

    def wait_event(self, name: str, timeout: float, after: int = 0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events[after:]:
                    if event.get("event") == name:
                        return event
                    if event.get("event") == "exited":
                        raise RuntimeError(f"server exited before '{name}'")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no '{name}' event within {timeout}s")
                self._cond.wait(remaining)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pids(self, role: str) -> list[int]:
        """The live children of a role: the ready line's, as restarts replaced them."""
        ready = next(e for e in self.events if e.get("event") == "ready")
        pids = list(ready["workers" if role == "api" else "processors"])
        for event in self.events:
            if event.get("event") == "restarted" and event.get("role") == role:
                pids = [event["pid"] if p == event["was"] else p for p in pids]
        return pids

    def kill_child(self, role: str, timeout: float = 60.0) -> int:
        """SIGKILL one child of ``role`` and wait for the supervisor to replace it."""
        seen = len(self.events)
        victim = self.pids(role)[0]
        os.kill(victim, signal.SIGKILL)
        event = self.wait_event("restarted", timeout, after=seen)
        assert event["was"] == victim and event["role"] == role, event
        return victim

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def __enter__(self) -> FleetServer:
        return self if self.proc is not None else self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def fill_targets(db: Any, rows: int) -> None:
    """``rows`` scanned units in a device's outbox, as the tablet records them: each applies on
    its own (no parent), so how soon they are applied is the processors' doing alone."""
    import uuid
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    values = []
    for i in range(rows):
        key = str(uuid.uuid4())
        qr = json.dumps({"product_id": "BRK-100", "batch_id": "B1", "serial": f"{i:07d}"})
        data = {"id": key, "product_id": "BRK-100", "batch_id": "B1", "serial": f"{i:07d}",
                "qr_code": qr, "created_at": now.isoformat(), "version": 1}
        values.append({"op_id": str(uuid.uuid4()), "entity_type": "inspection_target",
                       "entity_id": key, "operation": "INSERT", "data": json.dumps(data),
                       "priority": 0, "retry_count": 0,
                       "created_at": now.strftime("%Y-%m-%d %H:%M:%S.%f")})
    with db.atomic() as session:
        session.execute(sa.text(
            "INSERT INTO outbox (op_id, entity_type, entity_id, operation, data, priority, "
            "retry_count, created_at) VALUES (:op_id, :entity_type, :entity_id, :operation, "
            ":data, :priority, :retry_count, :created_at)"), values)


# --- one tablet, in a worker process ---------------------------------------------------------


@dataclass(frozen=True)
class Tablet:
    name: str
    home: str
    device_id: str = ""
    rows: int = 0
    images: int = 0


def open_tablet(home: Path, *, create: bool = False) -> Any:
    from schema.db import Database, create_sqlite_engine
    from schema.migrate import upgrade_device

    if create:
        home.mkdir(parents=True, exist_ok=True)
        # Alembic keeps its context in module globals: one migration at a time per process.
        with _MIGRATING:
            upgrade_device(home / "kensa.db")
    return Database(create_sqlite_engine(home / "kensa.db"))


def _backoff() -> Any:
    from sync.policy import BackoffPolicy

    # A tablet's own backoff, shortened so that a run after a restart does not idle for
    # minutes; Retry-After from the server still wins when it asks for longer.
    return BackoffPolicy(base=0.5, cap=5.0)


def _prepare_one(server_url: str, name: str, home: str, device_id: str, code: str,
                 inspections: int, seed: int) -> Tablet:
    from scripts.devkit.shift import Shift
    from sync.device.service import SyncService

    folder = Path(home)
    db = open_tablet(folder, create=True)
    service = SyncService(db, folder, APP_VERSION, backoff=_backoff())
    try:
        service.enroll(server_url, code)
        for _ in range(20):
            report = service.run_once(budget_s=60)  # the masters and users
            if report.ok:
                break
            time.sleep(0.5)
        shift = Shift.on(db, folder, seed=seed)
        for _ in range(inspections):
            shift.inspection()
        with db.read() as session:
            rows = int(session.execute(sa.text("SELECT count(*) FROM outbox")).scalar_one())
            images = int(session.execute(
                sa.text("SELECT count(*) FROM inspection_images")).scalar_one())
        return Tablet(name, home, device_id, rows, images)
    finally:
        service.stop()
        db.dispose()


def prepare_chunk(server_url: str, tablets: list[tuple[str, str, str, str]], inspections: int,
                  seed: int) -> list[Tablet]:
    """Enroll, pull and record a shift on each tablet of the chunk, a few at a time."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(_prepare_one, server_url, name, home, device_id, code,
                               inspections, seed + i)
                   for i, (name, home, device_id, code) in enumerate(tablets)]
        return [f.result() for f in futures]


@dataclass
class PushFigures:
    push_ms: list[float] = field(default_factory=list)
    pushed: int = 0
    uploaded: int = 0
    set_aside: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    started: float = 0.0
    finished: float = 0.0


def _sync_one(home: str, figures: PushFigures, lock: threading.Lock, limit_s: float) -> None:
    from scripts.devkit.shift import fully_synced
    from sync.device.service import SyncService

    folder = Path(home)
    db = open_tablet(folder)
    service = SyncService(db, folder, APP_VERSION, backoff=_backoff())
    try:
        client = service.client()
        real_push = client.push
        timings: list[float] = []

        def timed_push(body: bytes) -> Any:
            # The device's own push call, timed from the outside: the latency a tablet sees.
            started = time.perf_counter()
            try:
                return real_push(body)
            finally:
                timings.append((time.perf_counter() - started) * 1000.0)

        client.push = timed_push  # type: ignore[method-assign]
        pushed = uploaded = set_aside = 0
        failures: dict[str, int] = {}
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            report = service.run_once(budget_s=20)
            pushed += report.pushed
            uploaded += report.uploaded
            set_aside += report.set_aside
            if report.ok and not report.more_pending and fully_synced(db):
                break
            if not report.ok:
                kind = report.error_kind or "error"
                failures[kind] = failures.get(kind, 0) + 1
                # The tablet's scheduler: its backoff, or what Retry-After asked for.
                time.sleep(max(0.05, service.schedule.next_run_at - time.monotonic()))
        with lock:
            figures.push_ms += timings
            figures.pushed += pushed
            figures.uploaded += uploaded
            figures.set_aside += set_aside
            for kind, n in failures.items():
                figures.failures[kind] = figures.failures.get(kind, 0) + n
    finally:
        service.stop()
        db.dispose()


def sync_chunk(homes: list[str], limit_s: float) -> PushFigures:
    """Every tablet of the chunk syncing at once, a thread each, until all are synced."""
    figures = PushFigures(started=time.time())
    lock = threading.Lock()
    with ThreadPoolExecutor(max_workers=max(1, len(homes))) as pool:
        for future in [pool.submit(_sync_one, home, figures, lock, limit_s) for home in homes]:
            future.result()
    figures.finished = time.time()
    return figures


def _warm() -> None:
    # What every tablet's first sync would import, imported before the clock starts.
    import scripts.devkit.shift  # noqa: F401
    import sync.device.service  # noqa: F401


# --- the fleet ------------------------------------------------------------------------------


@dataclass
class Phase:
    devices: int
    rows: int
    images: int
    seconds: float
    rows_s: float
    images_s: float
    push_p50_ms: float
    push_p99_ms: float
    lag_p99_s: float
    pending_index_max_bytes: int
    failures: dict[str, int]
    chaos: list[str] = field(default_factory=list)
    # CPU seconds by part of the system while the phase ran (``tests.support.cpu``).
    cpu_s: dict[str, float | None] = field(default_factory=dict)

    def cpu_us_per_row(self) -> dict[str, float | None]:
        return {part: None if s is None else s * 1e6 / max(1, self.rows)
                for part, s in self.cpu_s.items()}


@dataclass
class Fleet:
    base: Path
    cluster: Cluster
    database_url: str
    storage: str
    port: int
    pool: ProcessPoolExecutor
    clients: int
    tablets: dict[str, list[Tablet]] = field(default_factory=dict)
    current: FleetServer | None = None

    def server(self, workers: int, processors: int) -> FleetServer:
        self.current = FleetServer(self.database_url, self.base / "server", self.storage,
                                   self.port, workers=workers, processors=processors)
        return self.current

    def _parts(self) -> dict[str, cpu.Part]:
        parts = {
            "postgresql": cpu.Part(names=frozenset({"postgres"})),
            "seaweedfs": cpu.Part(names=frozenset({"weed"})),
            "tablets": cpu.Part(roots=frozenset(self.pool._processes)),
        }
        server = self.current
        if server is not None and server.proc is not None:
            # A child the supervisor restarts is a new pid under the supervisor: counted there.
            parts["api"] = cpu.Part(roots=frozenset(server.pids("api")))
            parts["processors"] = cpu.Part(roots=frozenset(server.pids("processor")))
            parts["supervisor"] = cpu.Part(roots=frozenset({server.proc.pid}))
        parts["bench"] = cpu.Part(roots=frozenset({os.getpid()}), children_time=False)
        return parts

    def prepare(self, server: FleetServer, group: str, count: int, inspections: int) -> None:
        """Register ``count`` tablets, issue each a one-time code, and let the tablets enroll,
        pull and record their shifts (in the worker processes)."""
        from schema.db import Database, create_engine
        from sync.server import enrollment, masters

        db = Database(create_engine(self.database_url))
        codes: list[tuple[str, str, str, str]] = []
        try:
            with db.atomic() as session:
                for i in range(count):
                    name = f"{group.upper()}-{i:04d}"
                    device, _ = masters.add_device(session, name)
                    issued = enrollment.issue(session, device, 3600)
                    home = self.base / "tablets" / name
                    home.mkdir(parents=True, exist_ok=True)
                    codes.append((name, str(home), str(device.id), issued.code))
        finally:
            db.dispose()
        chunks = [codes[i::self.clients] for i in range(self.clients)]
        futures = [self.pool.submit(prepare_chunk, server.url, chunk, inspections, 1000 * n)
                   for n, chunk in enumerate(chunks) if chunk]
        self.tablets[group] = [t for f in futures for t in f.result()]

    def device_ids(self, group: str) -> list[str]:
        return [t.device_id for t in self.tablets[group]]

    def progress(self, ids: list[str]) -> tuple[int, int]:
        """(received, pending) for these tablets, read so that polling it stays cheap however
        long the queue: received as each tablet's highest sequence on the server (a tablet
        pushes in order; one probe of the (device, seq) index each), pending off the partial
        index of pending rows. A count of every row scanned each tablet's whole queue, some
        25 ms a poll at 12,000 rows, and that was PostgreSQL's work during the measurement."""
        with self._conn() as conn:
            row = conn.execute(sa.text(
                "SELECT (SELECT coalesce(sum(m.seq), 0) FROM unnest(CAST(:ids AS text[])) "
                "AS d(device_id) CROSS JOIN LATERAL (SELECT max(seq) AS seq FROM "
                "tauri_sync_queue q WHERE q.device_id = d.device_id) AS m), "
                "(SELECT count(*) FROM tauri_sync_queue WHERE processed_at IS NULL "
                "AND device_id = ANY(:ids))"), {"ids": ids}).one()
        return int(row[0]), int(row[1])

    def applied(self, ids: list[str]) -> int:
        with self._conn() as conn:
            return int(conn.execute(sa.text(
                "SELECT count(*) FROM tauri_sync_queue WHERE device_id = ANY(:ids) "
                "AND processed_at IS NOT NULL"), {"ids": ids}).scalar_one())

    def pending_index_bytes(self) -> int:
        with self._conn() as conn:
            return int(conn.execute(sa.text(
                "SELECT pg_relation_size('idx_tauri_sync_queue_unprocessed')")).scalar_one())

    @contextlib.contextmanager
    def _conn(self) -> Iterator[Any]:
        engine = sa.create_engine(self.database_url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                yield conn
        finally:
            engine.dispose()

    def sync(self, group: str, *, chaos: Callable[[float], list[str]] | None = None,
             limit_s: float = 1800.0) -> Phase:
        """Every tablet of ``group`` syncs at once; timed until all its rows are applied."""
        tablets = self.tablets[group]
        ids = self.device_ids(group)
        rows = sum(t.rows for t in tablets)
        images = sum(t.images for t in tablets)
        homes = [t.home for t in tablets]
        chunks = [homes[i::self.clients] for i in range(self.clients)]
        parts = self._parts()
        cpu_before = cpu.sample(parts)
        started = time.time()
        futures = [self.pool.submit(sync_chunk, chunk, limit_s) for chunk in chunks if chunk]
        index_max = 0
        done_at: float | None = None
        events: list[str] = []
        while time.time() - started < limit_s:
            with contextlib.suppress(Exception):  # PostgreSQL restarting under chaos
                received, pending = self.progress(ids)
                index_max = max(index_max, self.pending_index_bytes())
                if chaos is not None:
                    events += chaos(received / max(1, rows))
                # Every tablet done means every row received; then none pending is all applied,
                # which one full count confirms.
                if pending == 0 and all(f.done() for f in futures):
                    done_at = time.time()
                    cpu_after = cpu.sample(parts)
                    if self.applied(ids) >= rows:
                        break
                    done_at = None
            # Often enough to time the end to a fifth of a second; the count is PostgreSQL's
            # work too, and counted as its.
            time.sleep(0.2)
        figures = [f.result() for f in futures]
        if done_at is None:
            raise TimeoutError(f"{group}: not every row applied within {limit_s}s")
        uploads_done = max(f.finished for f in figures)
        seconds = done_at - started
        timings = sorted(ms for f in figures for ms in f.push_ms)
        failures: dict[str, int] = {}
        for f in figures:
            for kind, n in f.failures.items():
                failures[kind] = failures.get(kind, 0) + n
        with self._conn() as conn:
            lag = conn.execute(sa.text(
                "SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY "
                "extract(epoch FROM processed_at - created_at)) FROM tauri_sync_queue "
                "WHERE device_id = ANY(:ids)"), {"ids": ids}).scalar()
        return Phase(
            devices=len(tablets), rows=rows, images=images, seconds=seconds,
            rows_s=rows / seconds, images_s=images / max(1e-9, uploads_done - started),
            push_p50_ms=_percentile(timings, 0.50), push_p99_ms=_percentile(timings, 0.99),
            lag_p99_s=float(lag or 0.0), pending_index_max_bytes=index_max,
            failures=failures, chaos=events, cpu_s=cpu.spent(cpu_before, cpu_after),
        )

    def check(self, group: str, *, photos: str = "all") -> dict[str, int]:
        """Every tablet's records on the server exactly once, every photo in the store under its
        hash with a body that hashes to it, nothing pending or refused. Raises AssertionError."""
        from sync.server.storage import open_storage
        from tests.support.sync_harness import device_history

        tablets = self.tablets[group]
        ids = self.device_ids(group)
        with self._conn() as conn:
            per_device = {str(r[0]): (int(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5]))
                          for r in conn.execute(sa.text(
                              "SELECT device_id, count(*), count(DISTINCT op_id), "
                              "count(DISTINCT seq), count(*) FILTER (WHERE processed_at IS NULL),"
                              " count(refusal) FROM tauri_sync_queue "
                              "WHERE device_id = ANY(:ids) GROUP BY device_id"), {"ids": ids})}
            server = _server_records(conn)
            stored = {str(r[0]) for r in conn.execute(
                sa.text("SELECT checksum FROM files WHERE kind = 'image'"))}
        hashes: list[str] = []
        for tablet in tablets:
            count, op_ids, seqs, pending, refused = per_device.get(tablet.device_id,
                                                                   (0, 0, 0, 0, 0))
            assert count == op_ids == seqs == tablet.rows, (tablet.name, count, op_ids, seqs,
                                                            tablet.rows)
            assert pending == 0 and refused == 0, (tablet.name, pending, refused)
            history = device_history(Path(tablet.home) / "kensa.db")
            for table, records in history.items():
                for key, values in records.items():
                    assert server[table].get(key) == values, (tablet.name, table, key)
            hashes += [sha for sha, *_ in history["inspection_images"].values()]
            with _sqlite(Path(tablet.home) / "kensa.db") as conn:
                left = conn.execute(sa.text(
                    "SELECT (SELECT count(*) FROM outbox) + (SELECT count(*) FROM "
                    "inspection_images WHERE uploaded_at IS NULL)")).scalar_one()
            assert left == 0, (tablet.name, left)
        missing = set(hashes) - stored
        assert not missing, f"{len(missing)} photos not on the server"
        sample = hashes if photos == "all" else hashes[:: max(1, len(hashes) // 2000)]
        storage = open_storage(self.storage)
        try:
            for sha in sample:
                digest = hashlib.sha256()
                for chunk in storage.open(sha):
                    digest.update(chunk)
                assert digest.hexdigest() == sha, sha
        finally:
            storage.close()
        return {"tablets": len(tablets), "rows": sum(t.rows for t in tablets),
                "photos": len(hashes), "photos_hashed": len(sample)}


def _server_records(conn: Any) -> dict[str, dict[str, tuple[str, ...]]]:
    from tests.support.sync_harness import HISTORY, _norm

    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for table, (server_table, columns) in HISTORY.items():
        rows = conn.execute(sa.text(f"SELECT id, {', '.join(columns)} FROM {server_table}"))
        out[table] = {str(r[0]): tuple(_norm(v) for v in r[1:]) for r in rows}
    return out


@contextlib.contextmanager
def _sqlite(path: Path) -> Iterator[Any]:
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return float(statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1])


@contextlib.contextmanager
def fleet(clients: int) -> Iterator[Fleet]:
    """PostgreSQL, SeaweedFS, the seeded site and the client worker processes; the tablets'
    folders on a RAM disk where there is one (what is measured is the server)."""
    shm = Path("/dev/shm")
    root = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="kensa-fleet-", dir=root) as tmp, \
            running_cluster() as cluster, running_seaweed(max_volumes=64) as endpoint, \
            ProcessPoolExecutor(max_workers=clients, mp_context=context,
                                initializer=_warm) as pool:
        url = cluster.url(cluster.create_database())
        storage = (f"s3://kensa-fleet?endpoint={endpoint}&region=us-east-1"
                   "&access_key=kensa&secret_key=kensa-secret")
        seed_site(url, storage)
        yield Fleet(Path(tmp), cluster, url, storage, free_port(), pool, clients)


class Chaos:
    """SIGKILL an API process, then a processor, then restart PostgreSQL, each once, as the
    phase's received rows pass 15 %, 35 % and 55 %."""

    def __init__(self, server: FleetServer, cluster: Cluster) -> None:
        self.server = server
        self.cluster = cluster
        self.steps: list[tuple[float, str, Callable[[], None]]] = [
            (0.15, "api process killed", lambda: self._kill("api")),
            (0.35, "processor killed", lambda: self._kill("processor")),
            (0.55, "PostgreSQL restarted", cluster.restart),
        ]
        self.done: list[str] = []

    def _kill(self, role: str) -> None:
        seen = len(self.server.events)
        os.kill(self.server.pids(role)[0], signal.SIGKILL)
        # The replacement is waited for in the background: the phase goes on meanwhile.
        threading.Thread(target=self.server.wait_event, args=("restarted", 60, seen),
                         daemon=True).start()

    def __call__(self, progress: float) -> list[str]:
        happened = []
        while self.steps and progress >= self.steps[0][0]:
            _, what, act = self.steps.pop(0)
            act()
            happened.append(what)
        self.done += happened
        return happened

    def finish(self) -> list[str]:
        """Whatever the phase was too quick for, done now (the check still follows)."""
        return self(1.0)
