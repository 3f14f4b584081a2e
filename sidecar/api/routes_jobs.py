from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlmodel import Session, and_, col, or_, select

from schema import device as d
from sidecar.api.deps import CurrentUser, DbDep, SessionAccess, authorize
from sidecar.api.schemas import Strict
from sidecar.domain import access
from sidecar.domain.access import Action
from sidecar.domain.workflow import check_session_open
from sidecar.errors import Conflict, Forbidden, NotFound
from sidecar.jobs import queue
from sidecar.services import inspection

router = APIRouter(tags=["ai"])

Priority = Literal["low", "normal", "high", "urgent"]


class AnalyseCreate(Strict):
    image_id: str | None = Field(default=None, max_length=64)
    priority: Priority = "normal"


class JobPublic(BaseModel):
    id: str
    status: str
    priority: str
    position: int
    waiting_ahead: int
    session_id: str | None
    item_id: str | None
    image_id: str
    pipeline_id: str
    pipeline_version: int
    retry_count: int
    error_message: str | None
    error_recoverable: bool | None
    suggested_action: str | None
    result_id: str | None
    stage: str | None
    percentage: float | None


def _public(session: Session, job: d.AnalysisJob) -> JobPublic:
    last = session.exec(
        select(d.ProgressLog)
        .where(d.ProgressLog.job_id == job.id)
        .order_by(col(d.ProgressLog.id).desc())
        .limit(1)
    ).first()
    ahead = queue.waiting_ahead(session, job) if job.status == "waiting" else 0
    return JobPublic(
        **job.model_dump(
            include={
                "id",
                "status",
                "priority",
                "position",
                "session_id",
                "item_id",
                "image_id",
                "pipeline_id",
                "pipeline_version",
                "retry_count",
                "error_message",
                "error_recoverable",
                "suggested_action",
                "result_id",
            }
        ),
        waiting_ahead=ahead,
        stage=last.current_stage if last else None,
        percentage=last.progress_percentage if last else None,
    )


def _job(session: Session, user: d.User, job_id: str, action: Action) -> d.AnalysisJob:
    """The job, if ``user`` may do ``action`` on its inspection; another's reads as missing."""
    job = queue.get(session, job_id)
    if job.session_id is not None:
        try:
            authorize(session, user, job.session_id, action)
        except NotFound as exc:
            raise NotFound(f"no AI job with id {job_id}", job_id=job_id) from exc
    elif not access.may(user.role, user.id, job.user_id, Action.READ):
        raise NotFound(f"no AI job with id {job_id}", job_id=job_id)
    elif not access.may(user.role, user.id, job.user_id, action):
        raise Forbidden(f"AI job {job_id} belongs to another inspector", code="not_your_job")
    return job


@router.post(
    "/sessions/{session_id}/items/{item_id}/analyse", status_code=202, dependencies=[SessionAccess]
)
def analyse(
    session_id: str,
    item_id: str,
    body: AnalyseCreate,
    request: Request,
    db: DbDep,
    user: CurrentUser,
) -> JobPublic:
    """Queue the item's pipeline on its newest photo (or the one named)."""
    runner = getattr(request.app.state, "jobs", None)
    if runner is None:
        raise Conflict(
            "on-device AI is turned off on this tablet; judge the item by eye", code="ai_disabled"
        )
    with db.atomic() as session:
        row = inspection.get_session(session, session_id)
        check_session_open(row.status)
        item = inspection.get_item(session, session_id, item_id)
        master = session.get(d.InspectionItemMaster, item_id)
        if master is None or not master.ai_enabled or master.pipeline_id is None:
            raise Conflict(
                f"item {item.item_code} has no AI pipeline; judge it by eye", code="no_pipeline"
            )
        pipeline = session.get(d.Pipeline, master.pipeline_id)
        if pipeline is None:
            raise NotFound(
                f"pipeline {master.pipeline_id} is not on this tablet; sync the masters",
                code="pipeline_missing",
            )
        image_query = select(d.InspectionImage).where(
            d.InspectionImage.session_id == session_id, d.InspectionImage.item_id == item_id
        )
        if body.image_id is not None:
            image_query = image_query.where(d.InspectionImage.id == body.image_id)
        image = session.exec(image_query.order_by(col(d.InspectionImage.created_at).desc())).first()
        if image is None:
            raise Conflict(
                f"item {item.item_code} has no photo to analyse yet",
                code="no_image",
                state=item.status,
            )
        job, _ = queue.enqueue(
            session,
            image_id=image.id,
            session_id=session_id,
            item_id=item_id,
            pipeline_id=pipeline.id,
            pipeline_version=pipeline.version,
            priority=body.priority,
            user_id=user.id,
        )
        public = _public(session, job)
    runner.wake()
    return public


@router.get("/jobs")
def list_jobs(
    db: DbDep,
    user: CurrentUser,
    status: Annotated[
        Literal["waiting", "processing", "completed", "failed", "cancelled"] | None, Query()
    ] = None,
    session_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[JobPublic]:
    with db.read() as session:
        query = select(d.AnalysisJob)
        if status:
            query = query.where(d.AnalysisJob.status == status)
        if session_id:
            query = query.where(d.AnalysisJob.session_id == session_id)
        if not access.sees_everyones(user.role):
            own = select(d.InspectionSession.id).where(d.InspectionSession.user_id == user.id)
            query = query.where(
                or_(
                    col(d.AnalysisJob.session_id).in_(own),
                    and_(col(d.AnalysisJob.session_id).is_(None), d.AnalysisJob.user_id == user.id),
                )
            )
        jobs = session.exec(query.order_by(col(d.AnalysisJob.position).desc()).limit(limit)).all()
        return [_public(session, j) for j in jobs]


@router.get("/jobs/{job_id}")
def get_job(job_id: str, db: DbDep, user: CurrentUser) -> JobPublic:
    with db.read() as session:
        return _public(session, _job(session, user, job_id, Action.READ))


@router.post("/jobs/{job_id}/cancel")
def cancel_job(job_id: str, db: DbDep, user: CurrentUser) -> JobPublic:
    with db.atomic() as session:
        _job(session, user, job_id, Action.WORK)
        job = queue.cancel(session, job_id)
        if job.session_id and job.item_id:
            item = inspection.get_item(session, job.session_id, job.item_id)
            if item.status == "ai_running":
                # The photo stays; the item waits for a new analysis or a person's verdict.
                inspection.mark_ai_failed(session, job.session_id, job.item_id)
        return _public(session, job)
