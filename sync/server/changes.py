"""The server's change sequence and the pull side of the protocol.

Every change to a master (target, item, pipeline, user, model) writes one ``change_log`` row in
the same transaction. The log is *compacted*: an entity keeps only its latest row, so a device that
was away for a month downloads each changed master once, and the log's size follows the number of
masters rather than the number of edits.

Ordering is the server's alone. ``seq`` comes from a sequence, and writers of the log serialise
on a transaction-scoped advisory lock (PostgreSQL; SQLite serialises writers anyway) so that
sequence order is commit order: otherwise a reader could see seq 11 committed while seq 10 is
still in flight, move its cursor past 10, and never receive it.

Cursors are opaque to devices: ``<epoch>:<seq>`` with ``:f`` appended during a full resync. The
epoch is made once per server database, so a device pointed at another server (or at a restored
database) resyncs instead of trusting a meaningless number. Pruned tombstones raise the
*horizon*; a cursor below it can no longer be served (410) and the device resyncs.

One function builds a page on either database (``page_json``). Only where an entity's JSON comes
from differs: PostgreSQL serialises a page's entities in the one query that reads it
(``postgres_entries``), elsewhere ``serialize`` does (``python_entries``); a property test over
random change logs holds the two to the same entries.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from schema import server as s
from schema.types import utcnow
from sync.errors import CursorExpired, InvalidRequest
from sync.protocol import Change

EPOCH_KEY = "sync.change_log_epoch"
HORIZON_KEY = "sync.change_log_horizon"
ADVISORY_LOCK_ID = 0x6B656E7361  # "kensa"

ENTITY_TABLES: dict[str, type[Any]] = {
    "target": s.InspectionTargetMaster,
    "item": s.InspectionItemMaster,
    "pipeline": s.Pipeline,
    "user": s.User,
}


def _config(session: Session, key: str) -> str | None:
    row = session.get(s.ServerConfig, key)
    return row.value if row else None


def _set_config(session: Session, key: str, value: str) -> None:
    row = session.get(s.ServerConfig, key)
    if row is None:
        session.add(s.ServerConfig(key=key, value=value))
    else:
        row.value = value
        row.updated_at = utcnow()
        session.add(row)


def epoch(session: Session) -> str:
    value = _config(session, EPOCH_KEY)
    if value is None:
        _lock(session)
        value = _config(session, EPOCH_KEY)
        if value is None:
            value = secrets.token_hex(6)
            _set_config(session, EPOCH_KEY, value)
            session.flush()
    return value


def horizon(session: Session) -> int:
    return int(_config(session, HORIZON_KEY) or 0)


def _lock(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADVISORY_LOCK_ID})


def record_change(session: Session, entity_type: str, entity_id: str, operation: str) -> int:
    """Log that an entity changed ('UPSERT') or went ('DELETE'); returns its new seq."""
    _lock(session)
    session.execute(
        sa.delete(s.ChangeLog).where(
            col(s.ChangeLog.entity_type) == entity_type, col(s.ChangeLog.entity_id) == entity_id
        )
    )
    row = s.ChangeLog(entity_type=entity_type, entity_id=entity_id, operation=operation)
    session.add(row)
    session.flush()
    assert row.seq is not None
    return row.seq


def prune_tombstones(session: Session, older_than: timedelta, now: datetime | None = None) -> int:
    """Drop DELETE rows older than the retention; devices behind them will resync."""
    cutoff = (now or utcnow()) - older_than
    _lock(session)
    doomed = session.exec(
        select(s.ChangeLog.seq).where(
            s.ChangeLog.operation == "DELETE", col(s.ChangeLog.changed_at) < cutoff
        )
    ).all()
    if not doomed:
        return 0
    top = max(seq for seq in doomed if seq is not None)
    session.execute(sa.delete(s.ChangeLog).where(col(s.ChangeLog.seq).in_(doomed)))
    _set_config(session, HORIZON_KEY, str(max(top, horizon(session))))
    return len(doomed)


@dataclass(frozen=True)
class Cursor:
    epoch: str
    seq: int
    full: bool = False

    def encode(self) -> str:
        return f"{self.epoch}:{self.seq}" + (":f" if self.full else "")


def parse_cursor(text: str | None, current_epoch: str) -> Cursor:
    if not text:
        return Cursor(current_epoch, 0, full=True)
    parts = text.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "f"):
        raise InvalidRequest(f"malformed cursor {text!r}")
    try:
        seq = int(parts[1])
    except ValueError as exc:
        raise InvalidRequest(f"malformed cursor {text!r}") from exc
    if seq < 0:
        raise InvalidRequest(f"malformed cursor {text!r}")
    if parts[0] != current_epoch:
        raise CursorExpired("the cursor belongs to another server database: resync")
    return Cursor(parts[0], seq, full=len(parts) == 3)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def serialize(entity_type: str, row: Any) -> dict[str, Any]:
    if entity_type == "target":
        return {
            "id": str(row.id),
            "product_code": row.product_code,
            "product_name": row.product_name,
            "product_name_en": row.product_name_en,
            "version": row.version,
            "description": row.description,
            "created_at": _iso(row.created_at),
            "updated_at": _iso(row.updated_at),
        }
    if entity_type == "item":
        return {
            "id": str(row.id),
            "target_id": str(row.target_id),
            "item_code": row.item_code,
            "item_name": row.item_name,
            "item_name_en": row.item_name_en,
            "inspection_type": row.inspection_type,
            "ai_enabled": row.ai_enabled,
            "pipeline_id": str(row.pipeline_id) if row.pipeline_id else None,
            "criteria": row.criteria,
            "order_sequence": row.order_sequence,
            "required": row.required,
            "auto_analyse": row.auto_analyse,
            "defect_types": row.defect_types,
            "created_at": _iso(row.created_at),
            "updated_at": _iso(row.updated_at),
        }
    if entity_type == "pipeline":
        return {
            "id": str(row.id),
            "name": row.name,
            "description": row.description,
            "definition": row.definition,
            "version": row.version,
            "created_at": _iso(row.created_at),
            "updated_at": _iso(row.updated_at),
        }
    if entity_type == "user":
        return {
            "id": str(row.id),
            "username": row.username,
            "email": row.email,
            "password_hash": row.password_hash,
            "full_name": row.full_name,
            "role": row.role,
            "is_active": row.is_active,
            "version": row.version,
            "created_at": _iso(row.created_at),
            "updated_at": _iso(row.updated_at),
        }
    if entity_type == "model":
        return {
            "sha256": row.checksum,
            "name": row.original_name or f"{row.checksum}.onnx",
            "size": row.file_size,
        }
    raise ValueError(f"unknown master entity type {entity_type!r}")


def _load(session: Session, entity_type: str, ids: Iterable[str]) -> dict[str, Any]:
    ids = list(ids)
    if not ids:
        return {}
    if entity_type == "model":
        rows = session.exec(
            select(s.File).where(col(s.File.checksum).in_(ids), s.File.kind == "model")
        ).all()
        return {row.checksum: row for row in rows if row.checksum}
    # Plain rows rather than ORM objects: a page of thousands is read and dropped at once.
    table: sa.Table = ENTITY_TABLES[entity_type].__table__
    keys = [uuid.UUID(i) for i in ids]
    found = session.execute(sa.select(table).where(table.c.id.in_(keys))).all()
    return {str(row.id): row for row in found}


def _is_live(entity_type: str, row: Any) -> bool:
    if row is None:
        return False
    if entity_type == "model":
        return bool((row.metadata_ or {}).get("deleted_at") is None)
    return row.deleted_at is None


@dataclass(frozen=True)
class Entry:
    """One change of a page with its entity's current state: ``data`` is JSON text, None for a
    tombstone; ``parents`` are the (type, id) an item refers to."""

    seq: int
    entity_type: str
    entity_id: str
    data: str | None
    parents: tuple[tuple[str, str], ...] = ()


def _parents(entity_type: str, data: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    if entity_type != "item":
        return ()
    return tuple(
        (kind, str(data[key]))
        for kind, key in (("target", "target_id"), ("pipeline", "pipeline_id"))
        if data.get(key)
    )


def python_entries(session: Session, after: int, limit: int) -> list[Entry]:
    """The changes after ``after``, each entity loaded and serialised here (any database)."""
    logged = session.exec(
        select(s.ChangeLog)
        .where(col(s.ChangeLog.seq) > after)
        .order_by(col(s.ChangeLog.seq))
        .limit(limit)
    ).all()
    by_type: dict[str, list[str]] = defaultdict(list)
    for change in logged:
        by_type[change.entity_type].append(change.entity_id)
    rows = {kind: _load(session, kind, ids) for kind, ids in by_type.items()}
    entries = []
    for change in logged:
        assert change.seq is not None
        row = rows[change.entity_type].get(change.entity_id)
        if not _is_live(change.entity_type, row):
            entries.append(Entry(change.seq, change.entity_type, change.entity_id, None))
            continue
        data = serialize(change.entity_type, row)
        entries.append(
            Entry(change.seq, change.entity_type, change.entity_id,
                  json.dumps(data, ensure_ascii=False), _parents(change.entity_type, data))
        )
    return entries


def postgres_entries(session: Session, after: int, limit: int) -> list[Entry]:
    """The same entries in one query, serialised by PostgreSQL itself (``json_build_object``),
    which is where a large pull spends its time."""
    entries = []
    for seq, entity_type, entity_id, data, refs in session.execute(
        _PG_PAGE, {"after": after, "limit": limit}
    ).all():
        parents: tuple[tuple[str, str], ...] = ()
        if refs:
            target, _, pipeline = refs.partition(",")
            parents = (("target", target),) + ((("pipeline", pipeline),) if pipeline else ())
        entries.append(Entry(seq, entity_type, entity_id, data, parents))
    return entries


def page_json(session: Session, cursor_text: str | None, limit: int) -> str:
    """A page after a cursor, as the JSON the API answers with.

    One builder for both databases; only where the entities' JSON comes from differs
    (``postgres_entries`` on PostgreSQL, ``python_entries`` elsewhere), and a property test
    holds the two to the same entries."""
    current_epoch = epoch(session)
    cursor = parse_cursor(cursor_text, current_epoch)
    if cursor.seq < horizon(session) and not (cursor.full and cursor.seq == 0):
        raise CursorExpired(
            f"cursor {cursor.seq} predates pruned changes (horizon {horizon(session)}): resync"
        )
    postgres = session.get_bind().dialect.name == "postgresql"
    entries = (postgres_entries if postgres else python_entries)(session, cursor.seq, limit + 1)
    has_more = len(entries) > limit
    entries = entries[:limit]
    parts: list[str] = []
    parents: dict[str, set[str]] = defaultdict(set)
    present = {(e.entity_type, e.entity_id) for e in entries}
    last_seq = cursor.seq
    for entry in entries:
        last_seq = entry.seq
        # A full resync stays one until its last page: a device that stops mid-page and resumes
        # from here must still receive the live ids at the end.
        position = Cursor(current_epoch, entry.seq, cursor.full).encode()
        head = (f'{{"cursor":{json.dumps(position)},'
                f'"entity_type":{json.dumps(entry.entity_type)},'
                f'"entity_id":{json.dumps(entry.entity_id)},')
        if entry.data is None:
            parts.append(head + '"op":"DELETE","data":null}')
        else:
            parts.append(f'{head}"op":"UPSERT","data":{entry.data}}}')
        for kind, ref in entry.parents:
            if (kind, ref) not in present:
                parents[kind].add(ref)
    extra = _later_parents(session, parents, last_seq, cursor.encode())
    next_cursor = Cursor(current_epoch, last_seq, cursor.full and has_more).encode()
    live = live_ids(session) if cursor.full and not has_more else None
    # Parents first: the device applies a page in order.
    changes = ",".join([*(c.model_dump_json() for c in extra), *parts])
    return (f'{{"changes":[{changes}],"cursor":{json.dumps(next_cursor)},'
            f'"has_more":{"true" if has_more else "false"},"live":{json.dumps(live)}}}')


def _later_parents(
    session: Session, wanted: dict[str, set[str]], page_end: int, page_start: str
) -> list[Change]:
    """Items refer to their target and pipeline; if a parent's own change comes in a later page,
    send its current state now too, so every page satisfies the device's foreign keys."""
    extra: list[Change] = []
    for kind, ids in wanted.items():
        later = session.exec(
            select(s.ChangeLog.entity_id).where(
                s.ChangeLog.entity_type == kind,
                col(s.ChangeLog.entity_id).in_(ids),
                col(s.ChangeLog.seq) > page_end,
            )
        ).all()
        for entity_id, row in _load(session, kind, later).items():
            # The page's starting cursor: a device that stops before the first real change of
            # the page must not move past it.
            extra.append(Change(cursor=page_start, entity_type=kind, entity_id=entity_id,
                                op="UPSERT", data=serialize(kind, row)))
    return extra


