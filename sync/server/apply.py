"""Applying one queue row to the server's tables.

Each device entity type has a spec: its table, the payload keys that become columns, and the
references that must already be applied (a session needs its target, a result its image…). A
missing device-made parent means an earlier operation has not been applied yet (priorities,
several processors): the row is retried later (``ApplyLater``, with the backoff of
``sync.server.queue_policy``), unless that parent's own row was refused, in which case it will
never come (``ApplyNever``). A reference to a master the server does not know is stored as NULL
rather than failing for ever; the codes that identify it stay on the record. A value that cannot
be converted (not a UUID, not a number, not a timestamp) can never apply (``ApplyNever``).

Every device record has an owner: targets and sessions hold the device that created them, the
records under a session belong to the session's device. A row from another device — an UPDATE or
DELETE of the record, a child under its session, a session under its target, an INSERT reusing
its id — is refused with ``NotOwner`` before anything is written.

The version and ownership rules are ``sync.conflicts``; this module only gathers their inputs.

Who did it: every record keeps ``created_by`` (its INSERT) and ``updated_by`` (its latest
operation): the server's user the operation names — ``actor_server_id`` / ``actor_username`` when
the tablet sends them, else the record's own user (``user_server_id`` / ``username``), mapped to
this server's users by id, then by name (``MasterCache.user_id``); NULL when it names nobody the
server knows. The audit entry of the change, which follows its operation, then sets them to the
user that entry names (``sync.server.audit.attribute``): the tablet's chain says who acted, for
records whose operations name no user too (items, images). Nothing is inferred from a parent
record: a result of the job runner, whose entry names nobody, names nobody.

Results are never edited in place (``VERSIONED_RESULTS``): an UPDATE of an AI result or a human
verification is applied as a new row that ``supersedes`` the newest version (the versions of a
result are one line; its id is derived from the result's id and the new version), and a DELETE of
one is refused. The record a tablet made keeps its id and its first version; the current one is
the row no other row supersedes. The correction's own audit entry comes with it, from the
tablet's chain (``sync.server.audit``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import sqlalchemy as sa
from sqlmodel import Session

from schema import server as s
from schema.formats import signatures, workflow
from schema.formats.audit import row_digest
from sync.conflicts import (
    Decision,
    decide_delete,
    decide_insert,
    decide_owner,
    decide_update,
)
from sync.errors import ApplyError, ApplyLater, ApplyNever, NotOwner
from sync.protocol import is_sha256
from sync.server import provenance, statements
from sync.server.audit import ENTRY_TYPE, EntryBatch, apply_entry, device_row, fold

__all__ = ["ApplyError", "ApplyLater", "ApplyNever", "MasterCache", "NotOwner", "Outcome",
           "apply_row"]

@dataclass(frozen=True)
class Outcome:
    decision: Decision
    note: str | None = None


def _table(model: type[Any]) -> sa.Table:
    table: sa.Table = model.__table__
    return table


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _uuid(value: Any) -> uuid.UUID | None:
    if value is None or value == "":
        return None
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise ApplyNever(f"{_short(value)} is not a UUID") from exc


def _time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        stamp = value
    else:
        try:
            stamp = datetime.fromisoformat(str(value))
        except ValueError as exc:
            raise ApplyNever(f"{_short(value)} is not an ISO 8601 timestamp") from exc
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def _json_object(value: Any) -> Any:
    """The device keeps ``detailed_results`` as JSON text; the server as a JSON document."""
    if value is None or isinstance(value, dict | list):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return {"text": value}
        return parsed if isinstance(parsed, dict | list) else {"value": parsed}
    return {"value": value}


def _same(value: Any) -> Any:
    return value


def _json_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    raise ApplyNever(f"{_short(value)} is not a list")


def _state(what: str, states: tuple[str, ...]) -> Callable[[Any], str]:
    """A status the move table knows (push refuses others; a row queued before it did never
    applies)."""

    def convert(value: Any) -> str:
        if isinstance(value, str) and value in states:
            return value
        raise ApplyNever(f"{_short(value)} is not an inspection {what} state")

    return convert


def _one_of(what: str, values: tuple[str, ...]) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if isinstance(value, str) and value in values:
            return value
        raise ApplyNever(f"{_short(value)} is not a signature {what}")

    return convert


def _sha256(value: Any) -> str:
    if isinstance(value, str) and is_sha256(value):
        return value
    raise ApplyNever(f"{_short(value)} is not a SHA-256 in lower-case hex")


@dataclass(frozen=True)
class Ref:
    column: str
    model: type[Any]
    # A device-made parent must be applied first (retry); a master may be unknown (NULL).
    device_made: bool


@dataclass(frozen=True)
class Spec:
    model: type[Any]
    columns: Mapping[str, Callable[[Any], Any]]
    refs: tuple[Ref, ...] = ()
    versioned: bool = False
    user_ref: bool = False
    extras: tuple[str, ...] = field(default=())

    @property
    def table(self) -> sa.Table:
        return _table(self.model)


SPECS: dict[str, Spec] = {
    "inspection_target": Spec(
        s.InspectionTarget,
        {"product_id": str, "batch_id": str, "qr_code": str, "serial": _same,
         "master_id": _uuid, "master_version": _same, "created_at": _time},
        refs=(Ref("master_id", s.InspectionTargetMaster, device_made=False),),
    ),
    "inspection_session": Spec(
        s.InspectionSession,
        {"target_id": _uuid, "status": _state("session", workflow.SESSION_STATES),
         "result": _same, "product_code": _same,
         "started_at": _time, "completed_at": _time, "version": int},
        refs=(Ref("target_id", s.InspectionTarget, device_made=True),),
        versioned=True,
        user_ref=True,
    ),
    "inspection_session_item": Spec(
        s.InspectionSessionItem,
        {"session_id": _uuid, "item_id": _uuid, "item_code": str, "order_sequence": int,
         "required": bool, "status": _state("item", workflow.ITEM_STATES), "result": _same,
         "attempts": int, "version": int},
        refs=(
            Ref("session_id", s.InspectionSession, device_made=True),
            Ref("item_id", s.InspectionItemMaster, device_made=False),
        ),
        versioned=True,
    ),
    "inspection_image": Spec(
        s.InspectionImage,
        {"session_id": _uuid, "item_id": _uuid, "sha256": str, "image_type": _same,
         "file_size": _same, "mime_type": _same, "width": _same, "height": _same,
         "created_at": _time},
        refs=(
            Ref("session_id", s.InspectionSession, device_made=True),
            Ref("item_id", s.InspectionItemMaster, device_made=False),
        ),
    ),
    "ai_inspection_result": Spec(
        s.AIInspectionResult,
        {"session_id": _uuid, "item_id": _uuid, "image_id": _uuid, "pipeline_id": _uuid,
         "pipeline_version": lambda v: None if v is None else str(v),
         "model_sha256": _same, "overall_result": str, "confidence": float,
         "processing_time": float, "detailed_results": _json_object,
         "measurements": _json_object, "timings": _json_object, "created_at": _time,
         "model_hashes": _json_list, "image_sha256": str, "engine_version": str,
         "execution_provider": str, "step_timings": _json_list},
        refs=(
            Ref("session_id", s.InspectionSession, device_made=True),
            Ref("image_id", s.InspectionImage, device_made=True),
            Ref("item_id", s.InspectionItemMaster, device_made=False),
            Ref("pipeline_id", s.Pipeline, device_made=False),
        ),
    ),
    "human_verification_result": Spec(
        s.HumanVerificationResult,
        {"session_id": _uuid, "item_id": _uuid, "ai_result_id": _uuid, "final_result": str,
         "notes": _same, "defect_types": _same, "severity": _same, "overrode_ai": bool,
         "verification_time": float, "created_at": _time},
        refs=(
            Ref("session_id", s.InspectionSession, device_made=True),
            Ref("ai_result_id", s.AIInspectionResult, device_made=True),
            Ref("item_id", s.InspectionItemMaster, device_made=False),
        ),
        user_ref=True,
    ),
    # Kept as the tablet made it; the record it signs is named, not resolved (a session or a
    # verification, possibly not applied yet): the digest is the tablet's evidence, not ours.
    "signature": Spec(
        s.Signature,
        {"session_id": _uuid, "full_name": _same, "role": str,
         "meaning": _one_of("meaning", signatures.MEANINGS),
         "record_type": _one_of("record type", signatures.SIGNED_RECORDS),
         "record_id": _uuid, "record_digest": _sha256, "signed_at": _time},
        refs=(Ref("session_id", s.InspectionSession, device_made=True),),
        user_ref=True,
    ),
}

QUEUE = _table(s.TauriSyncQueue)
SESSIONS = _table(s.InspectionSession)
ENTITY_OF_TABLE = {spec.table.name: name for name, spec in SPECS.items()}


def owner_of(session: Session, model: type[Any], key: uuid.UUID) -> uuid.UUID | None:
    """The device that owns a device-made record; None when the record is not on the server."""
    table = _table(model)
    if "device_id" in table.c:
        statement = sa.select(table.c.device_id).where(table.c.id == key)
    else:
        # Everything else hangs under a session (session_id is NOT NULL and a foreign key).
        statement = (
            sa.select(SESSIONS.c.device_id)
            .select_from(table.join(SESSIONS, table.c.session_id == SESSIONS.c.id))
            .where(table.c.id == key)
        )
    found = session.execute(statement).first()
    return None if found is None else _uuid(found[0])


class MasterCache:
    """Known ids. Masters: for the processor's life (they change rarely and are never
    hard-deleted). Device records and their owners, users by name, devices' audit chains: for
    one claimed batch only (``new_batch``, one transaction), where a session and the results
    under it usually arrive together, by the same user, each change with its audit entry."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, uuid.UUID], bool] = {}
        self._batch: dict[tuple[str, uuid.UUID], uuid.UUID] = {}
        self._users: dict[tuple[Any, Any], uuid.UUID | None] = {}
        # (table, result id) -> its current version's id, for results applied in the batch
        self._current: dict[tuple[str, uuid.UUID], uuid.UUID] = {}
        self._models: dict[tuple[str, ...], dict[str, Any]] = {}
        # (table, id) -> version, of versioned records this batch wrote
        self._versions: dict[tuple[str, uuid.UUID], int] = {}
        self.entries = EntryBatch(self.owner, self.current)

    def new_batch(self) -> None:
        self.rolled_back()
        self.entries = EntryBatch(self.owner, self.current)

    def rolled_back(self) -> None:
        """A row's savepoint was rolled back: keep nothing it may have read or written."""
        self._batch.clear()
        self._users.clear()
        self._current.clear()
        self._models.clear()
        self._versions.clear()
        self.entries.forget()

    def wrote_version(self, table: sa.Table, key: uuid.UUID, version: int) -> None:
        self._versions[(table.name, key)] = version

    def version(self, session: Session, spec: Spec, key: uuid.UUID) -> tuple[bool, int | None]:
        """Whether the record is on the server and its version (None when not versioned)."""
        found = self._versions.get((spec.table.name, key)) if spec.versioned else None
        if found is not None:
            return (True, found)
        return _current_version(session, spec, key)

    def saw_version(self, table: sa.Table, key: uuid.UUID, current: uuid.UUID) -> None:
        self._current[(table.name, key)] = current

    def current(self, session: Session, table: sa.Table, key: uuid.UUID) -> uuid.UUID:
        found = self._current.get((table.name, key))
        if found is None:
            found = self._current[(table.name, key)] = result_versions(session, table,
                                                                       key)[-1]["id"]
        return found

    def model_check(self, session: Session, values: Mapping[str, Any]) -> dict[str, Any]:
        """``provenance.model_check``, once per set of model hashes in a batch."""
        hashes = values.get("model_hashes")
        if not isinstance(hashes, list):
            return provenance.model_check(session, values)  # unchecked: no query
        key = tuple(str(h) for h in hashes)
        if key not in self._models:
            self._models[key] = provenance.model_check(session, values)
        return dict(self._models[key])

    def saw(self, table: sa.Table, key: uuid.UUID, owner: uuid.UUID) -> None:
        self._batch[(table.name, key)] = owner

    def forget(self, table: sa.Table, key: uuid.UUID) -> None:
        self._batch.pop((table.name, key), None)
        self._versions.pop((table.name, key), None)

    def owner(self, session: Session, model: type[Any], key: uuid.UUID) -> uuid.UUID | None:
        """The owner of a device-made record on the server (a parent of the row at hand), or
        None when it is not applied (yet)."""
        name = _table(model).name
        cached = self._batch.get((name, key))
        if cached is not None:
            return cached
        found = owner_of(session, model, key)
        if found is not None:
            self._batch[(name, key)] = found
        return found

    def exists(self, session: Session, model: type[Any], key: uuid.UUID) -> bool:
        name = _table(model).name
        cached = self._known.get((name, key))
        if cached is None:
            cached = _exists(session, model, key)
            if cached:
                self._known[(name, key)] = True
        return cached

    def user_id(self, session: Session, server_id: Any, username: Any) -> uuid.UUID | None:
        key = (server_id, username)
        if key not in self._users:
            self._users[key] = self._user_id(session, server_id, username)
        return self._users[key]

    def _user_id(self, session: Session, server_id: Any, username: Any) -> uuid.UUID | None:
        # A user is a master: an id the server cannot use falls back to the username.
        try:
            key = _uuid(server_id) if server_id else None
        except ApplyNever:
            key = None
        if key is not None and self.exists(session, s.User, key):
            return key
        if isinstance(username, str):
            found = session.execute(
                sa.select(_table(s.User).c.id).where(_table(s.User).c.username == username)
            ).scalar_one_or_none()
            if isinstance(found, uuid.UUID):
                return found
        return None


