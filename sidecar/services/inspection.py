"""The inspection use cases: start, capture, AI result, verify, skip, retry, complete, resume.

Each function takes the session of the caller's unit of work. Every change the server must learn
of is written with its outbox row in that same session; the rules come from ``domain.workflow``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlmodel import Session, col, func, select

from schema import device as d
from schema.formats import workflow as moves
from schema.formats.defects import DEFECT_TYPES, unoffered
from schema.formats.pipeline import MODEL_REF
from schema.types import utcnow
from sidecar import outbox
from sidecar.domain import workflow as wf
from sidecar.errors import Conflict, InvalidInput, NotFound, ProductNotFound
from sidecar.qr.payload import ScannedUnit
from sidecar.services.images import StoredImage

# ---------------------------------------------------------------------------------------------
# Masters and scans
# ---------------------------------------------------------------------------------------------


def find_master(session: Session, product_code: str) -> d.InspectionTargetMaster:
    master = session.exec(
        select(d.InspectionTargetMaster).where(
            d.InspectionTargetMaster.product_code == product_code,
            col(d.InspectionTargetMaster.deleted_at).is_(None),
        )
    ).first()
    if master is None:
        raise ProductNotFound(
            f"product {product_code} is not in this tablet's inspection masters",
            product_code=product_code,
        )
    return master


def master_items(session: Session, master_id: str) -> list[d.InspectionItemMaster]:
    return list(
        session.exec(
            select(d.InspectionItemMaster)
            .where(
                d.InspectionItemMaster.target_id == master_id,
                col(d.InspectionItemMaster.deleted_at).is_(None),
            )
            .order_by(col(d.InspectionItemMaster.order_sequence))
        ).all()
    )


# ---------------------------------------------------------------------------------------------
# Reading a session
# ---------------------------------------------------------------------------------------------


def get_session(session: Session, session_id: str) -> d.InspectionSession:
    row = session.get(d.InspectionSession, session_id)
    if row is None:
        raise NotFound(f"no inspection with id {session_id}", session_id=session_id)
    return row


def session_items(session: Session, session_id: str) -> list[d.InspectionSessionItem]:
    return list(
        session.exec(
            select(d.InspectionSessionItem)
            .where(d.InspectionSessionItem.session_id == session_id)
            .order_by(col(d.InspectionSessionItem.order_sequence))
        ).all()
    )


def get_item(session: Session, session_id: str, item_id: str) -> d.InspectionSessionItem:
    row = session.exec(
        select(d.InspectionSessionItem).where(
            d.InspectionSessionItem.session_id == session_id,
            d.InspectionSessionItem.item_id == item_id,
        )
    ).first()
    if row is None:
        raise NotFound(
            f"inspection {session_id} has no item {item_id}", session_id=session_id, item_id=item_id
        )
    return row


@dataclass
class ItemDetail:
    item: d.InspectionSessionItem
    master: d.InspectionItemMaster
    images: list[d.InspectionImage] = field(default_factory=list)
    ai_results: list[d.AIInspectionResult] = field(default_factory=list)
    verifications: list[d.HumanVerificationResult] = field(default_factory=list)


@dataclass
class SessionDetail:
    session: d.InspectionSession
    target: d.InspectionTarget
    master: d.InspectionTargetMaster | None
    items: list[ItemDetail]
    user: d.User | None


_Recorded = TypeVar(
    "_Recorded", d.InspectionImage, d.AIInspectionResult, d.HumanVerificationResult
)


def _of_session(session: Session, model: type[_Recorded], session_id: str) -> list[_Recorded]:
    """A session's photos, AI results or verdicts, oldest first."""
    return list(
        session.exec(
            select(model).where(model.session_id == session_id).order_by(col(model.created_at))
        ).all()
    )


