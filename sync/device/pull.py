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
import re
import time
import uuid
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
from sync.device import acks, state
from sync.device.client import SyncClient
from sync.device.outbox_store import SqliteOutbox
from sync.device.refused import fetch_refused, refused_cursor
from sync.errors import CursorExpired
from sync.protocol import MASTER_ENTITY_TYPES, Change, ChangesPage, is_sha256

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


class UnsafeId(ValueError):
    """A pulled id that does not have its type's shape; it never becomes a path or a row."""


_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
                      r"[0-9a-fA-F]{12}$")


def model_path(data_dir: Path, sha256: str) -> Path:
    """``<data_dir>/models/<sha256>.onnx``, only for a lowercase hex SHA-256: a pulled id is the
    server's word, and a tombstone named ``../../x`` must not delete a file elsewhere."""
    if not is_sha256(sha256):
        raise UnsafeId(f"not a SHA-256: {sha256[:80]!r}")
    folder = (data_dir / "models").resolve()
    path = (folder / f"{sha256}.onnx").resolve()
    if path.parent != folder:
        raise UnsafeId(f"model path escapes {folder}: {sha256[:80]!r}")
    return path


def id_problem(change: Change) -> str | None:
    """Why a pulled change's id cannot be used (``None`` when it can): models are named by
    their SHA-256, every other master by a UUID."""
    if change.entity_type == "model":
        if not is_sha256(change.entity_id):
            return "a model id must be a lowercase hex SHA-256"
        if change.op == "UPSERT" and (change.data or {}).get("sha256") != change.entity_id:
            return "a model's sha256 differs from its id"
        return None
    if change.entity_type not in MASTER_ENTITY_TYPES:
        return f"unknown entity type {change.entity_type[:40]!r}"
    if not _UUID_RE.fullmatch(change.entity_id):
        return f"a {change.entity_type} id must be a UUID"
    if change.op == "UPSERT":
        named = str((change.data or {}).get("id", ""))
        if not _UUID_RE.fullmatch(named) or uuid.UUID(named) != uuid.UUID(change.entity_id):
            return f"the {change.entity_type}'s data names another id"
    return None


