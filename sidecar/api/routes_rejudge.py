"""Re-judging an item after its inspection was completed: the supervisor's ``override``.

A completed inspection takes no more verdicts through ``.../verification``; a supervisor may put
a new verdict on one of its verified items here. It is a new verification beside the earlier
ones (nothing recorded is edited), and the item's result and the inspection's roll-up follow.
Releasing an NG item as OK, or a verdict that differs from the AI's, needs the supervisor's
signature as a first verdict does (``domain.signatures``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from schema import device as d
from sidecar import audit
from sidecar.api import signed, views
from sidecar.api.deps import CurrentUser, DbDep, SessionAccess
from sidecar.api.schemas import VerificationCreate, VerificationPublic
from sidecar.domain import signatures
from sidecar.services import inspection

# The route table (``api.permissions``) gives this ``override``; SessionAccess checks whose it is.
router = APIRouter(prefix="/sessions", tags=["inspection"], dependencies=[SessionAccess])

ClientSource = Annotated[str, Depends(signed.client_source)]


@router.post("/{session_id}/items/{item_id}/rejudge", status_code=201)
def rejudge(
    session_id: str,
    item_id: str,
    body: VerificationCreate,
    db: DbDep,
    user: CurrentUser,
    source: ClientSource,
) -> VerificationPublic:
    """A supervisor's new verdict on a verified item of a completed inspection."""
    who = signed.signer(db, user, body.signature, source)
    with db.atomic() as session:
        audit.give_reason(session, body.reason)  # the supervisor's words for why, on its entries
        row, previous = inspection.rejudge(
            session,
            session_id,
            item_id,
            inspection.Verdict(**body.model_dump(exclude={"signature", "reason"})),
            user,
        )
        ai = session.get(d.AIInspectionResult, row.ai_result_id) if row.ai_result_id else None
        needed = signatures.for_verdict(
            row.final_result, ai.overall_result if ai else None, previous
        )
        signed.sign(session, who, needed, row, session_id)
    return views.verification(row, user)