def _exists(session: Session, model: type[Any], key: uuid.UUID) -> bool:
    table = _table(model)
    return session.execute(sa.select(table.c.id).where(table.c.id == key)).first() is not None


def _current_version(session: Session, spec: Spec, key: uuid.UUID) -> tuple[bool, int | None]:
    table = spec.table
    if spec.versioned:
        found = session.execute(sa.select(table.c.version).where(table.c.id == key)).first()
        return (found is not None, int(found[0]) if found else None)
    return (_exists(session, spec.model, key), None)


def _parent_refused(session: Session, model: type[Any], key: uuid.UUID, device: str) -> bool:
    """Whether the row that would create this parent was refused for good, and no other row of
    the device may still create it: then its children wait for nothing."""
    entity_type = ENTITY_OF_TABLE[_table(model).name]
    inserts = sa.select(QUEUE.c.refusal).where(
        QUEUE.c.device_id == device,
        QUEUE.c.entity_type == entity_type,
        QUEUE.c.entity_id == key,
        QUEUE.c.operation == "INSERT",
    )
    found = [row.refusal for row in session.execute(inserts)]
    return bool(found) and all(refusal is not None for refusal in found)


def _refuse_foreign(row: Any, what: str, owner: uuid.UUID) -> NoReturn:
    raise NotOwner(f"{what} belongs to device {owner}, not to device {row.device_id}",
                   owner=str(owner), device=str(row.device_id))


