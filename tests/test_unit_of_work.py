"""A domain row and its outbox row commit together or not at all; atomic() nests."""

from __future__ import annotations

import pytest
from sqlmodel import func, select

from schema import device as d
from schema.db import Database


def _write(db: Database, key: str, fail: bool = False) -> None:
    with db.atomic() as session:
        session.add(d.SystemConfig(key=key, value="1"))
        session.add(
            d.Outbox(
                entity_type="system_config", entity_id=key, operation="INSERT", data={"key": key}
            )
        )
        session.flush()
        if fail:
            raise RuntimeError("power cut")


def _counts(db: Database) -> tuple[int, int]:
    with db.read() as session:
        configs = session.exec(select(func.count()).select_from(d.SystemConfig)).one()
        outbox = session.exec(select(func.count()).select_from(d.Outbox)).one()
    return configs, outbox


def test_domain_row_and_outbox_row_commit_together(device_db: Database) -> None:
    _write(device_db, "a")
    assert _counts(device_db) == (1, 1)


def test_a_failure_leaves_neither(device_db: Database) -> None:
    with pytest.raises(RuntimeError):
        _write(device_db, "a", fail=True)
    assert _counts(device_db) == (0, 0)


def test_nested_atomic_rolls_back_only_its_own_part(device_db: Database) -> None:
    with device_db.atomic():
        _write(device_db, "outer")
        with pytest.raises(RuntimeError):
            _write(device_db, "inner", fail=True)
        _write(device_db, "after")
    with device_db.read() as session:
        keys = set(session.exec(select(d.SystemConfig.key)).all())
    assert keys == {"outer", "after"}
    assert _counts(device_db) == (2, 2)


def test_outer_failure_undoes_inner_blocks(device_db: Database) -> None:
    with pytest.raises(RuntimeError), device_db.atomic():
        _write(device_db, "inner")
        raise RuntimeError("later failure")
    assert _counts(device_db) == (0, 0)


def test_read_sees_committed_data_only(device_db: Database) -> None:
    with device_db.atomic():
        _write(device_db, "x")
        # read() inside a unit of work uses that unit's session: it sees its own writes.
        with device_db.read() as session:
            assert session.get(d.SystemConfig, "x") is not None
    assert _counts(device_db) == (1, 1)
