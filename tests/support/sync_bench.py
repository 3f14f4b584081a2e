"""Shared set-up of the sync benchmarks (``scripts/benchmarks/push.py``, ``pull.py``,
``backlog.py``): a throw-away PostgreSQL, a seeded site, the sync server as a process, and a
device database."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.postgres import running_cluster
from tests.support.sync_harness import ServerProcess, Site, seed_site


@dataclass
class Bench:
    base: Path
    pg_url: str
    site: Site
    files: Path

    def server(self, processors: int = 1) -> ServerProcess:
        return ServerProcess(self.pg_url, self.base / "server", storage=self.files.as_uri(),
                             processors=processors)

    def device_db(self, name: str = "device") -> tuple[object, Path]:
        from schema.db import Database, create_sqlite_engine
        from schema.migrate import upgrade_device

        home = self.base / name
        upgrade_device(home / "kensa.db")
        return Database(create_sqlite_engine(home / "kensa.db")), home


@contextlib.contextmanager
def bench_site() -> Iterator[Bench]:
    with tempfile.TemporaryDirectory(prefix="kensa-bench-") as tmp, running_cluster() as pg:
        url = pg.url(pg.create_database())
        base = Path(tmp)
        files = base / "files"
        site = seed_site(url, files.as_uri())
        yield Bench(base, url, site, files)
