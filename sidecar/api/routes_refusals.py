"""The operations the server refused after storing them, and a supervisor's choice on a conflict.

    GET  /sync/refusals                    the refusals nobody has resolved: kind, reason code,
                                           the inspection they belong to, and for a version
                                           conflict the tablet's and the server's values
    POST /sync/refusals/{op_id}/resolve    {keep: tablet|server, reason?}: the choice, written
                                           as a new update with its audit entry
    POST /sync/set-aside/{seq}/retry       {reason?}: an operation the tablet set aside (the
                                           server never stored it) back in the queue

Seeing them and sending one again is ``set_aside``; choosing is ``override`` (a supervisor): it
decides which record of an inspection stands (``sidecar.services.conflicts``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from sidecar.api.deps import CurrentUser, DbDep
from sidecar.services import conflicts

router = APIRouter(prefix="/sync/refusals", tags=["sync"])
set_aside_router = APIRouter(prefix="/sync/set-aside", tags=["sync"])

# An outbox sequence number (SQLite's 64-bit rowid).
Seq = Annotated[int, Path(ge=1, le=2**63 - 1)]

OpId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class RefusalPublic(BaseModel):
    op_id: str
    kind: Literal["conflict", "rejected", "dead_letter"]
    # What the UI words (``sync.conflicts.REASON_CODES``); ``reason`` is the server's text.
    reason_code: str
    reason: str
    entity_type: str
    entity_id: str
    operation: str
    session_id: str | None
    refused_at: datetime
    # Both versions of the fields a supervisor chooses between; null where there is no choice
    # to make (a rejection, a dead letter, a record this kind of choice does not cover).
    tablet: dict[str, Any] | None
    server: dict[str, Any] | None
    resolution: Literal["keep_tablet", "keep_server"] | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keep: Literal["tablet", "server"]
    # The supervisor's words for why, kept on the audit entry.
    reason: str | None = Field(
        default=None, max_length=500, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*$"
    )


def _public(found: conflicts.Refusal) -> RefusalPublic:
    row = found.row
    return RefusalPublic(
        op_id=row.op_id, kind=row.kind, reason_code=row.reason_code,
        reason=row.reason, entity_type=row.entity_type, entity_id=row.entity_id,
        operation=row.operation, session_id=found.session_id, refused_at=row.refused_at,
        tablet=found.tablet, server=found.server,
        resolution=row.resolution,
        resolved_by=row.resolved_by, resolved_at=row.resolved_at,
    )


@router.get("")
def refusals(db: DbDep, _: CurrentUser) -> list[RefusalPublic]:
    with db.read() as session:
        return [_public(r) for r in conflicts.open_refusals(session)]


@router.post("/{op_id}/resolve")
def resolve(op_id: OpId, body: ResolveIn, db: DbDep, user: CurrentUser) -> RefusalPublic:
    with db.atomic() as session:
        return _public(conflicts.resolve(session, op_id, body.keep, user, body.reason))


class ReleaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(
        default=None, max_length=500, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*$"
    )


@set_aside_router.post("/{seq}/retry", status_code=204)
def release(seq: Seq, db: DbDep, _: CurrentUser, body: ReleaseIn | None = None) -> None:
    """Send a set-aside operation again (``set_aside``, a supervisor): 404
    ``set_aside_not_found`` for no such operation, 409 ``refused_by_server`` for one the server
    refused after storing it (resolve it among the refusals instead)."""
    with db.atomic() as session:
        conflicts.release_set_aside(session, seq, body.reason if body else None)