def detail(session: Session, session_id: str) -> SessionDetail:
    row = get_session(session, session_id)
    target = session.get(d.InspectionTarget, row.target_id)
    assert target is not None
    master = session.get(d.InspectionTargetMaster, target.master_id) if target.master_id else None
    items = session_items(session, session_id)
    masters = {
        m.id: m
        for m in session.exec(
            select(d.InspectionItemMaster).where(
                col(d.InspectionItemMaster.id).in_([i.item_id for i in items])
            )
        ).all()
    }
    by_item: dict[str, ItemDetail] = {
        i.item_id: ItemDetail(item=i, master=masters[i.item_id]) for i in items
    }
    for image in _of_session(session, d.InspectionImage, session_id):
        if image.item_id in by_item:
            by_item[image.item_id].images.append(image)
    for result in _of_session(session, d.AIInspectionResult, session_id):
        if result.item_id in by_item:
            by_item[result.item_id].ai_results.append(result)
    for verdict in _of_session(session, d.HumanVerificationResult, session_id):
        if verdict.item_id in by_item:
            by_item[verdict.item_id].verifications.append(verdict)
    user = session.get(d.User, row.user_id) if row.user_id is not None else None
    return SessionDetail(
        session=row, target=target, master=master, items=list(by_item.values()), user=user
    )


# ---------------------------------------------------------------------------------------------
# Changing state
# ---------------------------------------------------------------------------------------------


def _bump(row: Any, changes: dict[str, Any]) -> int:
    base = int(row.version)
    for key, value in changes.items():
        setattr(row, key, value)
    row.version = base + 1
    row.updated_at = utcnow()
    return base


def _step_item(item: d.InspectionSessionItem, status: str) -> None:
    """A move the table allows, kept in this transaction only (no outbox row, no new version):
    a step on the way to the state that ``_set_item`` records."""
    wf.check_item(item.status, status, required=item.required, item_code=item.item_code)
    item.status = status


def _set_item(session: Session, item: d.InspectionSessionItem, status: str, **extra: Any) -> None:
    wf.check_item(item.status, status, required=item.required, item_code=item.item_code)
    changes = {"status": status, **extra}
    base = _bump(item, changes)
    session.add(item)
    outbox.record_update(session, item, changes, base_version=base)


def _refresh_session(session: Session, row: d.InspectionSession) -> None:
    items = session_items(session, row.id)
    ai_enabled = {
        m.id: m.ai_enabled
        for m in session.exec(
            select(d.InspectionItemMaster).where(
                col(d.InspectionItemMaster.id).in_([i.item_id for i in items])
            )
        ).all()
    }
    views = [
        wf.ItemView(i.status, i.required, i.result, ai_enabled.get(i.item_id, False)) for i in items
    ]
    status = wf.derive_session_status(row.status, views)
    if status != row.status:
        wf.check_session(row.status, status)
        base = _bump(row, {"status": status})
        session.add(row)
        outbox.record_update(session, row, {"status": status}, base_version=base)


def _open(session: Session, session_id: str) -> d.InspectionSession:
    row = get_session(session, session_id)
    wf.check_session_open(row.status)
    return row


def start(session: Session, unit: ScannedUnit, user: d.User) -> d.InspectionSession:
    """Record the scanned unit and open an inspection of it with the target's items in order."""
    master = find_master(session, unit.product_code)
    items = master_items(session, master.id)
    if not items:
        raise Conflict(
            f"product {master.product_code} has no inspection items on this tablet",
            code="no_items",
        )
    target = outbox.insert(
        session,
        d.InspectionTarget,
        product_id=unit.product_code,
        batch_id=unit.batch_id,
        qr_code=unit.raw,
        master_id=master.id,
        master_version=master.version,
        serial=unit.serial,
        payload_format=unit.format,
    )
    return _open_session(session, target, master, items, user)


def _open_session(
    session: Session,
    target: d.InspectionTarget,
    master: d.InspectionTargetMaster,
    items: list[d.InspectionItemMaster],
    user: d.User,
) -> d.InspectionSession:
    wf.check_session(moves.SESSION_START, "identified")
    row = outbox.insert(
        session,
        d.InspectionSession,
        target_id=target.id,
        user_id=user.id,
        status="identified",
        product_code=master.product_code,
    )
    for item in items:
        outbox.insert(
            session,
            d.InspectionSessionItem,
            session_id=row.id,
            item_id=item.id,
            item_code=item.item_code,
            order_sequence=item.order_sequence,
            required=item.required,
        )
    return row


def check_can_attach(session: Session, session_id: str, item_id: str) -> None:
    """Raise what ``attach_image`` would, so that a refused photo is never written to disk."""
    _open(session, session_id)
    item = get_item(session, session_id, item_id)
    wf.check_item(item.status, "captured", required=item.required, item_code=item.item_code)


