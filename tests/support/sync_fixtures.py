"""pytest fixtures for the sync tests: a seeded site with its server running as a process.

Import the fixtures into a test module (``from tests.support.sync_fixtures import site_server``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.postgres import Cluster
from tests.support.sync_harness import ServerProcess, Site, seed_site


@dataclass
class Running:
    site: Site
    server: ServerProcess
    files: Path

    @property
    def url(self) -> str:
        return self.server.url

    def access(self, device: str = "TAB-01") -> str:
        answer = httpx.post(f"{self.url}/sync/v1/auth",
                            headers={"Authorization": f"Bearer {self.site.tokens[device]}"})
        answer.raise_for_status()
        token: str = answer.json()["access_token"]
        return token

    def client(self, device: str = "TAB-01") -> httpx.Client:
        return httpx.Client(base_url=self.url,
                            headers={"Authorization": f"Bearer {self.access(device)}"},
                            timeout=30)


@contextmanager
def running_site(pg_cluster: Cluster, tmp: Path) -> Iterator[Running]:
    """A seeded site on a database of its own with its server running, for the tests of one
    module that each leave it as they found it. Failed admin logins are not throttled."""
    name = pg_cluster.create_database()
    url = pg_cluster.url(name)
    files = tmp / "files"
    site = seed_site(url, files.as_uri())
    server = ServerProcess(url, tmp / "server", storage=files.as_uri(),
                           extra_env={"KENSA_SERVER_ADMIN_LOGIN_BURST": "100000"})
    try:
        with server:
            yield Running(site, server, files)
    finally:
        pg_cluster.drop_database(name)


@pytest.fixture
def site_server(pg_url: str, tmp_path: Path) -> Iterator[Running]:
    files = tmp_path / "files"
    site = seed_site(pg_url, files.as_uri(), model_bytes=100_000)
    with ServerProcess(pg_url, tmp_path / "server", storage=files.as_uri()) as server:
        yield Running(site, server, files)
