"""Both Alembic environments go up and down, and end up exactly where the models are."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import schema.device
import schema.server
from schema import migrate
from schema.db import create_engine, create_sqlite_engine


def _tables(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return set(sa.inspect(conn).get_table_names())


def _drift(engine: sa.Engine, metadata: sa.MetaData) -> list[object]:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(ctx, metadata))


def test_device_upgrade_downgrade_upgrade(device_path: Path) -> None:
    assert migrate.upgrade_device(device_path) == migrate.head_revision("device")
    engine = create_sqlite_engine(device_path)
    try:
        assert set(schema.device.metadata.tables) <= _tables(engine)
        assert migrate.downgrade_device(device_path, "base") == "base"
        assert _tables(engine) == {"alembic_version"}
        migrate.upgrade_device(device_path)
        assert set(schema.device.metadata.tables) <= _tables(engine)
    finally:
        engine.dispose()


def test_device_upgrade_is_idempotent(device_path: Path) -> None:
    migrate.upgrade_device(device_path)
    before = device_path.read_bytes()
    migrate.upgrade_device(device_path)
    assert device_path.read_bytes() == before


def test_device_migrations_match_models(device_path: Path) -> None:
    migrate.upgrade_device(device_path)
    engine = create_sqlite_engine(device_path)
    try:
        assert _drift(engine, schema.device.metadata) == []
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_server_upgrade_downgrade_upgrade_on_postgres(pg_url: str) -> None:
    assert migrate.upgrade_server(pg_url) == migrate.head_revision("server")
    engine = create_engine(pg_url)
    try:
        assert set(schema.server.metadata.tables) <= _tables(engine)
        assert migrate.downgrade_server(pg_url, "base") == "base"
        assert _tables(engine) == {"alembic_version"}
        migrate.upgrade_server(pg_url)
        assert set(schema.server.metadata.tables) <= _tables(engine)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_server_migrations_match_models_on_postgres(pg_url: str) -> None:
    migrate.upgrade_server(pg_url)
    engine = create_engine(pg_url)
    try:
        assert _drift(engine, schema.server.metadata) == []
        with engine.connect() as conn:
            indexes = {i["name"]: i for i in sa.inspect(conn).get_indexes("tauri_sync_queue")}
        # The seed's partial index: only unprocessed rows are indexed.
        where = indexes["idx_tauri_sync_queue_unprocessed"]["dialect_options"]["postgresql_where"]
        assert "processed_at IS NULL" in str(where)
        assert indexes["idx_tauri_sync_queue_device_priority"]["column_names"] == [
            "device_id",
            "device_type",
            "priority",
            "created_at",
        ]
    finally:
        engine.dispose()


def test_server_schema_also_runs_on_sqlite(tmp_path: Path) -> None:
    """The embedded default for a demo or a small site: the same migrations on a SQLite file."""
    url = f"sqlite:///{tmp_path / 'server.db'}"
    migrate.upgrade_server(url)
    engine = create_engine(url)
    try:
        assert set(schema.server.metadata.tables) <= _tables(engine)
    finally:
        engine.dispose()
    assert migrate.downgrade_server(url, "base") == "base"


def test_a_failed_migration_changes_nothing(
    device_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migrations run in one transaction: a failure half-way leaves the file at its old revision."""
    migrate.upgrade_device(device_path)
    migrate.downgrade_device(device_path, "base")
    before = device_path.read_bytes()

    from alembic.operations import Operations

    real_create_table = Operations.create_table
    calls = {"n": 0}

    def failing_create_table(self: Operations, *args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk full")
        return real_create_table(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Operations, "create_table", failing_create_table)
    with pytest.raises(RuntimeError, match="disk full"):
        migrate.upgrade_device(device_path)
    monkeypatch.undo()
    engine = create_sqlite_engine(device_path)
    try:
        assert _tables(engine) == {"alembic_version"}
    finally:
        engine.dispose()
    assert len(device_path.read_bytes()) == len(before)
