"""Writing outbox rows: what the server must learn of, in the same transaction as the change.

The queue moves differences, not snapshots: an INSERT carries the whole record, an UPDATE only
the changed fields and the version it was based on, a DELETE the id and that version. Payload
keys are the device table's column names, timestamps ISO 8601 in UTC; a reference to a local user
travels as ``user_server_id`` (the server's id, null for a device-only user) and ``username``,
because the device's integer user ids mean nothing on the server.

Callers pass the session of their unit of work; nothing here commits.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, SQLModel

from schema import device as d

# A record whose changes the server receives (all carry a device-made text id).
Entity = (
    d.InspectionTarget
    | d.InspectionSession
    | d.InspectionSessionItem
    | d.InspectionImage
    | d.AIInspectionResult
    | d.HumanVerificationResult
)

# entity_type on the wire for each table whose changes the server receives.
ENTITY_TYPES: dict[type[SQLModel], str] = {
    d.InspectionTarget: "inspection_target",
    d.InspectionSession: "inspection_session",
    d.InspectionSessionItem: "inspection_session_item",
    d.InspectionImage: "inspection_image",
    d.AIInspectionResult: "ai_inspection_result",
    d.HumanVerificationResult: "human_verification_result",
}

# Columns that stay on the device: local file paths and the local integer user id.
_LOCAL_ONLY = {"file_path", "thumbnail_path", "uploaded_at", "user_id"}


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def payload(session: Session, row: Entity) -> dict[str, Any]:
    """The whole record as it travels to the server."""
    data = {
        key: _jsonable(value) for key, value in row.model_dump().items() if key not in _LOCAL_ONLY
    }
    if hasattr(row, "user_id"):
        data.update(_user_ref(session, row.user_id))
    return data


def _user_ref(session: Session, user_id: int | None) -> dict[str, Any]:
    user = session.get(d.User, user_id) if user_id is not None else None
    return {
        "user_server_id": user.server_id if user else None,
        "username": user.username if user else None,
    }


def _add(
    session: Session, row: Entity, operation: str, data: dict[str, Any], priority: int
) -> d.Outbox:
    entity_type = ENTITY_TYPES[type(row)]
    entry = d.Outbox(
        entity_type=entity_type,
        entity_id=str(row.id),
        operation=operation,
        data=data,
        priority=priority,
    )
    session.add(entry)
    return entry


def record_insert(session: Session, row: Entity, *, priority: int = 0) -> d.Outbox:
    return _add(session, row, "INSERT", payload(session, row), priority)


def record_update(
    session: Session,
    row: Entity,
    changed: dict[str, Any],
    *,
    base_version: int,
    priority: int = 0,
) -> d.Outbox:
    """Only ``changed`` fields travel, with the version the change was based on."""
    data = {key: _jsonable(value) for key, value in changed.items() if key not in _LOCAL_ONLY}
    if "user_id" in changed:
        data.update(_user_ref(session, changed["user_id"]))
    data["id"] = str(row.id)
    data["base_version"] = base_version
    data["version"] = getattr(row, "version", base_version + 1)
    return _add(session, row, "UPDATE", data, priority)


def record_delete(session: Session, row: Entity, *, base_version: int) -> d.Outbox:
    data = {"id": str(row.id), "base_version": base_version}
    return _add(session, row, "DELETE", data, 0)