def attach_image(
    session: Session,
    session_id: str,
    item_id: str,
    stored: StoredImage,
    *,
    image_type: str = "capture",
) -> d.InspectionImage:
    row = _open(session, session_id)
    item = get_item(session, session_id, item_id)
    _set_item(session, item, "captured")
    image = outbox.insert(
        session,
        d.InspectionImage,
        session_id=session_id,
        item_id=item_id,
        file_path=stored.relative_path,
        thumbnail_path=stored.thumbnail_path,
        image_type=image_type,
        file_size=stored.size,
        sha256=stored.sha256,
        mime_type=stored.mime_type,
        width=stored.width,
        height=stored.height,
    )
    _refresh_session(session, row)
    return image


def mark_ai_running(session: Session, session_id: str, item_id: str) -> None:
    row = _open(session, session_id)
    _set_item(session, get_item(session, session_id, item_id), "ai_running")
    _refresh_session(session, row)


@dataclass(frozen=True)
class AIOutcome:
    """What the job runner measured of one pipeline run: the verdict, the model's own confidence
    (None when it gave none) and the run's provenance — every model's SHA-256, the photo's as
    the pipeline read it, the engine and execution provider, each step's timing."""

    image_id: str | None
    pipeline_id: str | None
    pipeline_version: str | None
    model_sha256: str | None
    overall_result: str
    confidence: float | None
    processing_time: float
    measurements: dict[str, Any] | None = None
    timings: dict[str, Any] | None = None
    detailed_results: dict[str, Any] | None = None
    model_hashes: list[str] | None = None
    image_sha256: str | None = None
    engine_version: str | None = None
    execution_provider: str | None = None
    step_timings: list[dict[str, Any]] | None = None


def pipeline_models(definition: Any) -> set[str]:
    """The SHA-256 of every model a pipeline definition names (``"sha256:<hex>"`` params)."""
    found: set[str] = set()
    stack = [definition]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            match = MODEL_REF.fullmatch(value)
            if match:
                found.add(match.group(1))
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return found


def record_ai_result(
    session: Session, session_id: str, item_id: str, outcome: AIOutcome
) -> d.AIInspectionResult:
    row = _open(session, session_id)
    item = get_item(session, session_id, item_id)
    # Every id the outbox row carries must be a record here: the server resolves each one and
    # would refuse the row for good otherwise.
    if outcome.pipeline_id is not None and session.get(d.Pipeline, outcome.pipeline_id) is None:
        raise InvalidInput(
            f"pipeline {outcome.pipeline_id} is not on this tablet", field="pipeline_id"
        )
    if outcome.image_id is not None:
        image = session.get(d.InspectionImage, outcome.image_id)
        if image is None or image.session_id != session_id or image.item_id != item_id:
            raise InvalidInput(
                f"image {outcome.image_id} does not belong to item {item.item_code}",
                field="image_id",
            )
    if item.status != "ai_running" and moves.item_may_move(item.status, "ai_running"):
        # A result posted directly (no job) takes the job's path through ai_running, but within
        # this one transaction: the server gets only the state that commits.
        _step_item(item, "ai_running")
    result = outbox.insert(
        session,
        d.AIInspectionResult,
        session_id=session_id,
        item_id=item_id,
        image_id=outcome.image_id,
        pipeline_id=outcome.pipeline_id,
        pipeline_version=outcome.pipeline_version,
        model_sha256=outcome.model_sha256,
        overall_result=outcome.overall_result,
        confidence=outcome.confidence,
        processing_time=outcome.processing_time,
        measurements=outcome.measurements,
        timings=outcome.timings,
        model_hashes=outcome.model_hashes,
        image_sha256=outcome.image_sha256,
        engine_version=outcome.engine_version,
        execution_provider=outcome.execution_provider,
        step_timings=outcome.step_timings,
        detailed_results=(
            json.dumps(outcome.detailed_results, ensure_ascii=False)
            if outcome.detailed_results is not None
            else None
        ),
    )
    _set_item(session, item, "ai_completed")
    _refresh_session(session, row)
    return result


def mark_ai_failed(session: Session, session_id: str, item_id: str) -> None:
    row = _open(session, session_id)
    _set_item(session, get_item(session, session_id, item_id), "failed")
    _refresh_session(session, row)