def _values(
    session: Session, spec: Spec, row: Any, cache: MasterCache, *, partial: bool
) -> dict[str, Any]:
    data: Mapping[str, Any] = row.data
    values: dict[str, Any] = {}
    for name, convert in spec.columns.items():
        if name not in data:
            continue
        raw = data[name]
        try:
            values[name] = None if raw is None else convert(raw)
        except ApplyNever as exc:
            raise ApplyNever(f"{name}: {exc.message}") from exc
        except (TypeError, ValueError, OverflowError) as exc:
            raise ApplyNever(f"{name}: {exc}") from exc
    for ref in spec.refs:
        key = values.get(ref.column)
        if key is None:
            continue
        if ref.device_made:
            owner = cache.owner(session, ref.model, key)
            if owner is None:
                # Parents usually arrive a moment late; only a row that already waited once
                # pays for looking the parent's queue rows up.
                if row.apply_attempts and _parent_refused(session, ref.model, key,
                                                          row.device_id):
                    raise ApplyNever(
                        f"{ref.column} {key} was refused by the server; this record needs it"
                    )
                raise ApplyLater(f"{ref.column} {key} is not applied yet")
            if decide_owner(_uuid(row.device_id), owner) is Decision.REJECT:
                _refuse_foreign(row, f"{ref.column} {key}", owner)
        elif not cache.exists(session, ref.model, key):
            values[ref.column] = None
    if spec.user_ref and ("user_server_id" in data or "username" in data or not partial):
        values["user_id"] = cache.user_id(session, data.get("user_server_id"),
                                          data.get("username"))
        values["username"] = data.get("username")
    if "updated_by" in spec.table.c:
        actor = _actor(session, data, cache, values)
        if not partial:
            values["created_by"] = actor
        values["updated_by"] = actor
    return values


