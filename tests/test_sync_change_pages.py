"""The change feed's pages, over random change logs: the entities' JSON that PostgreSQL builds
and the JSON built here agree entry for entry, and a walk through the pages (any page size, on
PostgreSQL and on SQLite) ends with exactly the masters the server holds, each parent sent no
later than the items that refer to it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, col, select

from schema import server as s
from schema.db import Database, create_engine
from schema.migrate import upgrade_server
from schema.types import utcnow
from sync.server import changes

KINDS = ("target", "item", "pipeline", "user", "model")
CRITERIA = {"judgment_type": "BINARY", "measurement": "ok", "expected": True}
# (kind, which of a few entities of that kind, what happens to it, a value that changes)
ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(KINDS),
        st.integers(0, 3),
        st.sampled_from(("put", "put", "delete")),
        st.sampled_from(("", "名前", "x" * 3, None)),
    ),
    min_size=1,
    max_size=30,
)
SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _live(row: Any) -> bool:
    return row is not None and getattr(row, "deleted_at", None) is None


class Log:
    """Writes masters the way the server's publishing does: each change with its log row,
    deleting a target deletes its items."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.rows: dict[tuple[str, int], Any] = {}

    def change(self, kind: str, key: str, operation: str) -> None:
        self.session.flush()
        changes.record_change(self.session, kind, key, operation)

    def put(self, kind: str, n: int, value: str | None) -> None:
        row = self.rows.get((kind, n))
        text = value or f"v{n}"
        if kind == "target":
            if row is None:
                row = s.InspectionTargetMaster(product_code=f"P-{n}", product_name=text,
                                               version="1")
            row.product_name, row.description, row.deleted_at = text, value, None
        elif kind == "pipeline":
            if row is None:
                row = s.Pipeline(name=f"p{n}", definition={})
            row.definition = {"name": f"p{n}", "steps": [{"name": "m", "params": {"v": text}}]}
            row.deleted_at = None
        elif kind == "user":
            if row is None:
                row = s.User(username=f"u{n}", password_hash="$argon2id$v=19$x")
            row.full_name, row.deleted_at = value, None
        elif kind == "model":
            sha = hashlib.sha256(bytes([n])).hexdigest()
            if row is None:
                row = s.File(checksum=sha, kind="model", storage_path=sha, file_size=n + 1)
            row.original_name, row.metadata_ = value, {}
        else:
            target = self.rows.get(("target", n % 2))
            if not _live(target):
                self.put("target", n % 2, None)
                target = self.rows[("target", n % 2)]
            pipeline = self.rows.get(("pipeline", n))
            pipeline_id = pipeline.id if _live(pipeline) else None
            if row is None:
                row = s.InspectionItemMaster(target_id=target.id, item_code=f"I-{n}",
                                             item_name=text, inspection_type="VISUAL",
                                             criteria=CRITERIA, order_sequence=n + 1)
            row.item_name, row.pipeline_id = text, pipeline_id
            row.ai_enabled, row.deleted_at = pipeline_id is not None, None
        if kind != "model":
            row.updated_at = utcnow()
        self.session.add(row)
        self.rows[(kind, n)] = row
        self.change(kind, row.checksum if kind == "model" else str(row.id), "UPSERT")

    def delete(self, kind: str, n: int) -> None:
        row = self.rows.get((kind, n))
        if row is None:
            return
        if kind == "model":
            row.metadata_ = {"deleted_at": utcnow().isoformat()}
            self.session.add(row)
            self.change(kind, row.checksum, "DELETE")
            return
        if not _live(row):
            return
        row.deleted_at = utcnow()
        self.session.add(row)
        self.change(kind, str(row.id), "DELETE")
        if kind == "target":
            for (other, m), item in list(self.rows.items()):
                if other == "item" and _live(item) and item.target_id == row.id:
                    self.delete("item", m)

    def run(self, actions: list[tuple[str, int, str, str | None]]) -> None:
        for kind, n, what, value in actions:
            if what == "put":
                self.put(kind, n, value)
            else:
                self.delete(kind, n)
        self.session.flush()


