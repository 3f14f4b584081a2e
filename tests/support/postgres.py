"""A throw-away PostgreSQL cluster from the installed server binaries.

Used by the test suite and the benchmarks: a fresh cluster in a temporary directory, on a free
loopback port, stopped and removed afterwards. PostgreSQL refuses to run as root, so when the
tests run as root (CI does) the cluster belongs to the ``postgres`` system user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path


def find_bindir() -> Path:
    explicit = os.environ.get("KENSA_PG_BINDIR")
    if explicit:
        return Path(explicit)
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if not candidates:
        raise RuntimeError(
            "PostgreSQL server binaries not found: run scripts/bootstrap "
            "(Debian package postgresql) or set KENSA_PG_BINDIR"
        )
    return Path(candidates[-1]).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Cluster:
    port: int
    user: str = "postgres"
    # Stops the server as a crash would (no shutdown checkpoint) and starts it again on the
    # same port and data: the chaos runs' "PostgreSQL restarted".
    crash_restart: Callable[[], None] | None = None

    def restart(self) -> None:
        assert self.crash_restart is not None, "this cluster was not started here"
        self.crash_restart()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={self.user} dbname={database}"

    def create_database(self, name: str | None = None) -> str:
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return name

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def running_cluster() -> Iterator[Cluster]:
    bindir = find_bindir()
    as_root = os.geteuid() == 0
    base = Path(tempfile.mkdtemp(prefix="kensa-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    prefix: list[str] = []
    if as_root:
        pg = pwd.getpwnam("postgres")
        for p in (base, sock):
            os.chown(p, pg.pw_uid, pg.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    log = base / "server.log"

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, text=True)

    try:
        run(
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        )
        # fsync=off: a test cluster never needs to survive a power cut, and it is much faster.
        opts = (
            f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        )
        run(
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(log),
            "-o",
            opts,
            "-w",
            "-t",
            "60",
            "start",
        )

        def crash_restart() -> None:
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
            run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w",
                "-t", "60", "start")

        yield Cluster(port=port, crash_restart=crash_restart)
    except subprocess.CalledProcessError as exc:
        detail = log.read_text() if log.exists() else ""
        raise RuntimeError(f"PostgreSQL failed to start: {exc.stderr}\n{detail}") from exc
    finally:
        with contextlib.suppress(Exception):
            subprocess.run(
                [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(base, ignore_errors=True)