def _actor(
    session: Session, data: Mapping[str, Any], cache: MasterCache, values: Mapping[str, Any]
) -> uuid.UUID | None:
    """The server's user an operation is by (see the module's docstring)."""
    if "actor_server_id" in data or "actor_username" in data:
        return cache.user_id(session, data.get("actor_server_id"), data.get("actor_username"))
    if "user_id" in values:
        found: uuid.UUID | None = values["user_id"]
        return found
    if "user_server_id" in data or "username" in data:
        return cache.user_id(session, data.get("user_server_id"), data.get("username"))
    return None


def _insert_ignore(session: Session, table: sa.Table, values: dict[str, Any]) -> bool:
    """INSERT … ON CONFLICT DO NOTHING; True when the row was new."""
    statement = statements.insert_ignore(session.get_bind().dialect.name, table)
    return session.execute(statement, values).first() is not None


def _insert_pending(session: Session, entity_type: str, key: uuid.UUID, before_id: int) -> bool:
    return (
        session.execute(
            sa.select(QUEUE.c.id).where(
                QUEUE.c.entity_type == entity_type,
                QUEUE.c.entity_id == key,
                QUEUE.c.operation == "INSERT",
                QUEUE.c.processed_at.is_(None),
                QUEUE.c.id != before_id,
            )
        ).first()
        is not None
    )


