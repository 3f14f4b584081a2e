"""Jobs in SQLite: enqueue, claim, finish, fail, cancel, and recovery after a crash.

The order is priority (urgent → low), then position (first come, first served). A job is keyed
by (image, pipeline, pipeline version): enqueueing the same analysis twice returns the job that
exists. A job's result and its ``completed`` status commit in one transaction with the AI result
row, so a crash can never leave a result without its job finished, nor write a result twice.
Every status change is a move of ``sidecar.jobs.states`` (``_move``): one the table does not
allow is a 409 naming the state.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from schema import device as d
from schema.types import utcnow
from sidecar.errors import NotFound
from sidecar.jobs.states import JOB_START, Move, job_may, job_move

PRIORITY_RANK = {"low": 0, "normal": 1, "high": 2, "urgent": 3}

_rank = sa.case(
    *((col(d.AnalysisJob.priority) == name, rank) for name, rank in PRIORITY_RANK.items()),
    else_=1,
)


def _move(session: Session, job: d.AnalysisJob, move: Move) -> None:
    job.status = job_move(job.status, move)
    session.add(job)


def get(session: Session, job_id: str) -> d.AnalysisJob:
    job = session.get(d.AnalysisJob, job_id)
    if job is None:
        raise NotFound(f"no AI job with id {job_id}", job_id=job_id)
    return job


def enqueue(
    session: Session,
    *,
    image_id: str,
    session_id: str,
    item_id: str,
    pipeline_id: str,
    pipeline_version: int,
    priority: str = "normal",
    user_id: int | None = None,
    max_retries: int = 3,
) -> tuple[d.AnalysisJob, bool]:
    """The job for this analysis, and whether it was created now."""
    existing = session.exec(
        select(d.AnalysisJob).where(
            d.AnalysisJob.image_id == image_id,
            d.AnalysisJob.pipeline_id == pipeline_id,
            d.AnalysisJob.pipeline_version == pipeline_version,
        )
    ).first()
    if existing is not None:
        if job_may(existing.status, "retry"):
            # Asking again for a failed analysis is a retry of the same job.
            _move(session, existing, "retry")
            existing.error_message = existing.error_recoverable = None
            existing.suggested_action = None
            existing.retry_count = 0
            existing.position = _next_position(session)
            existing.priority = priority
            return existing, True
        return existing, False
    job = d.AnalysisJob(
        image_id=image_id,
        session_id=session_id,
        item_id=item_id,
        pipeline_id=pipeline_id,
        pipeline_version=pipeline_version,
        priority=priority,
        user_id=user_id,
        position=_next_position(session),
        max_retries=max_retries,
    )
    session.add(job)
    session.flush()
    return job, True


def _next_position(session: Session) -> int:
    top = session.exec(select(func.max(d.AnalysisJob.position))).one()
    return int(top or 0) + 1


def claim_next(session: Session, now: datetime | None = None) -> d.AnalysisJob | None:
    """Take the next waiting job. Callers hold the write lock (``Database.atomic``), so two
    workers never take the same job."""
    job = session.exec(
        select(d.AnalysisJob)
        .where(d.AnalysisJob.status == JOB_START)
        .order_by(_rank.desc(), col(d.AnalysisJob.position))
        .limit(1)
    ).first()
    if job is None:
        return None
    _move(session, job, "claim")
    job.started_at = now or utcnow()
    return job


def waiting_ahead(session: Session, job: d.AnalysisJob) -> int:
    rank = PRIORITY_RANK.get(job.priority, 1)
    return int(
        session.exec(
            select(func.count())
            .select_from(d.AnalysisJob)
            .where(
                d.AnalysisJob.status == JOB_START,
                sa.or_(
                    _rank > rank, sa.and_(_rank == rank, col(d.AnalysisJob.position) < job.position)
                ),
            )
        ).one()
    )


def finish(session: Session, job: d.AnalysisJob, result_id: str) -> None:
    _move(session, job, "finish")
    job.completed_at, job.result_id = utcnow(), result_id
    job.error_message = job.error_recoverable = job.suggested_action = None


def fail(
    session: Session,
    job: d.AnalysisJob,
    message: str,
    *,
    recoverable: bool,
    suggested_action: str | None = None,
) -> bool:
    """Record a failure; a recoverable one goes back to the queue while retries remain.

    Returns True when the job is finally failed (no retry will follow)."""
    again = recoverable and job.retry_count < job.max_retries
    _move(session, job, "requeue" if again else "fail")
    job.error_message, job.error_recoverable = message, recoverable
    job.suggested_action = suggested_action
    if again:
        job.retry_count += 1
        job.started_at = None
        return False
    job.completed_at = utcnow()
    return True


def cancel(session: Session, job_id: str) -> d.AnalysisJob:
    job = get(session, job_id)
    _move(session, job, "cancel")
    job.completed_at = utcnow()
    return job


def recover(session: Session) -> int:
    """After a crash, jobs that were being processed go back to the queue."""
    jobs = session.exec(select(d.AnalysisJob).where(d.AnalysisJob.status == "processing")).all()
    for job in jobs:
        _move(session, job, "requeue")
        job.started_at = None
    return len(jobs)


def log_progress(
    session: Session,
    job: d.AnalysisJob,
    percentage: float,
    stage: str,
    description: str | None = None,
    eta: datetime | None = None,
) -> None:
    session.add(
        d.ProgressLog(
            job_id=job.id,
            progress_percentage=max(0.0, min(100.0, percentage)),
            current_stage=stage,
            stage_description=description,
            estimated_completion=eta,
        )
    )
