"""Turning service results into the public response bodies."""

from __future__ import annotations

import json
from typing import Any

from schema import device as d
from schema.formats.criteria_text import criteria_texts
from schema.formats.defects import DEFECT_TYPES
from schema.formats.workflow import ITEM_DONE, SESSION_ENDS
from sidecar.api import schemas as s
from sidecar.domain import access
from sidecar.domain.workflow import (
    VERDICT_NEEDS,
    ItemView,
    may_retry,
    may_skip,
    missing_for_completion,
)
from sidecar.qr.payload import ScannedUnit
from sidecar.services.inspection import Interrupted, SessionDetail

VERDICT_NEEDS_PUBLIC = s.VerdictNeedsPublic.model_validate(
    {result: list(needs) for result, needs in VERDICT_NEEDS.items()}
)


def user(u: d.User) -> s.UserPublic:
    assert u.id is not None
    return s.UserPublic(
        id=u.id,
        username=u.username,
        full_name=u.full_name,
        role=u.role,
        permissions=access.permissions(u.role),
    )


def criteria_text(criteria: dict[str, Any]) -> s.CriteriaTextPublic:
    return s.CriteriaTextPublic(**criteria_texts(criteria))


def item_master(m: d.InspectionItemMaster) -> s.ItemMasterPublic:
    return s.ItemMasterPublic.model_validate(
        {**m.model_dump(), "criteria_text": criteria_text(m.criteria)}
    )


def target_master(m: d.InspectionTargetMaster) -> s.TargetMasterPublic:
    return s.TargetMasterPublic.model_validate(m, from_attributes=True)


def unit(u: ScannedUnit) -> s.UnitPublic:
    return s.UnitPublic(
        product_code=u.product_code,
        batch_id=u.batch_id,
        serial=u.serial,
        format=u.format,
        fields=dict(u.fields),
        raw=u.raw,
    )


def image(i: d.InspectionImage) -> s.ImagePublic:
    return s.ImagePublic.model_validate(i, from_attributes=True)


def ai_result(r: d.AIInspectionResult) -> s.AIResultPublic:
    return s.AIResultPublic(
        id=r.id,
        item_id=r.item_id,
        created_at=r.created_at,
        image_id=r.image_id,
        pipeline_id=r.pipeline_id,
        pipeline_version=r.pipeline_version,
        model_sha256=r.model_sha256,
        overall_result=r.overall_result,
        confidence=r.confidence,
        processing_time=r.processing_time,
        measurements=r.measurements,
        timings=r.timings,
        detailed_results=json.loads(r.detailed_results) if r.detailed_results else None,
        provenance=s.Provenance(
            model_hashes=r.model_hashes,
            image_sha256=r.image_sha256,
            engine_version=r.engine_version,
            execution_provider=r.execution_provider,
            step_timings=[s.StepTiming(**t) for t in r.step_timings] if r.step_timings else None,
        ),
    )


def verification(v: d.HumanVerificationResult, user: d.User | None) -> s.VerificationPublic:
    return s.VerificationPublic(
        id=v.id,
        item_id=v.item_id,
        username=user.username if user else None,
        display_name=(user.full_name or user.username) if user else None,
        overrode_ai=v.overrode_ai,
        created_at=v.created_at,
        final_result=v.final_result,
        notes=v.notes,
        defect_types=v.defect_types,
        severity=v.severity,
        verification_time=v.verification_time,
        ai_result_id=v.ai_result_id,
    )


def session_detail(det: SessionDetail, users: dict[int, d.User]) -> s.SessionPublic:
    row, target = det.session, det.target
    closed = row.status in SESSION_ENDS
    # The rule ``complete`` enforces, asked the same way, so the UI need not know it.
    missing = missing_for_completion(
        (i.item.item_code, ItemView(i.item.status, i.item.required, i.item.result))
        for i in det.items
    )
    return s.SessionPublic(
        id=row.id,
        status=row.status,
        closed=closed,
        can_complete=not closed and not missing,
        missing_items=missing,
        result=row.result,
        product_code=row.product_code,
        product_name=det.master.product_name if det.master else None,
        product_name_en=det.master.product_name_en if det.master else None,
        target_version=target.master_version,
        batch_id=target.batch_id,
        serial=target.serial,
        qr_code=target.qr_code,
        username=det.user.username if det.user else None,
        display_name=(det.user.full_name or det.user.username) if det.user else None,
        started_at=row.started_at,
        completed_at=row.completed_at,
        version=row.version,
        items=[
            s.SessionItemPublic(
                item_id=i.item.item_id,
                item_code=i.item.item_code,
                item_name=i.master.item_name,
                item_name_en=i.master.item_name_en,
                inspection_type=i.master.inspection_type,
                order_sequence=i.item.order_sequence,
                required=i.item.required,
                ai_enabled=i.master.ai_enabled,
                auto_analyse=(i.master.ai_enabled and i.master.pipeline_id is not None
                              and i.master.auto_analyse),
                defect_types=list(i.master.defect_types or DEFECT_TYPES),
                pipeline_id=i.master.pipeline_id,
                criteria=i.master.criteria,
                criteria_text=criteria_text(i.master.criteria),
                status=i.item.status,
                done=i.item.status in ITEM_DONE,
                can_skip=not closed and may_skip(i.item.status, required=i.item.required),
                can_retry=not closed and may_retry(i.item.status, required=i.item.required),
                verdict_needs=VERDICT_NEEDS_PUBLIC,
                result=i.item.result,
                attempts=i.item.attempts,
                images=[image(x) for x in i.images],
                ai_results=[ai_result(x) for x in i.ai_results],
                verifications=[verification(x, users.get(x.user_id)) for x in i.verifications],
            )
            for i in det.items
        ],
    )


def interrupted(x: Interrupted) -> s.InterruptedPublic:
    return s.InterruptedPublic(
        id=x.session.id,
        status=x.session.status,
        product_code=x.session.product_code,
        batch_id=x.target.batch_id,
        serial=x.target.serial,
        username=x.username,
        display_name=x.display_name,
        started_at=x.session.started_at,
        last_activity=x.last_activity,
        progress=round(x.progress, 1),
        photos=x.photos,
        items=[
            s.ItemProgressPublic(
                item_code=i.item_code, status=i.status, done=i.status in ITEM_DONE,
                required=i.required,
            )
            for i in x.items
        ],
    )
