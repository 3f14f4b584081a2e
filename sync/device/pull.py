"""Pulling masters: targets, items with criteria, pipelines, users with password hashes, models.

Pages come after a server-issued cursor; each page and its cursor commit in one SQLite
transaction, so a crash re-fetches at most one page and never skips one. Rows are upserted in
bulk (``INSERT … ON CONFLICT DO UPDATE``). Deletes arrive as tombstones: masters keep their row
with ``deleted_at`` (history refers to them), users are deactivated, model files go.

A row with pending local changes is never overwritten: the page is applied up to it, the cursor
stops just before it, and pulling resumes after the next push. A cursor the server no longer
keeps (410) starts a full resync, whose last page lists every live id so that the device drops
what the server no longer has.

Model bodies are downloaded (streamed, hash-checked) before the page's transaction, into
``<data_dir>/models/<sha256>.onnx``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from schema import device as d
from schema.db import Database
from schema.types import utcnow
from sync.conflicts import may_overwrite_pulled
from sync.device import state
from sync.device.client import SyncClient
from sync.device.outbox_store import SqliteOutbox
from sync.errors import CursorExpired
from sync.protocol import Change, ChangesPage

log = logging.getLogger(__name__)

TARGETS: sa.Table = d.InspectionTargetMaster.__table__  # type: ignore[attr-defined]
ITEMS: sa.Table = d.InspectionItemMaster.__table__  # type: ignore[attr-defined]
PIPELINES: sa.Table = d.Pipeline.__table__  # type: ignore[attr-defined]
USERS: sa.Table = d.User.__table__  # type: ignore[attr-defined]
MODELS: sa.Table = d.ModelFile.__table__  # type: ignore[attr-defined]

# Parents before children within a page: the keys are deferred, but the order keeps the
# unique-code fix-ups below meaningful.
APPLY_ORDER = ("user", "pipeline", "model", "target", "item")


@dataclass
class PullResult:
    applied: int = 0
    pages: int = 0
    resynced: bool = False
    deferred: bool = False
    has_more: bool = False


def _sqlite(value: Any) -> str:
    """An ISO 8601 time from the server as UTCDateTime stores it in SQLite (naive UTC text);
    now when absent, since the columns are NOT NULL."""
    stamp = datetime.fromisoformat(str(value)) if value else utcnow()
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def model_path(data_dir: Path, sha256: str) -> Path:
    return data_dir / "models" / f"{sha256}.onnx"


class Puller:
    def __init__(self, db: Database, data_dir: Path, *, page_size: int = 1000) -> None:
        self.db = db
        self.data_dir = data_dir
        self.page_size = page_size
        self.outbox = SqliteOutbox(db)

    def pull(self, client: SyncClient, budget_s: float = 30.0) -> PullResult:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kensa-pull") as prefetch:
            return self._pull(client, budget_s, prefetch)

    def _pull(
        self, client: SyncClient, budget_s: float, prefetch: ThreadPoolExecutor
    ) -> PullResult:
        result = PullResult()
        cursor = state.get(self.db, "pull").cursor
        deadline = time.monotonic() + budget_s
        resynced = False
        upcoming: Future[ChangesPage] | None = None
        while True:
            try:
                page = upcoming.result() if upcoming else client.changes(cursor, self.page_size)
            except CursorExpired:
                upcoming = None
                if resynced:
                    raise
                log.warning("pull cursor expired on the server: full resync")
                resynced = result.resynced = True
                cursor = None
                with self.db.atomic() as session:
                    state.set_cursor(session, "pull", None)
                continue
            upcoming = None
            result.pages += 1
            if page.has_more:
                # The server prepares the next page while this one is applied here; if this
                # one stops early the prefetched page is simply dropped.
                upcoming = prefetch.submit(client.changes, page.cursor, self.page_size)
            self._fetch_models(client, page.changes)
            applied, cursor, deferred = self.apply_page(page, cursor)
            result.applied += applied
            if deferred:
                result.deferred = True
                return result
            if not page.has_more:
                return result
            if time.monotonic() > deadline:
                result.has_more = True
                return result

    # --- one page ----------------------------------------------------------------------------

    def apply_page(self, page: ChangesPage, cursor: str | None) -> tuple[int, str | None, bool]:
        """Apply a page and store its cursor in one transaction; returns (applied, cursor,
        deferred)."""
        changes = page.changes
        pending = self.outbox.pending_entity_ids([c.entity_id for c in changes])
        stop = len(changes)
        for index, change in enumerate(changes):
            if not may_overwrite_pulled(change.entity_id in pending):
                stop = index
                break
        deferred = stop < len(changes)
        new_cursor: str | None = page.cursor
        if deferred:
            log.info("pull stops at %s %s: it has local changes not yet pushed",
                     changes[stop].entity_type, changes[stop].entity_id)
            new_cursor = changes[stop - 1].cursor if stop > 0 else cursor
        with self.db.atomic() as session:
            applied = self._apply(session, changes[:stop])
            if page.live is not None and not deferred:
                self._sweep(session, page.live)
            state.set_cursor(session, "pull", new_cursor)
        return applied, new_cursor, deferred

    def _apply(self, session: Session, changes: Sequence[Change]) -> int:
        groups: dict[tuple[str, str], list[Change]] = defaultdict(list)
        for change in changes:
            groups[(change.entity_type, change.op)].append(change)
        applied = 0
        for kind in APPLY_ORDER:
            upserts = groups.get((kind, "UPSERT"), [])
            deletes = groups.get((kind, "DELETE"), [])
            if upserts:
                getattr(self, f"_upsert_{kind}")(session, [c.data or {} for c in upserts])
            if deletes:
                self._tombstone(session, kind, [c.entity_id for c in deletes])
            applied += len(upserts) + len(deletes)
        unknown = {k for k, _ in groups} - set(APPLY_ORDER)
        if unknown:
            log.warning("ignoring pulled changes of unknown types: %s", ", ".join(sorted(unknown)))
        return applied

    @staticmethod
    def _upsert(session: Session, table: sa.Table, rows: list[dict[str, Any]], key: str) -> None:
        """``INSERT … ON CONFLICT (key) DO UPDATE`` for many rows in one ``executemany``.

        Values arrive already in SQLite's shapes (``_sqlite``): the statement goes straight to
        the driver, without SQLAlchemy's per-row parameter processing — a page is thousands of
        rows and this is where a pull spends its time.
        """
        columns = list(rows[0])
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns
                            if c not in (key, "created_at"))
        statement = (
            f"INSERT INTO {table.name} ({', '.join(columns)}) "  # noqa: S608 (names are ours)
            f"VALUES ({', '.join('?' for _ in columns)}) "
            f"ON CONFLICT ({key}) DO UPDATE SET {updates}"
        )
        session.connection().exec_driver_sql(
            statement, [tuple(row[c] for c in columns) for row in rows]
        )

    @staticmethod
    def _free(session: Session, sql: str, params: list[tuple[Any, ...]]) -> None:
        if params:
            session.connection().exec_driver_sql(sql, params)

    def _upsert_target(self, session: Session, rows: list[dict[str, Any]]) -> None:
        values = [
            {"id": r["id"], "product_code": r["product_code"], "product_name": r["product_name"],
             "version": str(r["version"]), "description": r.get("description"),
             "created_at": _sqlite(r.get("created_at")), "updated_at": _sqlite(r.get("updated_at")),
             "deleted_at": None}
            for r in rows
        ]
        # A code now held by another row (deleted and re-created on the server): free it.
        self._free(session, "UPDATE inspection_targets_master SET product_code = "
                   "product_code || '~' || substr(id, 1, 8) WHERE product_code = ? AND id != ?",
                   [(v["product_code"], v["id"]) for v in values])
        self._upsert(session, TARGETS, values, "id")

    def _upsert_item(self, session: Session, rows: list[dict[str, Any]]) -> None:
        values = [
            {"id": r["id"], "target_id": r["target_id"], "item_code": r["item_code"],
             "item_name": r["item_name"], "inspection_type": r["inspection_type"],
             "ai_enabled": int(bool(r.get("ai_enabled"))), "pipeline_id": r.get("pipeline_id"),
             "criteria": json.dumps(r.get("criteria") or {}),
             "order_sequence": int(r["order_sequence"]),
             "required": int(bool(r.get("required", True))),
             "created_at": _sqlite(r.get("created_at")), "updated_at": _sqlite(r.get("updated_at")),
             "deleted_at": None}
            for r in rows
        ]
        self._free(session, "UPDATE inspection_items_master SET item_code = "
                   "item_code || '~' || substr(id, 1, 8) "
                   "WHERE target_id = ? AND item_code = ? AND id != ?",
                   [(v["target_id"], v["item_code"], v["id"]) for v in values])
        self._upsert(session, ITEMS, values, "id")

    def _upsert_pipeline(self, session: Session, rows: list[dict[str, Any]]) -> None:
        values = [
            {"id": r["id"], "name": r["name"], "description": r.get("description"),
             "definition": json.dumps(r.get("definition") or {}),
             "version": int(r.get("version") or 1),
             "created_at": _sqlite(r.get("created_at")), "updated_at": _sqlite(r.get("updated_at")),
             "deleted_at": None}
            for r in rows
        ]
        self._upsert(session, PIPELINES, values, "id")

    def _upsert_user(self, session: Session, rows: list[dict[str, Any]]) -> None:
        values = [
            {"server_id": r["id"], "username": r["username"], "email": r.get("email"),
             "password_hash": r["password_hash"], "full_name": r.get("full_name"),
             "role": r.get("role") or "inspector",
             "is_active": int(bool(r.get("is_active", True))),
             "version": int(r.get("version") or 1),
             "created_at": _sqlite(r.get("created_at")), "updated_at": _sqlite(r.get("updated_at"))}
            for r in rows
        ]
        # A local user of the same name (made with `kensa user add` before the first pull)
        # becomes the server's user rather than a clash.
        self._free(session, "UPDATE users SET server_id = ? "
                   "WHERE username = ? AND server_id IS NULL",
                   [(v["server_id"], v["username"]) for v in values])
        # A name or e-mail another (renamed) server user still holds here: free it.
        for column in ("username", "email"):
            self._free(session, f"UPDATE users SET {column} = {column} || '~' || "  # noqa: S608
                       f"substr(server_id, 1, 8) WHERE {column} = ? AND server_id != ?",
                       [(v[column], v["server_id"]) for v in values if v[column]])
        # Lockout columns (failed_attempts, locked_until, last_login_at) stay the device's own.
        self._upsert(session, USERS, values, "server_id")

    def _upsert_model(self, session: Session, rows: list[dict[str, Any]]) -> None:
        values = [
            {"sha256": r["sha256"], "name": r.get("name") or f"{r['sha256']}.onnx",
             "size": int(r["size"]), "file_path": f"models/{r['sha256']}.onnx",
             "created_at": _sqlite(None)}
            for r in rows
        ]
        self._upsert(session, MODELS, values, "sha256")

    def _tombstone(self, session: Session, kind: str, ids: Sequence[str]) -> None:
        now = utcnow()
        ids = list(ids)
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            if kind == "user":
                session.execute(
                    sa.update(USERS).where(USERS.c.server_id.in_(part)).values(is_active=False)
                )
            elif kind == "model":
                session.execute(sa.delete(MODELS).where(MODELS.c.sha256.in_(part)))
                for sha in part:
                    with contextlib.suppress(OSError):
                        model_path(self.data_dir, sha).unlink()
            else:
                table = {"target": TARGETS, "item": ITEMS, "pipeline": PIPELINES}[kind]
                session.execute(
                    sa.update(table)
                    .where(table.c.id.in_(part), table.c.deleted_at.is_(None))
                    .values(deleted_at=now)
                )

    def _sweep(self, session: Session, live: dict[str, list[str]]) -> None:
        """After a full resync: what the server no longer has is gone here too."""
        tables = {"target": (TARGETS, "id"), "item": (ITEMS, "id"),
                  "pipeline": (PIPELINES, "id"), "user": (USERS, "server_id"),
                  "model": (MODELS, "sha256")}
        for kind, (table, key) in tables.items():
            if kind not in live:
                continue
            keep = set(live[kind])
            held = {
                row[0]
                for row in session.execute(sa.select(table.c[key]).where(table.c[key].is_not(None)))
            }
            gone = sorted(held - keep)
            if gone:
                log.info("full resync: %d %s(s) no longer on the server", len(gone), kind)
                self._tombstone(session, kind, gone)

    # --- model bodies ------------------------------------------------------------------------

    def _fetch_models(self, client: SyncClient, changes: Sequence[Change]) -> None:
        for change in changes:
            if change.entity_type != "model" or change.op != "UPSERT" or not change.data:
                continue
            sha = str(change.data["sha256"])
            size = int(change.data.get("size") or 0)
            path = model_path(self.data_dir, sha)
            if path.is_file() and path.stat().st_size == size:
                continue
            log.info("downloading model %s (%d bytes)", sha, size)
            client.download(sha, path)