def apply_row(session: Session, row: Any, cache: MasterCache) -> Outcome:
    """Apply one ``tauri_sync_queue`` row (a Row with the queue's columns)."""
    if row.entity_type == ENTRY_TYPE:
        applied = apply_entry(session, row, cache.entries)
        return Outcome(applied.decision, applied.note)
    spec = SPECS.get(row.entity_type)
    if spec is None:
        raise ApplyNever(f"unknown entity type {_short(row.entity_type)}")
    if row.operation not in ("INSERT", "UPDATE", "DELETE"):
        raise ApplyNever(f"unknown operation {_short(row.operation)}")
    data: Mapping[str, Any] = row.data
    key: uuid.UUID = row.entity_id
    device = _uuid(row.device_id)
    assert device is not None  # the push endpoint stores the authenticated device's id

    if row.operation == "INSERT":
        # Insert-or-ignore answers "is it there already?" in the same statement: no lookup first.
        values = _values(session, spec, row, cache, partial=False)
        values["id"] = key
        if "device_id" in spec.table.c:
            values["device_id"] = device
        if row.entity_type == "ai_inspection_result":
            values.update(cache.model_check(session, values))
        inserted = _insert_ignore(session, spec.table, values)
        if not inserted:
            # A redelivery of the device's own INSERT is a duplicate; the same id under another
            # device is an attempt on its record, not a duplicate that "succeeded".
            owner = owner_of(session, spec.model, key)
            if owner is not None and decide_owner(device, owner) is Decision.REJECT:
                _refuse_foreign(row, f"{row.entity_type} {key}", owner)
        decision = decide_insert(exists=not inserted)
        if decision is Decision.APPLY:
            cache.saw(spec.table, key, device)
            if spec.versioned and isinstance(values.get("version"), int):
                cache.wrote_version(spec.table, key, values["version"])
            if row.entity_type in VERSIONED_RESULTS:
                cache.saw_version(spec.table, key, key)  # a new result is its only version
            if row.entity_type == "ai_inspection_result":
                record_execution(session, row, values)
        return Outcome(decision)

    owner = cache.owner(session, spec.model, key)
    if owner is not None and decide_owner(device, owner) is Decision.REJECT:
        _refuse_foreign(row, f"{row.entity_type} {key}", owner)
    if row.entity_type in VERSIONED_RESULTS:
        return _correct_result(session, spec, row, cache)
    exists, version = cache.version(session, spec, key)

    try:
        base = int(data.get("base_version", 0))
    except (TypeError, ValueError) as exc:
        raise ApplyNever(f"base_version: {exc}") from exc
    if row.operation == "UPDATE":
        try:
            new = int(data.get("version", base + 1))
        except (TypeError, ValueError) as exc:
            raise ApplyNever(f"version: {exc}") from exc
        if spec.versioned:
            decision = decide_update(version, base)
        else:
            decision = Decision.APPLY if exists else Decision.RETRY
        if decision is Decision.APPLY:
            values = _values(session, spec, row, cache, partial=True)
            values.pop("id", None)
            if spec.versioned:
                values["version"] = new
            if values:
                statements.update_row(session, spec.table, key, values)
            if spec.versioned:
                cache.wrote_version(spec.table, key, new)
        elif decision is Decision.RETRY:
            if not exists and row.apply_attempts and _parent_refused(
                session, spec.model, key, row.device_id
            ):
                raise ApplyNever("the record's INSERT was refused by the server")
            raise ApplyLater(
                f"update based on version {base} waits for version {version} to catch up"
                if exists
                else "the record is not applied yet"
            )
        elif decision is Decision.CONFLICT:
            return Outcome(decision, f"server holds version {version}; update was {base}->{new}")
        return Outcome(decision)

    if row.operation == "DELETE":
        pending = not exists and _insert_pending(session, row.entity_type, key, row.id)
        if spec.versioned:
            decision = decide_delete(version, base, pending)
        else:
            decision = Decision.APPLY if exists else (
                Decision.RETRY if pending else Decision.SKIP
            )
        if decision is Decision.APPLY:
            session.execute(sa.delete(spec.table).where(spec.table.c.id == key))
            cache.forget(spec.table, key)
        elif decision is Decision.RETRY:
            raise ApplyLater("the record's earlier operations are not applied yet")
        elif decision is Decision.CONFLICT:
            return Outcome(decision, f"server holds version {version}; delete was of {base}")
        return Outcome(decision)
    raise ApplyNever(f"unknown operation {_short(row.operation)}")


