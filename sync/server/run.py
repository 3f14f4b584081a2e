"""Running the server: migrate, bind, serve, and say so on stdout.

The socket is bound here (``SO_REUSEADDR``, port 0 allowed) before uvicorn starts, and once the app
is up one JSON line ``{"event": "ready", "port": N}`` is printed, so a supervisor or a test knows
the port and that requests will be answered.

With ``workers`` (``kensa-server run --workers N --processors M``) this process becomes a
supervisor: it migrates once, binds the socket once, and forks N API processes that all accept
on that socket (the kernel hands each connection to one of them) and M queue processor processes
(``sync.server.processor``, woken by ``sync.server.notify``). None of them holds a connection of
the supervisor's: it forks before opening any. A child that dies — killed, out of memory — is
started again and said so on stdout (``{"event": "restarted", "role": …, "pid": …}``); the
ready line names every child's pid. SIGTERM or SIGINT stops the children, then the supervisor.
Several supervisors (several machines) may share one database: processors claim rows with
``SKIP LOCKED``, so none applies a row another has taken.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import uvicorn

from schema.migrate import upgrade_server
from sync.server.app import create_app
from sync.server.logs import configure as configure_logging
from sync.server.settings import ServerSettings

log = logging.getLogger(__name__)


def bind(host: str, port: int) -> socket.socket:
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose proto
    # says TCP, and without it a keep-alive response waits ~40 ms on Nagle + delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(512)
    sock.set_inheritable(True)
    return sock


def _say(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None]) -> None:
        super().__init__(config)
        self.on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.on_ready()


def serve(settings: ServerSettings) -> None:
    configure_logging(settings.log_level, settings.log_format)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.migrate:
        revision = upgrade_server(settings.database)
        log.info("server database at revision %s", revision)
    sock = bind(settings.host, settings.port)
    port = sock.getsockname()[1]
    if settings.workers:
        Supervisor(settings, sock).run()
        return
    _serve_on(settings, sock, lambda: _say({"event": "ready", "port": port}))


def _serve_on(settings: ServerSettings, sock: socket.socket, on_ready: Callable[[], None]) -> None:
    config = uvicorn.Config(
        create_app(settings),
        log_level=settings.log_level.lower(),
        access_log=False,
        # Uvicorn's own lines go through the root handler, in the format the settings chose.
        log_config=None,
        timeout_graceful_shutdown=5,
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
    )
    _Server(config, on_ready).run(sockets=[sock])


# --- several processes ---------------------------------------------------------------------

API = "api"
PROCESSOR = "processor"
# A child that dies sooner than this after its start is started again only after a pause, so a
# child that cannot start (a bad setting, the database gone) does not spin the supervisor.
QUICK_DEATH_S = 2.0


def _api_child(settings: ServerSettings, index: int, sock: socket.socket,
               ready: Connection) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    # The queue is the processor processes' work; this process only answers requests. Its own
    # data folder holds its own staging folder, which it clears of partial uploads when it
    # (re)starts without touching a sibling's uploads in flight; the database and the store are
    # the supervisor's, named explicitly.
    child = settings.model_copy(update={
        "processors": 0, "workers": 0, "migrate": False,
        "database_url": settings.database, "storage": settings.storage_url,
        "data_dir": settings.data_dir / "api" / str(index),
    })
    child.data_dir.mkdir(parents=True, exist_ok=True)

    def say_ready() -> None:
        ready.send(os.getpid())
        ready.close()

    _serve_on(child, sock, say_ready)


def _processor_child(settings: ServerSettings, ready: Connection) -> None:
    from schema.db import Database, create_engine
    from sync.server.notify import Wakeup, libpq_dsn
    from sync.server.processor import QueueProcessor

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    db = Database(create_engine(settings.database))
    processor = QueueProcessor(db, batch=settings.processor_batch,
                               retry_s=settings.processor_retry_s)
    dsn = libpq_dsn(settings.database)
    wakeup = Wakeup(dsn, poll_s=settings.processor_poll_s) if dsn else None
    ready.send(os.getpid())
    ready.close()
    try:
        processor.run(stop, settings.processor_idle_s, wakeup)
    finally:
        db.dispose()


class Supervisor:
    """The API and processor processes of ``kensa-server run --workers N``."""

    def __init__(self, settings: ServerSettings, sock: socket.socket) -> None:
        self.settings = settings
        self.sock = sock
        self.port = int(sock.getsockname()[1])
        # Fork: the children share the bound socket and start in milliseconds; the supervisor
        # has opened no database connection and started no thread before it forks.
        self.context = multiprocessing.get_context("fork")
        self.children: dict[tuple[str, int], BaseProcess] = {}
        self.started_at: dict[tuple[str, int], float] = {}
        self.stopping = False

    def _start(self, role: str, index: int, timeout: float = 60.0) -> BaseProcess:
        receive, send = self.context.Pipe(duplex=False)
        if role == API:
            target: Callable[..., None] = _api_child
            args: tuple[Any, ...] = (self.settings, index, self.sock, send)
        else:
            target, args = _processor_child, (self.settings, send)
        child = self.context.Process(target=target, args=args, name=f"kensa-{role}-{index}",
                                     daemon=False)
        child.start()
        send.close()
        try:
            if not receive.poll(timeout):
                raise RuntimeError(f"{role} process {index} did not start within {timeout}s")
            receive.recv()
        except EOFError as exc:
            raise RuntimeError(f"{role} process {index} exited while starting "
                               f"(status {child.exitcode})") from exc
        finally:
            receive.close()
        self.children[(role, index)] = child
        self.started_at[(role, index)] = time.monotonic()
        return child

    def _pids(self, role: str) -> list[int]:
        return [c.pid for (r, _), c in sorted(self.children.items()) if r == role and c.pid]

    def run(self) -> None:
        def stop(*_: Any) -> None:
            self.stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:
            for index in range(self.settings.workers):
                self._start(API, index)
            for index in range(self.settings.processors):
                self._start(PROCESSOR, index)
            _say({"event": "ready", "port": self.port, "workers": self._pids(API),
                  "processors": self._pids(PROCESSOR)})
            log.info("serving on port %d with %d API and %d processor processes", self.port,
                     self.settings.workers, self.settings.processors)
            while not self.stopping:
                time.sleep(0.1)
                self._restart_dead()
        finally:
            self._stop_all()

    def _restart_dead(self) -> None:
        for key, child in list(self.children.items()):
            if child.is_alive() or self.stopping:
                continue
            role, index = key
            child.join(0)
            log.warning("%s process %d (pid %s) exited with %s; starting it again", role, index,
                        child.pid, child.exitcode)
            if time.monotonic() - self.started_at[key] < QUICK_DEATH_S:
                time.sleep(QUICK_DEATH_S)
            # A start that fails counts as a start: the next try waits too.
            self.started_at[key] = time.monotonic()
            try:
                new = self._start(role, index)
            except RuntimeError as exc:
                log.error("%s", exc)
                continue
            _say({"event": "restarted", "role": role, "pid": new.pid, "was": child.pid,
                  "exitcode": child.exitcode})

    def _stop_all(self, grace_s: float = 10.0) -> None:
        for child in self.children.values():
            if child.is_alive() and child.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for child in self.children.values():
            child.join(max(0.0, deadline - time.monotonic()))
            if child.is_alive():
                child.kill()
                child.join(5)
        self.sock.close()
