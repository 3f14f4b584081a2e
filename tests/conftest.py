"""Shared fixtures: a fresh SQLite file per test and one throw-away PostgreSQL for the run."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from schema.db import Database, create_sqlite_engine
from schema.migrate import upgrade_device
from tests.support.postgres import Cluster, running_cluster

REPO = Path(__file__).resolve().parents[1]

# The login-signing key file of every sidecar the tests start, in process or not, goes to a
# throw-away folder instead of the developer's own configuration folder.
os.environ["KENSA_CONFIG_DIR"] = tempfile.mkdtemp(prefix="kensa-config-")
atexit.register(shutil.rmtree, os.environ["KENSA_CONFIG_DIR"], ignore_errors=True)

# The device store is plaintext in tests unless a test gives a key (tests/test_encrypted_store.py,
# the launch tests): most tests read and tamper with the file through plain sqlite3 to check
# what the product wrote, which an encrypted file would hide from them. A test that hands the
# sidecar a key (``--key-stdin``, KENSA_KEY_FILE) gets an encrypted store whatever this says.
os.environ["KENSA_PLAINTEXT"] = "1"
# Never the developer's own OS keystore.
os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"


@pytest.fixture
def device_path(tmp_path: Path) -> Path:
    return tmp_path / "kensa.db"


@pytest.fixture
def device_db(device_path: Path) -> Iterator[Database]:
    """A migrated device database in a fresh file."""
    upgrade_device(device_path)
    db = Database(create_sqlite_engine(device_path))
    yield db
    db.dispose()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    name = pg_cluster.create_database()
    yield pg_cluster.url(name)
    pg_cluster.drop_database(name)
