"""Running the server: migrate, bind, serve, and say so on stdout.

The socket is bound here (``SO_REUSEADDR``, port 0 allowed) before uvicorn starts, and once the app
is up one JSON line ``{"event": "ready", "port": N}`` is printed, so a supervisor or a test knows
the port and that requests will be answered.
"""

from __future__ import annotations

import json
import logging
import socket
import sys

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


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, port: int) -> None:
        super().__init__(config)
        self.port = port

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            sys.stdout.write(json.dumps({"event": "ready", "port": self.port}) + "\n")
            sys.stdout.flush()


def serve(settings: ServerSettings) -> None:
    configure_logging(settings.log_level, settings.log_format)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.migrate:
        revision = upgrade_server(settings.database)
        log.info("server database at revision %s", revision)
    sock = bind(settings.host, settings.port)
    port = sock.getsockname()[1]
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
    _Server(config, port).run(sockets=[sock])