# --- results: corrected by new versions, never edited ----------------------------------------

VERSIONED_RESULTS = ("ai_inspection_result", "human_verification_result")
# The namespace of the ids of corrections: uuid5(result id, "version N").
_VERSION_ID = "version {}"


def result_versions(session: Session, table: sa.Table, key: uuid.UUID) -> list[Any]:
    """A result's versions, first to newest (empty when it is not applied)."""
    found = session.execute(sa.select(table).where(table.c.id == key)).mappings().first()
    line: list[Any] = []
    while found is not None:
        line.append(found)
        found = session.execute(
            sa.select(table).where(table.c.supersedes == found["id"])
        ).mappings().first()
    return line


def _correct_result(session: Session, spec: Spec, row: Any, cache: MasterCache) -> Outcome:
    key: uuid.UUID = row.entity_id
    if row.operation == "DELETE":
        raise ApplyNever(
            f"a {row.entity_type} is never deleted on the server; a correction supersedes it"
        )
    line = result_versions(session, spec.table, key)
    base, new = int(row.data.get("base_version", 0)), int(row.data.get("version", 0))
    decision = decide_update(len(line) or None, base)
    if decision is Decision.RETRY:
        if not line and row.apply_attempts and _parent_refused(
            session, spec.model, key, row.device_id
        ):
            raise ApplyNever("the record's INSERT was refused by the server")
        raise ApplyLater(
            f"correction based on version {base} waits for version {base} to be applied"
        )
    if decision is Decision.CONFLICT:
        return Outcome(decision, f"server holds version {len(line)}; correction was "
                                 f"{base}->{new}")
    if decision is Decision.APPLY:
        values = _values(session, spec, row, cache, partial=True)
        values.pop("id", None)
        head = dict(line[-1])
        head.pop("received_at", None)
        version_id = uuid.uuid5(key, _VERSION_ID.format(new))
        session.execute(sa.insert(spec.table).values(
            {**head, **values, "id": version_id, "supersedes": head["id"]}
        ))
        cache.saw_version(spec.table, key, version_id)
    return Outcome(decision)


def check_record(session: Session, device: str, entity: str, key: str, digest: str) -> str | None:
    """Whether a device's record still is what its newest audit entry says: None when it is,
    ``WAITING`` when some of its operations are not applied yet, else what differs — the
    operations that arrived against the entry's digest, then the server's columns against those
    operations (the current version, for a result)."""
    spec = SPECS[entity]
    try:
        record_id = uuid.UUID(key)
    except ValueError:
        return f"{key!r} is not a record id"
    ops = session.execute(
        sa.select(QUEUE.c.operation, QUEUE.c.data, QUEUE.c.processed_at, QUEUE.c.refusal)
        .where(QUEUE.c.device_id == device, QUEUE.c.entity_type == entity,
               QUEUE.c.entity_id == record_id)
        .order_by(QUEUE.c.seq)
    ).all()
    if any(op.processed_at is None for op in ops):
        return WAITING
    applied = [op for op in ops if op.refusal is None]
    if not applied:
        return WAITING if not ops else "its operations were refused by the server"
    if any(op.operation == "DELETE" for op in applied):
        return None
    data = fold([op.data for op in applied])
    if row_digest(entity, device_row(data)) != digest:
        return "the operations that arrived do not match the digest of its newest audit entry"
    if entity in VERSIONED_RESULTS:
        line = result_versions(session, spec.table, record_id)
        stored = line[-1] if line else None
    else:
        stored = session.execute(
            sa.select(spec.table).where(spec.table.c.id == record_id)
        ).mappings().first()
    if stored is None:
        return "it is not on the server"
    masters = {ref.column for ref in spec.refs if not ref.device_made}
    for name, convert in spec.columns.items():
        if name not in data:
            continue
        try:
            expected = None if data[name] is None else convert(data[name])
        except (ApplyError, TypeError, ValueError, OverflowError):
            continue
        actual = stored[name]
        if actual == expected or (name in masters and actual is None):
            continue
        return (f"{name} is {_short(actual, 60)} on the server but "
                f"{_short(expected, 60)} as it arrived")
    if spec.user_ref and "username" in data and stored["username"] != data["username"]:
        return (f"username is {_short(stored['username'], 60)} on the server but "
                f"{_short(data['username'], 60)} as it arrived")
    return None