@dataclass(frozen=True)
class Verdict:
    final_result: str
    verification_time: float
    notes: str | None = None
    defect_types: list[str] | None = None
    severity: str | None = None
    ai_result_id: str | None = None


def verify(
    session: Session, session_id: str, item_id: str, verdict: Verdict, user: d.User
) -> d.HumanVerificationResult:
    wf.validate_verdict(verdict.final_result, verdict.defect_types, verdict.severity)
    row = _open(session, session_id)
    item = get_item(session, session_id, item_id)
    ai: d.AIInspectionResult | None = None
    if verdict.ai_result_id is not None:
        ai = session.get(d.AIInspectionResult, verdict.ai_result_id)
        if ai is None or ai.session_id != session_id or ai.item_id != item_id:
            raise InvalidInput(
                f"AI result {verdict.ai_result_id} does not belong to item {item.item_code}",
                field="ai_result_id",
            )
    else:
        ai = _newest_ai(session, session_id, item_id)
    _check_defect_types(session, item, verdict)
    _set_item(session, item, "verified", result=verdict.final_result)
    record = _verification(session, session_id, item_id, verdict, user, ai)
    _refresh_session(session, row)
    return record


def _check_defect_types(session: Session, item: d.InspectionSessionItem, verdict: Verdict) -> None:
    if not verdict.defect_types:
        return
    master = session.get(d.InspectionItemMaster, item.item_id)
    offered = master.defect_types if master is not None else None
    unknown = unoffered(verdict.defect_types, offered)
    if unknown:
        raise InvalidInput(
            f"item {item.item_code} offers no defect type {', '.join(unknown)}; it offers "
            f"{', '.join(offered or DEFECT_TYPES)}",
            field="defect_types",
        )


def _verification(
    session: Session,
    session_id: str,
    item_id: str,
    verdict: Verdict,
    user: d.User,
    ai: d.AIInspectionResult | None,
) -> d.HumanVerificationResult:
    """The verification row of a verdict, naming the AI result it agrees with or overrides."""
    assert user.id is not None
    return outbox.insert(
        session,
        d.HumanVerificationResult,
        session_id=session_id,
        item_id=item_id,
        user_id=user.id,
        final_result=verdict.final_result,
        notes=verdict.notes,
        verification_time=verdict.verification_time,
        ai_result_id=ai.id if ai else None,
        defect_types=verdict.defect_types,
        severity=verdict.severity,
        overrode_ai=ai is not None and not wf.ai_agrees(ai.overall_result, verdict.final_result),
    )


def _newest_ai(session: Session, session_id: str, item_id: str) -> d.AIInspectionResult | None:
    return session.exec(
        select(d.AIInspectionResult)
        .where(
            d.AIInspectionResult.session_id == session_id,
            d.AIInspectionResult.item_id == item_id,
        )
        .order_by(col(d.AIInspectionResult.created_at).desc())
    ).first()


def rejudge(
    session: Session, session_id: str, item_id: str, verdict: Verdict, user: d.User
) -> tuple[d.HumanVerificationResult, str | None]:
    """A new verdict on a verified item of a completed inspection (a supervisor's, see
    ``domain.access``): a new verification beside the earlier ones, which stay as they were; the
    item's result and the inspection's roll-up follow, its state does not move. Returns the
    verification and the item's result before it."""
    wf.validate_verdict(verdict.final_result, verdict.defect_types, verdict.severity)
    row = get_session(session, session_id)
    if row.status != "completed":
        raise Conflict(
            f"inspection {session_id} is {row.status}: only a completed one is re-judged; an open "
            "one takes a verdict",
            code="not_completed",
            state=row.status,
        )
    item = get_item(session, session_id, item_id)
    if item.status != "verified":
        raise Conflict(
            f"item {item.item_code} is {item.status}: only a verified item is re-judged",
            code="not_verified",
            state=item.status,
        )
    _check_defect_types(session, item, verdict)
    previous = item.result
    ai = _newest_ai(session, session_id, item_id)
    if item.result != verdict.final_result:
        changes: dict[str, Any] = {"result": verdict.final_result}
        base = _bump(item, changes)
        session.add(item)
        outbox.record_update(session, item, changes, base_version=base)
    record = _verification(session, session_id, item_id, verdict, user, ai)
    items = session_items(session, session_id)
    result = wf.roll_up(wf.ItemView(i.status, i.required, i.result) for i in items)
    if result != row.result:
        changes = {"result": result}
        base = _bump(row, changes)
        session.add(row)
        outbox.record_update(session, row, changes, base_version=base)
    return record, previous


