"""An inspection's audit trail, for the history detail: who did what to it, when and why."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel
from sqlmodel import col, select

from schema import device as d
from sidecar.api.deps import CurrentUser, DbDep, SessionAccess
from sidecar.outbox import ENTITY_TYPES
from sidecar.services import inspection

router = APIRouter(prefix="/sessions", tags=["history"], dependencies=[SessionAccess])


class AuditEntryPublic(BaseModel):
    """One entry of the tablet's audit trail (``schema.formats.audit``)."""

    seq: int
    at: str  # UTC, YYYY-MM-DDTHH:MM:SS.ffffffZ
    username: str | None
    # Who as people call them now (full name, else the username the entry keeps): the entry
    # outlives the user row, so a removed user reads as their username.
    display_name: str | None
    role: str | None
    entity: str
    entity_id: str | None
    action: str
    # For an update: {field: {"before": value, "after": value}} ("before" absent when unknown).
    changes: dict[str, Any] | None
    reason: str | None
    row_digest: str | None
    hash: str


# The records of an inspection, by the column that ties each to it.
_UNDER_SESSION = (
    d.InspectionSessionItem,
    d.InspectionImage,
    d.AIInspectionResult,
    d.HumanVerificationResult,
    d.Signature,
)


@router.get("/{session_id}/audit")
def audit_trail(session_id: str, db: DbDep, _: CurrentUser) -> list[AuditEntryPublic]:
    """Every audit entry of the inspection and its records (items, photos, AI results,
    verdicts, signatures, the scanned unit), oldest first; readable by whoever may read the
    inspection."""
    with db.read() as session:
        row = inspection.get_session(session, session_id)
        ids: dict[str, list[str]] = {
            ENTITY_TYPES[d.InspectionSession]: [row.id],
            ENTITY_TYPES[d.InspectionTarget]: [row.target_id],
        }
        for model in _UNDER_SESSION:
            if model not in ENTITY_TYPES:
                continue
            found = session.exec(
                select(model.id).where(model.session_id == session_id)
            ).all()
            ids[ENTITY_TYPES[model]] = [str(x) for x in found]
        entries: list[d.AuditLog] = []
        for entity, wanted in ids.items():
            if not wanted:
                continue
            entries.extend(
                session.exec(
                    select(d.AuditLog).where(
                        d.AuditLog.entity == entity, col(d.AuditLog.entity_id).in_(wanted)
                    )
                ).all()
            )
        user_ids = {e.user_id for e in entries if e.user_id is not None}
        users = session.exec(select(d.User).where(col(d.User.id).in_(user_ids))).all()
        names = {u.id: u.full_name for u in users if u.full_name}
    entries.sort(key=lambda e: e.seq)
    stored = [f for f in AuditEntryPublic.model_fields if f != "display_name"]
    return [
        AuditEntryPublic(
            **{f: getattr(e, f) for f in stored},
            display_name=(names.get(e.user_id) if e.user_id is not None else None) or e.username,
        )
        for e in entries
    ]