def _plain(value: Any) -> Any:
    """JSON with its timestamps as instants: PostgreSQL and Python spell them differently."""
    if isinstance(value, dict):
        return {
            k: datetime.fromisoformat(v) if k.endswith("_at") and isinstance(v, str)
            else _plain(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _entries(found: list[changes.Entry]) -> list[tuple[Any, ...]]:
    return [
        (e.seq, e.entity_type, e.entity_id,
         None if e.data is None else _plain(json.loads(e.data)), e.parents)
        for e in found
    ]


@pytest.fixture
def pg_db(pg_url: str) -> Iterator[Database]:
    upgrade_server(pg_url)
    db = Database(create_engine(pg_url))
    yield db
    db.dispose()


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path / 'server.db'}"
    upgrade_server(url)
    db = Database(create_engine(url))
    yield db
    db.dispose()


@contextmanager
def scratch(db: Database) -> Iterator[Session]:
    """A session whose writes are never committed: each example starts from an empty log."""
    with Session(db.engine) as session:
        yield session


@pytest.mark.postgres
@SETTINGS
@given(actions=ACTIONS)
def test_postgres_and_python_build_the_same_entries(
    pg_db: Database, actions: list[tuple[str, int, str, str | None]]
) -> None:
    with scratch(pg_db) as session:
        Log(session).run(actions)
        seqs = sorted(q for q in session.exec(select(s.ChangeLog.seq)).all() if q is not None)
        for after in (0, *seqs):
            for limit in (1, 3, 1000):
                assert _entries(changes.postgres_entries(session, after, limit)) == _entries(
                    changes.python_entries(session, after, limit)
                ), (after, limit)


def _walk(session: Session, size: int) -> tuple[dict[tuple[str, str], Any], dict[str, Any]]:
    """Pull every page from the start, applying each change in order as a device does."""
    held: dict[tuple[str, str], Any] = {}
    cursor = None
    pages = 0
    while True:
        page = json.loads(changes.page_json(session, cursor, size))
        pages += 1
        assert pages < 1000, "the pages never end"
        for change in page["changes"]:
            key = (change["entity_type"], change["entity_id"])
            if change["op"] == "DELETE":
                held.pop(key, None)
                continue
            held[key] = _plain(change["data"])
        # The device applies a page in one transaction: by its end, every item's target is there.
        for (kind, _), data in held.items():
            if kind == "item":
                assert ("target", data["target_id"]) in held, data
        cursor = page["cursor"]
        if not page["has_more"]:
            return held, page["live"]


def _expected(session: Session) -> dict[tuple[str, str], Any]:
    want: dict[tuple[str, str], Any] = {}
    for kind, table in changes.ENTITY_TABLES.items():
        for row in session.exec(select(table).where(col(table.deleted_at).is_(None))).all():
            want[(kind, str(row.id))] = _plain(changes.serialize(kind, row))
    for row in session.exec(select(s.File).where(s.File.kind == "model")).all():
        if not (row.metadata_ or {}).get("deleted_at"):
            want[("model", row.checksum)] = _plain(changes.serialize("model", row))
    return want


@pytest.mark.parametrize(
    "database", [pytest.param("postgresql", marks=pytest.mark.postgres), "sqlite"]
)
@SETTINGS
@given(actions=ACTIONS, size=st.integers(1, 6))
def test_a_walk_through_the_pages_ends_with_the_servers_masters(
    request: pytest.FixtureRequest, database: str,
    actions: list[tuple[str, int, str, str | None]], size: int,
) -> None:
    db: Database = request.getfixturevalue("pg_db" if database == "postgresql" else "sqlite_db")
    with scratch(db) as session:
        Log(session).run(actions)
        held, live = _walk(session, size)
        want = _expected(session)
        assert held == want
        assert {k: sorted(v) for k, v in live.items()} == {
            kind: sorted(i for t, i in want if t == kind) for kind in KINDS
        }