def skip(session: Session, session_id: str, item_id: str) -> None:
    row = _open(session, session_id)
    _set_item(session, get_item(session, session_id, item_id), "skipped")
    _refresh_session(session, row)


def retry(session: Session, session_id: str, item_id: str) -> None:
    """A failed item goes back to be judged again, a skipped one to the start (the table's
    named retry move)."""
    row = _open(session, session_id)
    item = get_item(session, session_id, item_id)
    target = wf.retry_target(item.status, required=item.required, item_code=item.item_code)
    _set_item(session, item, target, attempts=item.attempts + 1)
    _refresh_session(session, row)


def complete(session: Session, session_id: str) -> d.InspectionSession:
    row = _open(session, session_id)
    items = session_items(session, session_id)
    missing = wf.missing_for_completion(
        (i.item_code, wf.ItemView(i.status, i.required, i.result)) for i in items
    )
    if missing:
        raise Conflict(
            f"cannot complete: items {', '.join(missing)} are not verified yet",
            code="items_open",
            state=row.status,
            items=missing,
        )
    if row.status != "human_review":
        _refresh_session(session, row)
    wf.check_session(row.status, "completed")
    result = wf.roll_up(wf.ItemView(i.status, i.required, i.result) for i in items)
    now = utcnow()
    changes = {"status": "completed", "result": result, "completed_at": now}
    base = _bump(row, changes)
    session.add(row)
    outbox.record_update(session, row, changes, base_version=base)
    return row


def cancel(session: Session, session_id: str) -> d.InspectionSession:
    row = get_session(session, session_id)
    wf.check_session(row.status, "cancelled")
    changes = {"status": "cancelled", "completed_at": utcnow()}
    base = _bump(row, changes)
    session.add(row)
    outbox.record_update(session, row, changes, base_version=base)
    return row


def restart(session: Session, session_id: str, user: d.User) -> d.InspectionSession:
    """Discard an interrupted inspection and open a fresh one of the same unit."""
    old = cancel(session, session_id)
    target = session.get(d.InspectionTarget, old.target_id)
    assert target is not None and target.master_id is not None
    master = session.get(d.InspectionTargetMaster, target.master_id)
    if master is None or master.deleted_at is not None:
        raise ProductNotFound(f"product {target.product_id} is no longer in the masters")
    return _open_session(session, target, master, master_items(session, master.id), user)


# ---------------------------------------------------------------------------------------------
# Interrupted work
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interrupted:
    session: d.InspectionSession
    target: d.InspectionTarget
    items: list[d.InspectionSessionItem]
    username: str | None
    last_activity: datetime
    # Who it belongs to as people call them, and how many photos a discard would throw away.
    display_name: str | None = None
    photos: int = 0

    @property
    def progress(self) -> float:
        done = sum(1 for i in self.items if i.status in moves.ITEM_DONE)
        return 100.0 * done / len(self.items) if self.items else 0.0


def interrupted(session: Session) -> list[Interrupted]:
    rows = session.exec(
        select(d.InspectionSession)
        .where(col(d.InspectionSession.status).not_in(list(moves.SESSION_ENDS)))
        .order_by(col(d.InspectionSession.updated_at).desc())
    ).all()
    found = []
    for row in rows:
        target = session.get(d.InspectionTarget, row.target_id)
        assert target is not None
        items = session_items(session, row.id)
        user = session.get(d.User, row.user_id) if row.user_id is not None else None
        last = max([row.updated_at, *(i.updated_at for i in items)])
        photos = session.exec(
            select(func.count())
            .select_from(d.InspectionImage)
            .where(d.InspectionImage.session_id == row.id)
        ).one()
        found.append(
            Interrupted(
                row,
                target,
                items,
                user.username if user else None,
                last,
                display_name=(user.full_name or user.username) if user else None,
                photos=int(photos),
            )
        )
    return found
