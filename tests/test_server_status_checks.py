"""The server database holds only the move table's states in its session and item status
columns (server revision 0004): the migrated CHECKs list exactly ``schema.formats.workflow``'s
states, the database refuses others whatever writes them, and rows from before the revision are
carried over or stop the upgrade as its docstring says."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from schema import migrate
from schema.db import create_engine
from schema.errors import SchemaError
from schema.formats.workflow import ITEM_STATES, SESSION_STATES

STATUS_CHECKS = {
    "inspection_sessions": ("ck_sessions_status", SESSION_STATES),
    "inspection_session_items": ("ck_session_items_status", ITEM_STATES),
}


@pytest.fixture
def engine_at(pg_url: str) -> Iterator[tuple[str, sa.Engine]]:
    engine = create_engine(pg_url)
    yield pg_url, engine
    engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("table", STATUS_CHECKS)
def test_the_migrated_checks_list_the_move_tables_states(
    engine_at: tuple[str, sa.Engine], table: str
) -> None:
    url, engine = engine_at
    migrate.upgrade_server(url)
    with engine.connect() as conn:
        checks: dict[str, str] = dict(
            conn.execute(
                sa.text(
                    "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conrelid = CAST(:t AS regclass) AND contype = 'c'"
                ),
                {"t": table},
            ).all()
        )
    name, states = STATUS_CHECKS[table]
    # PostgreSQL keeps the list as ``status = ANY (ARRAY['scanning'::character varying, ...])``.
    assert tuple(re.findall(r"'([^']*)'::", checks[name])) == states


def _rows(conn: sa.Connection, session_status: str, item_status: str) -> tuple[str, str]:
    device, target, session, item = (str(uuid.uuid4()) for _ in range(4))
    conn.execute(
        sa.text("INSERT INTO devices (id, name, token_hash) VALUES (:id, :name, :hash)"),
        {"id": device, "name": f"TAB-{device[:8]}", "hash": device.replace("-", "")},
    )
    conn.execute(
        sa.text(
            "INSERT INTO inspection_targets (id, device_id, product_id, batch_id, qr_code) "
            "VALUES (:id, :device, 'BRK-100', 'A12-3456', 'x')"
        ),
        {"id": target, "device": device},
    )
    conn.execute(
        sa.text(
            "INSERT INTO inspection_sessions (id, device_id, target_id, status) "
            "VALUES (:id, :device, :target, :status)"
        ),
        {"id": session, "device": device, "target": target, "status": session_status},
    )
    conn.execute(
        sa.text(
            "INSERT INTO inspection_session_items (id, session_id, item_code, order_sequence, "
            "required, status, attempts) VALUES (:id, :session, 'V-1', 1, TRUE, :status, 0)"
        ),
        {"id": item, "session": session, "status": item_status},
    )
    return session, item


def _status(conn: sa.Connection, table: str, row_id: str) -> str:
    return str(
        conn.execute(
            sa.text(f"SELECT status FROM {table} WHERE id = :id"), {"id": row_id}
        ).scalar_one()
    )


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("table", "session_status", "item_status"),
    [
        ("inspection_sessions", "paused", "pending"),
        ("inspection_sessions", "Completed", "pending"),
        ("inspection_session_items", "scanning", "pending_review"),
        ("inspection_session_items", "scanning", ""),
    ],
)
def test_the_database_refuses_a_status_outside_the_table(
    engine_at: tuple[str, sa.Engine], table: str, session_status: str, item_status: str
) -> None:
    url, engine = engine_at
    migrate.upgrade_server(url)
    with (
        pytest.raises(sa.exc.IntegrityError, match=STATUS_CHECKS[table][0]),
        engine.begin() as conn,
    ):
        _rows(conn, session_status, item_status)


@pytest.fixture(params=["postgresql", "sqlite"])
def before_checks(
    request: pytest.FixtureRequest, pg_url: str, tmp_path: Path
) -> Iterator[tuple[str, sa.Engine]]:
    """A server database (PostgreSQL, or the embedded SQLite) at the revision before 0004."""
    url = pg_url if request.param == "postgresql" else f"sqlite:///{tmp_path / 'server.db'}"
    migrate.upgrade_server(url, "0003")
    engine = create_engine(url)
    yield url, engine
    engine.dispose()


@pytest.mark.postgres
def test_rows_from_before_the_checks_are_carried_over(
    before_checks: tuple[str, sa.Engine],
) -> None:
    url, engine = before_checks
    with engine.begin() as conn:
        legacy, legacy_item = _rows(conn, "pending", "ai_running")
        current, _ = _rows(conn, "human_review", "verified")
    migrate.upgrade_server(url)
    with engine.connect() as conn:
        # The seed's default becomes where an inspection starts; the rest stays as it was.
        assert _status(conn, "inspection_sessions", legacy) == "scanning"
        assert _status(conn, "inspection_sessions", current) == "human_review"
        assert _status(conn, "inspection_session_items", legacy_item) == "ai_running"


@pytest.mark.postgres
def test_a_status_no_device_sent_stops_the_upgrade_and_changes_nothing(
    before_checks: tuple[str, sa.Engine],
) -> None:
    url, engine = before_checks
    with engine.begin() as conn:
        legacy, _ = _rows(conn, "pending", "pending")
        _rows(conn, "paused", "pending")
        _rows(conn, "paused", "later")
    with pytest.raises(SchemaError) as caught:
        migrate.upgrade_server(url)
    assert str(caught.value) == (
        "inspection_sessions.status holds values that are not inspection states: "
        "'paused' (2 rows); inspection_session_items.status holds values that are not "
        "inspection states: 'later' (1 row); correct or remove those rows and upgrade again "
        "(nothing was changed)"
    )
    with engine.connect() as conn:
        assert migrate.current_revision(conn) == "0003"
        assert _status(conn, "inspection_sessions", legacy) == "pending"
