"""The launch protocol the Tauri shell relies on.

1. Settings from the environment (``KENSA_TOKEN``, ``KENSA_DATA_DIR``); no token, no start.
   The data key (``sidecar.key_source``): with ``--key-stdin`` the first line on stdin, else
   ``KENSA_KEY_FILE`` or the OS keystore; ``KENSA_PLAINTEXT=1`` allows a plaintext store.
2. Device migrations (a corrupt or foreign database, or one this key does not open, stops the
   start with a clear message and the files as they were).
3. Bind ``127.0.0.1:0`` (or ``--port``), then print exactly one JSON line on stdout:
   ``{"event": "ready", "port": N, "pid": P, "encrypted": true}`` (``false``: a plaintext
   development store). Logs go to a rotating file and stderr, never stdout, so the shell can
   read that line without parsing around anything else.
4. Exit cleanly on SIGTERM, and when stdin closes: the shell holds our stdin, so its death
   closes it, and no orphaned sidecar is left behind.

Exit status: 0 after a requested stop; 2 when the sidecar cannot start as configured (no token,
no data key or a wrong one, a corrupt or foreign database) — restarting would fail the same way,
so the shell shows the error instead of retrying; anything else is a crash the shell may restart
after.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import signal
import socket
import sys
import threading
import time
from types import FrameType
from typing import TextIO

from schema.errors import SchemaError
from schema.migrate import upgrade_device
from sidecar import key_source
from sidecar.errors import KensaError
from sidecar.settings import Settings

log = logging.getLogger("kensa.sidecar")


_FORMAT = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


def setup_logging(settings: Settings, *, to_file: bool = True) -> None:
    """Logs to stderr, and (``to_file``) to the rotating file in the data folder.

    The file is added only once the store has opened with its key: a start refused for a wrong
    key must leave every file in the data folder as it was, the log included.

    The file stays in the data folder (the support engineer's one place to look), so what the
    sidecar logs names no user, QR text or defect: ids, counts and states only; database
    errors are logged without their bound values (``hide_parameters`` on the device engine)."""
    root = logging.getLogger()
    root.handlers[:] = []
    to_stderr = logging.StreamHandler(sys.stderr)
    to_stderr.setFormatter(_FORMAT)
    root.addHandler(to_stderr)
    if to_file:
        settings.logs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        handler = logging.handlers.RotatingFileHandler(
            settings.logs_dir / "sidecar.log", maxBytes=5 * 2**20, backupCount=5, encoding="utf-8"
        )
        handler.setFormatter(_FORMAT)
        root.addHandler(handler)
    root.setLevel(settings.log_level.upper())


def _watch_stdin(stop: threading.Event) -> None:
    # os.read on the raw descriptor: a daemon thread blocked inside the buffered sys.stdin holds
    # its lock, and the interpreter aborts when it finds that lock taken at exit.
    fd = sys.stdin.fileno()
    while os.read(fd, 4096):
        pass
    log.info("stdin closed: the parent is gone, shutting down")
    stop.set()


def serve(
    settings: Settings,
    *,
    watch_stdin: bool = True,
    key_stdin: bool = False,
    create_key: bool = False,
) -> int:
    """Run the sidecar until it is stopped. ``key_stdin``: the data key is the first line on
    stdin (the Tauri shell); else ``KENSA_KEY_FILE``, the OS keystore, where ``create_key`` makes
    one for a folder without a store (``kensa serve``), or ``KENSA_PLAINTEXT=1``."""
    if settings.token is None or not settings.token.get_secret_value():
        print(
            "kensa sidecar: KENSA_TOKEN is not set; refusing to start without one", file=sys.stderr
        )
        return 2
    from sidecar.pipeline.providers import ProviderSettingInvalid, parse

    try:
        # Checked at start, not at the first judgment: a typo would otherwise pass unnoticed
        # until an inspector's photo failed to be judged.
        parse(os.environ.get("KENSA_ORT_PROVIDER"))
    except ProviderSettingInvalid as exc:
        print(f"kensa sidecar: KENSA_ORT_PROVIDER: {exc.message}", file=sys.stderr)
        return 2
    from sidecar import store_crypto

    try:
        loaded = key_source.load(settings.data_dir, key_stdin=key_stdin, create=create_key)
        loaded = store_crypto.resume_rotation(settings.data_dir, loaded)
    except KensaError as exc:
        return key_source.fail(exc, "kensa sidecar")
    except SchemaError as exc:
        print(f"kensa sidecar: {exc}", file=sys.stderr)
        return 2
    # Only the ready line may reach stdout: anything a library prints goes to stderr instead.
    ready_out: TextIO = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    sys.stdout = sys.stderr
    key_source.ensure_data_dir(settings.data_dir)
    setup_logging(settings, to_file=False)
    try:
        upgrade_device(settings.database_path, key=loaded.key)
    except SchemaError as exc:
        log.error("cannot open the device database: %s", exc)
        return 2
    setup_logging(settings)
    if not loaded.encrypted:
        log.warning(
            "PLAINTEXT STORE: %s is not encrypted (%s=1); development only",
            settings.database_path,
            key_source.PLAINTEXT_ENV,
        )

    import uvicorn

    from sidecar.app import create_app

    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and without it
    # every reused keep-alive request waits ~40 ms for delayed ACKs.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", settings.port))
    port = sock.getsockname()[1]
    # Set once the ready line is out: the model warm-up waits for it (see create_app).
    serving = threading.Event()
    try:
        app = create_app(settings, data_key=loaded.key, serving=serving)
    except KensaError as exc:
        # A configuration no restart can fix (a damaged signing key file, a key folder inside
        # the data folder): exit 2, which the shell does not retry.
        log.error("cannot start as configured: %s", exc.message)
        sock.close()
        return 2
    config = uvicorn.Config(app, log_config=None, access_log=False, timeout_graceful_shutdown=5)
    from sidecar import events

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # Open /events streams would hold a graceful shutdown for its whole timeout.
            events.hub.close_all()
            super().handle_exit(sig, frame)

    server = Server(config)
    stop = threading.Event()

    def announce() -> None:
        while not server.started and not stop.is_set():
            time.sleep(0.005)
        if server.started:
            ready = {
                "event": "ready",
                "port": port,
                "pid": os.getpid(),
                "encrypted": loaded.encrypted,
            }
            ready_out.write(json.dumps(ready) + "\n")
            ready_out.flush()
            serving.set()
            log.info("ready on 127.0.0.1:%d (data in %s)", port, settings.data_dir)

    def stopper() -> None:
        stop.wait()
        events.hub.close_all()
        server.should_exit = True

    threading.Thread(target=announce, name="announce", daemon=True).start()
    threading.Thread(target=stopper, name="stopper", daemon=True).start()
    if watch_stdin and not sys.stdin.isatty():
        threading.Thread(target=_watch_stdin, args=(stop,), name="stdin", daemon=True).start()
    # uvicorn handles SIGTERM while it runs and raises it again once it has shut down; this handler
    # receives that second delivery, so a requested stop ends with exit status 0, not -15.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        server.run(sockets=[sock])
    finally:
        stop.set()
    log.info("stopped")
    return 0