WAITING = "waiting"


# --- pipelines as they ran -------------------------------------------------------------------


def _steps(timings: Any) -> list[tuple[str, float, float]]:
    """The engine's ``[{"node", "start_ms", "ms", …}]`` → [(step, start offset, duration)].

    Only steps as the engine measured them: a result without them (one made before the engine
    reported its steps) has no components, rather than steps made up from its stage totals.
    The push edge has already bounded them (``sync.bounds``)."""
    steps: list[tuple[str, float, float]] = []
    if not isinstance(timings, list):
        return steps
    for entry in timings:
        if not isinstance(entry, dict):
            continue
        name, start, ms = entry.get("node"), _ms(entry.get("start_ms")), _ms(entry.get("ms"))
        if isinstance(name, str) and name and start is not None and ms is not None:
            steps.append((name, start, ms))
    return steps


def _ms(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


def _version_number(version: Any) -> int | None:
    """A pipeline version that is a plain number ("3"), as the executions table keeps it; None
    for any other ("1.2", "²" — a digit to ``str.isdigit`` — or one past the column)."""
    if isinstance(version, str) and 0 < len(version) <= 9 and version.isascii() \
            and version.isdigit():
        return int(version)
    return None


def record_execution(session: Session, row: Any, values: Mapping[str, Any]) -> None:
    """An applied AI result becomes a pipeline execution with one component execution per step
    the engine ran, each at its measured start offset and duration, so the server sees how each
    device's pipelines ran."""
    steps = _steps(values.get("step_timings"))
    finished = values.get("created_at") or row.created_at
    # processing_time is the whole job in seconds, as the device measured it; the steps' offsets
    # count from the same start.
    total_ms = (_ms(values.get("processing_time")) or 0.0) * 1000.0
    total_ms = max(total_ms, *(start + ms for _, start, ms in steps)) if steps else total_ms
    try:
        started = finished - timedelta(milliseconds=total_ms)
    except OverflowError:
        # A device clock that said year 1: the start cannot be told, so it is the finish.
        started = finished
    version = values.get("pipeline_version")
    execution_id = uuid.uuid4()
    session.execute(
        sa.insert(_table(s.PipelineExecution)).values(
            id=execution_id,
            pipeline_id=values.get("pipeline_id"),
            status="completed",
            input_data={
                "session_id": str(values.get("session_id")),
                "item_id": str(values["item_id"]) if values.get("item_id") else None,
                "image_id": str(values["image_id"]) if values.get("image_id") else None,
                "model_sha256": values.get("model_sha256"),
                "model_hashes": values.get("model_hashes"),
                "image_sha256": values.get("image_sha256"),
                "engine_version": values.get("engine_version"),
                "execution_provider": values.get("execution_provider"),
            },
            output_data={
                "overall_result": values.get("overall_result"),
                "confidence": values.get("confidence"),
                "measurements": values.get("measurements"),
            },
            started_at=started,
            completed_at=finished,
            device_id=_uuid(row.device_id),
            pipeline_version=_version_number(version),
            ai_result_id=row.entity_id,
            created_at=finished,
        )
    )
    components = [
        {"id": uuid.uuid4(), "execution_id": execution_id, "status": "completed",
         "execution_time_ms": round(ms), "started_at": started + timedelta(milliseconds=start),
         "completed_at": started + timedelta(milliseconds=start + ms), "step_name": name}
        for name, start, ms in steps
    ]
    if components:
        session.execute(sa.insert(_table(s.ComponentExecution)), components)