class Puller:
    def __init__(self, db: Database, data_dir: Path, *, page_size: int = 1000) -> None:
        self.db = db
        self.data_dir = data_dir
        self.page_size = page_size
        self.outbox = SqliteOutbox(db)
        # The registration pulled users come through (this device's id on the server).
        self.origin: str | None = None

    def pull(self, client: SyncClient, budget_s: float = 30.0) -> PullResult:
        identity = client.identity or client.authenticate()
        # Users are trusted per registration: see _upsert_user.
        self.origin = identity.device_id
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kensa-pull") as prefetch:
            return self._pull(client, budget_s, prefetch)

    def _pull(
        self, client: SyncClient, budget_s: float, prefetch: ThreadPoolExecutor
    ) -> PullResult:
        result = PullResult()
        with self.db.read() as session:
            cursor = state.get(session, "pull").cursor
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
            if page.acks is not None and page.acks.refused_through > refused_cursor(self.db):
                # The watermark passes the refused operations too: know which they are first,
                # or their inspections would read as applied until the next run.
                fetch_refused(self.db, client)
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
            if page.acks is not None:
                acks.store(session, page.acks)
        return applied, new_cursor, deferred

    def _apply(self, session: Session, changes: Sequence[Change]) -> int:
        groups: dict[tuple[str, str], list[Change]] = defaultdict(list)
        for change in changes:
            problem = id_problem(change)
            if problem is not None:
                # The server's word is not enough to make a path or a key of it: skip it.
                log.warning("ignoring a pulled %s change: %s", change.entity_type[:40], problem)
                continue
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
             # A server from before English names sends none: the name serves both languages.
             "product_name_en": r.get("product_name_en"), "version": str(r["version"]),
             "description": r.get("description"),
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
             "item_name": r["item_name"], "item_name_en": r.get("item_name_en"),
             "inspection_type": r["inspection_type"],
             "ai_enabled": int(bool(r.get("ai_enabled"))), "pipeline_id": r.get("pipeline_id"),
             "criteria": json.dumps(r.get("criteria") or {}),
             "order_sequence": int(r["order_sequence"]),
             "required": int(bool(r.get("required", True))),
             # A server from before these fields sends neither: analyse on attach, every type.
             "auto_analyse": int(bool(r.get("auto_analyse", True))),
             "defect_types": (None if r.get("defect_types") is None
                              else json.dumps(r["defect_types"])),
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
        """Users, with their password hashes and roles, only through the registration they came
        from: a tablet moved to another server keeps the logins it had (their hashes and roles
        are not that server's to change), and takes only users whose names are free here."""
        origin = self.origin
        values = [
            {"server_id": r["id"], "username": r["username"], "email": r.get("email"),
             "password_hash": r["password_hash"], "full_name": r.get("full_name"),
             "role": r.get("role") or "inspector",
             "is_active": int(bool(r.get("is_active", True))),
             "version": int(r.get("version") or 1), "origin": origin,
             "created_at": _sqlite(r.get("created_at")), "updated_at": _sqlite(r.get("updated_at"))}
            for r in rows
        ]
        held = self._held_users(session, values)
        # Another registration's users may own the ids, names and e-mails here.
        foreign = {key for key, holder in held.items()
                   if holder is not None and holder != origin}
        # A local user (`kensa user add`) becomes the server's user of the same name only on
        # the first server this tablet takes users from.
        adopt = origin is not None and not self._has_other_origin(session, origin)
        accepted = []
        for v in values:
            keys = {("server_id", v["server_id"]), ("username", v["username"])}
            if v["email"]:
                keys.add(("email", v["email"]))
            clash = keys & foreign
            if clash:
                # The server's id, not the name: the log file is outside the encrypted store.
                log.warning("pulled user %s is not applied: %s belongs to a user from another "
                            "server registration", str(v["server_id"])[:150],
                            ", ".join(sorted(k for k, _ in clash)))
                continue
            if not adopt and ("username", v["username"]) in held \
                    and held[("username", v["username"])] is None:
                log.warning("pulled user %s is not applied: a local user has that name",
                            str(v["server_id"])[:150])
                continue
            accepted.append(v)
        if not accepted:
            return
        if adopt:
            self._free(session, "UPDATE users SET server_id = ?, origin = ? "
                       "WHERE username = ? AND server_id IS NULL",
                       [(v["server_id"], origin, v["username"]) for v in accepted])
        # A name or e-mail another (renamed) user of this registration still holds: free it.
        for column in ("username", "email"):
            self._free(session, f"UPDATE users SET {column} = {column} || '~' || "  # noqa: S608
                       f"substr(server_id, 1, 8) WHERE {column} = ? AND server_id != ? "
                       "AND origin = ?",
                       [(v[column], v["server_id"], origin) for v in accepted if v[column]])
        # Lockout columns (failed_attempts, locked_until, last_login_at) stay the device's own.
        self._upsert(session, USERS, accepted, "server_id")

    @staticmethod
    def _held_users(session: Session, values: list[dict[str, Any]]) -> dict[
        tuple[str, str], str | None
    ]:
        """Who holds each incoming id, name and e-mail here: (column, value) -> origin (None for
        a local user)."""
        held: dict[tuple[str, str], str | None] = {}
        for column in ("server_id", "username", "email"):
            wanted = sorted({str(v[column]) for v in values if v[column]})
            for start in range(0, len(wanted), 500):
                part = wanted[start : start + 500]
                for value, origin in session.execute(
                    sa.select(USERS.c[column], USERS.c.origin).where(USERS.c[column].in_(part))
                ):
                    held[(column, str(value))] = origin
        return held

    @staticmethod
    def _has_other_origin(session: Session, origin: str) -> bool:
        return session.execute(
            sa.select(USERS.c.id).where(USERS.c.origin.is_not(None), USERS.c.origin != origin)
            .limit(1)
        ).first() is not None

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
                # Only this registration may retire the users it gave.
                session.execute(
                    sa.update(USERS)
                    .where(USERS.c.server_id.in_(part), USERS.c.origin == self.origin)
                    .values(is_active=False)
                )
            elif kind == "model":
                part = [sha for sha in part if is_sha256(sha)]
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
            mine: sa.ColumnElement[bool] = table.c[key].is_not(None)
            if kind == "user":
                mine = sa.and_(mine, USERS.c.origin == self.origin)
            held = {row[0] for row in session.execute(sa.select(table.c[key]).where(mine))}
            gone = sorted(held - keep)
            if gone:
                log.info("full resync: %d %s(s) no longer on the server", len(gone), kind)
                self._tombstone(session, kind, gone)

    # --- model bodies ------------------------------------------------------------------------

    def _fetch_models(self, client: SyncClient, changes: Sequence[Change]) -> None:
        for change in changes:
            if change.entity_type != "model" or change.op != "UPSERT" or not change.data:
                continue
            if id_problem(change) is not None:
                continue  # _apply says why
            sha = change.entity_id
            size = int(change.data.get("size") or 0)
            path = model_path(self.data_dir, sha)
            if path.is_file() and path.stat().st_size == size:
                continue
            log.info("downloading model %s (%d bytes)", sha, size)
            client.download(sha, path)
