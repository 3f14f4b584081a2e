"""Writing outbox rows: what the server must learn of, in the same transaction as the change.

The queue moves differences, not snapshots: an INSERT carries the whole record, an UPDATE only
the changed fields and the version it was based on, a DELETE the id and that version. Payload
keys are the device table's column names, timestamps ISO 8601 in UTC; a reference to a local user
travels as ``user_server_id`` (the server's id, null for a device-only user) and ``username``,
because the device's integer user ids mean nothing on the server.

Callers pass the session of their unit of work; nothing here commits. The rows are written with
prepared statements on that unit of work's connection (``schema.db.insert_rows``), not by the
ORM's flush: a workflow write is a few small rows, and the ORM's per-object cost was most of what
it cost (scripts/benchmarks/write.py).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from pydantic_core import PydanticUndefined
from sqlalchemy.orm import make_transient_to_detached
from sqlmodel import Session, SQLModel

from schema import device as d
from schema.db import insert_rows
from schema.formats.audit import row_digest
from schema.types import new_id, utcnow
from sidecar import audit

# A record whose changes the server receives (all carry a device-made text id).
Entity = (
    d.InspectionTarget
    | d.InspectionSession
    | d.InspectionSessionItem
    | d.InspectionImage
    | d.AIInspectionResult
    | d.HumanVerificationResult
    | d.Signature
)

# entity_type on the wire for each table whose changes the server receives.
ENTITY_TYPES: dict[type[SQLModel], str] = {
    d.InspectionTarget: "inspection_target",
    d.InspectionSession: "inspection_session",
    d.InspectionSessionItem: "inspection_session_item",
    d.InspectionImage: "inspection_image",
    d.AIInspectionResult: "ai_inspection_result",
    d.HumanVerificationResult: "human_verification_result",
    d.Signature: "signature",
}

# Columns that stay on the device: local file paths and the local integer user id.
_LOCAL_ONLY = {"file_path", "thumbnail_path", "uploaded_at", "user_id"}


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def payload(session: Session, row: Entity) -> dict[str, Any]:
    """The whole record as it travels to the server."""
    shape = _shape(type(row))
    # The instance's own values, read past the attribute instrumentation (a tenth of a write's
    # work); an attribute expired since it was loaded is loaded again through it.
    state = row.__dict__
    data = {
        name: _jsonable(state[name] if name in state else getattr(row, name))
        for name in shape.travels
    }
    if shape.has_user:
        data.update(_user_ref(session, row.user_id))  # type: ignore[union-attr]
    return data


def digest(session: Session, row: Entity) -> str:
    """The record's digest as it is now, as its newest audit entry carries it."""
    return row_digest(ENTITY_TYPES[type(row)], payload(session, row))


def _user_ref(session: Session, user_id: int | None) -> dict[str, Any]:
    user = session.get(d.User, user_id) if user_id is not None else None
    return {
        "user_server_id": user.server_id if user else None,
        "username": user.username if user else None,
    }


_OUTBOX: sa.Table = d.Outbox.__table__  # type: ignore[attr-defined]


def _entry(
    row: Entity, operation: str, data: dict[str, Any], priority: int
) -> tuple[sa.Table, dict[str, Any]]:
    return _OUTBOX, {
        "op_id": new_id(),
        "entity_type": ENTITY_TYPES[type(row)],
        "entity_id": str(row.id),
        "operation": operation,
        "data": data,
        "priority": priority,
        "created_at": utcnow(),
    }


E = TypeVar(
    "E",
    d.InspectionTarget,
    d.InspectionSession,
    d.InspectionSessionItem,
    d.InspectionImage,
    d.AIInspectionResult,
    d.HumanVerificationResult,
    d.Signature,
)

@dataclass(frozen=True)
class _Shape:
    """What writing a record of one table needs, worked out once per table."""

    table: sa.Table
    new_instance: Callable[[], Any]
    # (field, default factory or None, default): the model's own defaults
    fields: tuple[tuple[str, Callable[[], Any] | None, Any], ...]
    columns: tuple[str, ...]
    travels: tuple[str, ...]
    has_user: bool


_shapes: dict[type[SQLModel], _Shape] = {}