# Constant SQL only (no input is ever interpolated): the per-type subqueries of _PG_PAGE.
_PG_DATA = {
    "target": (
        "SELECT json_build_object('id', t.id, 'product_code', t.product_code, "
        "'product_name', t.product_name, 'product_name_en', t.product_name_en, "
        "'version', t.version, 'description', t.description, "
        "'created_at', t.created_at, 'updated_at', t.updated_at) "
        "FROM inspection_targets_master t WHERE t.id = cl.entity_id::uuid AND t.deleted_at IS NULL"
    ),
    "item": (
        "SELECT json_build_object('id', i.id, 'target_id', i.target_id, 'item_code', "
        "i.item_code, 'item_name', i.item_name, 'item_name_en', i.item_name_en, "
        "'inspection_type', i.inspection_type, "
        "'ai_enabled', i.ai_enabled, 'pipeline_id', i.pipeline_id, 'criteria', i.criteria, "
        "'order_sequence', i.order_sequence, 'required', i.required, "
        "'auto_analyse', i.auto_analyse, 'defect_types', i.defect_types, "
        "'created_at', i.created_at, 'updated_at', i.updated_at) "
        "FROM inspection_items_master i WHERE i.id = cl.entity_id::uuid AND i.deleted_at IS NULL"
    ),
    "pipeline": (
        "SELECT json_build_object('id', p.id, 'name', p.name, 'description', p.description, "
        "'definition', p.definition, 'version', p.version, 'created_at', p.created_at, "
        "'updated_at', p.updated_at) "
        "FROM pipelines p WHERE p.id = cl.entity_id::uuid AND p.deleted_at IS NULL"
    ),
    "user": (
        "SELECT json_build_object('id', u.id, 'username', u.username, 'email', u.email, "
        "'password_hash', u.password_hash, 'full_name', u.full_name, 'role', u.role, "
        "'is_active', u.is_active, 'version', u.version, 'created_at', u.created_at, "
        "'updated_at', u.updated_at) "
        "FROM users u WHERE u.id = cl.entity_id::uuid AND u.deleted_at IS NULL"
    ),
    "model": (
        "SELECT json_build_object('sha256', f.checksum, 'name', "
        "coalesce(nullif(f.original_name, ''), f.checksum || '.onnx'), 'size', f.file_size) "
        "FROM files f WHERE f.checksum = cl.entity_id AND f.kind = 'model' "
        "AND (f.metadata IS NULL OR f.metadata ->> 'deleted_at' IS NULL)"
    ),
}
# One query per page: each change with its entity's current state as JSON text (NULL when the
# entity is gone: a tombstone), and for items the parents they refer to.
_PG_CASES = " ".join(f"WHEN '{kind}' THEN ({sql})" for kind, sql in _PG_DATA.items())
_PG_PAGE = sa.text(
    f"SELECT cl.seq, cl.entity_type, cl.entity_id, CASE cl.entity_type {_PG_CASES} "  # noqa: S608
    "END::text AS data, CASE WHEN cl.entity_type = 'item' THEN (SELECT i.target_id::text "
    "|| ',' || coalesce(i.pipeline_id::text, '') FROM inspection_items_master i "
    "WHERE i.id = cl.entity_id::uuid AND i.deleted_at IS NULL) END AS refs "
    "FROM change_log cl WHERE cl.seq > :after ORDER BY cl.seq LIMIT :limit"
)


def live_ids(session: Session) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for kind, table in ENTITY_TABLES.items():
        ids = session.exec(select(table.id).where(col(table.deleted_at).is_(None))).all()
        out[kind] = [str(i) for i in ids]
    models = session.exec(select(s.File).where(s.File.kind == "model")).all()
    out["model"] = [m.checksum for m in models if m.checksum and _is_live("model", m)]
    return out


def touch_all(session: Session, kinds: Sequence[str] = tuple(ENTITY_TABLES)) -> int:
    """Log an UPSERT for every live master (after a bulk import done outside ``masters``)."""
    count = 0
    for kind in kinds:
        table = ENTITY_TABLES[kind]
        for entity_id in session.exec(select(table.id).where(col(table.deleted_at).is_(None))):
            record_change(session, kind, str(entity_id), "UPSERT")
            count += 1
    return count