def _shape(model: type[SQLModel]) -> _Shape:
    found = _shapes.get(model)
    if found is None:
        # A table model's attributes work once its mapper is configured; its constructor would
        # have seen to that.
        sa.orm.configure_mappers()
        fields = []
        for name, info in model.model_fields.items():
            if info.default_factory_takes_validated_data:
                raise TypeError(f"{model.__name__}.{name}: a default that reads other fields")
            default = info.default
            factory: Callable[[], Any] | None = info.default_factory  # type: ignore[assignment]
            if factory is None and isinstance(default, list | dict | set):
                factory = functools.partial(copy.deepcopy, default)
            fields.append((name, factory, default))
        table: sa.Table = model.__table__  # type: ignore[attr-defined]
        found = _shapes[model] = _Shape(
            table=table,
            new_instance=sa.inspect(model).class_manager.new_instance,
            fields=tuple(fields),
            columns=tuple(c.key for c in table.columns),
            travels=tuple(name for name, _, _ in fields if name not in _LOCAL_ONLY),
            has_user="user_id" in model.model_fields,
        )
    return found


def _record(shape: _Shape, model: type[E], values: dict[str, Any]) -> E:
    """The record with ``values`` and the model's defaults, built the way the ORM builds a row it
    loads: a table model's own constructor spends most of a write's time resolving defaults and
    recording attribute history that an INSERT never needs."""
    row: E = shape.new_instance()
    state = row.__dict__
    given = set(values)
    for name, factory, default in shape.fields:
        if name in values:
            state[name] = values.pop(name)
        elif factory is not None:
            state[name] = factory()
        elif default is not PydanticUndefined:
            state[name] = default
    if values:
        raise TypeError(f"{model.__name__} has no field {', '.join(sorted(values))}")
    object.__setattr__(row, "__pydantic_fields_set__", given)
    return row


def insert(session: Session, model: type[E], /, *, priority: int = 0, **values: Any) -> E:
    """A new record and its outbox row, in the caller's unit of work.

    Returns the record as stored, detached from the session like a row loaded in another: the
    unit of work finds it by id, and adding it to a session never inserts it twice.
    """
    shape = _shape(model)
    row = _record(shape, model, values)
    state = row.__dict__
    data: dict[str, Any] = payload(session, row)
    entity: str = ENTITY_TYPES[model]
    record_id: str = str(row.id)
    insert_rows(
        session,
        [
            (shape.table, {key: state.get(key) for key in shape.columns}),
            _entry(row, "INSERT", data, priority),
            *audit.entry_rows(
                session,
                entity=entity,
                entity_id=record_id,
                action="insert",
                row_digest=row_digest(entity, data),
            ),
        ],
    )
    make_transient_to_detached(row)
    return row


def record_update(
    session: Session,
    row: Entity,
    changed: dict[str, Any],
    *,
    base_version: int,
    priority: int = 0,
) -> None:
    """The outbox row of a change the caller makes to ``row`` in the same unit of work: only
    ``changed`` fields travel, with the version the change was based on."""
    data = {key: _jsonable(value) for key, value in changed.items() if key not in _LOCAL_ONLY}
    if "user_id" in changed:
        data.update(_user_ref(session, changed["user_id"]))
    data["id"] = str(row.id)
    data["base_version"] = base_version
    data["version"] = getattr(row, "version", base_version + 1)
    insert_rows(
        session,
        [
            _entry(row, "UPDATE", data, priority),
            *audit.entry_rows(
                session,
                entity=ENTITY_TYPES[type(row)],
                entity_id=str(row.id),
                action="update",
                changes=_before_after(row, changed),
                row_digest=digest(session, row),
            ),
        ],
    )


def _before_after(row: Entity, changed: dict[str, Any]) -> dict[str, Any]:
    """Each changed field's value before (as the unit of work loaded it, when it did) and after
    the change: the audit entry's field-level record."""
    attrs = sa.inspect(row).attrs
    out: dict[str, Any] = {}
    for key, value in changed.items():
        if key in ("file_path", "thumbnail_path"):
            continue
        field: dict[str, Any] = {"after": _jsonable(value)}
        old = attrs[key].history.deleted if key in attrs else ()
        if old:
            field["before"] = _jsonable(old[0])
        out[key] = field
    return out


def record_delete(session: Session, row: Entity, *, base_version: int) -> None:
    data = {"id": str(row.id), "base_version": base_version}
    insert_rows(
        session,
        [
            _entry(row, "DELETE", data, 0),
            *audit.entry_rows(
                session, entity=ENTITY_TYPES[type(row)], entity_id=str(row.id), action="delete"
            ),
        ],
    )
