from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from sqlmodel import col, select

from schema import device as d
from sidecar.api import views
from sidecar.api.deps import CurrentUser, DbDep
from sidecar.api.schemas import (
    HistoryPublic,
    HistoryRowPublic,
    StatsBucketPublic,
    StatsPublic,
    TargetMasterPublic,
)
from sidecar.services import history

router = APIRouter(tags=["history"])

Name = Annotated[str | None, Query(max_length=150)]


@router.get("/history")
def search(
    db: DbDep,
    _: CurrentUser,
    inspector: Name = None,
    product: Name = None,
    batch: Name = None,
    result: Literal["OK", "NG", "PENDING"] | None = None,
    status: Name = None,
    started_from: datetime | None = None,
    started_to: datetime | None = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=200)] = 50,
) -> HistoryPublic:
    q = history.Query(
        inspector=inspector,
        product=product,
        batch=batch,
        result=result,
        status=status,
        started_from=started_from,
        started_to=started_to,
        page=page,
        page_size=page_size,
    )
    with db.read() as session:
        found = history.search(session, q)
    return HistoryPublic(
        rows=[
            HistoryRowPublic(
                id=r.session.id,
                status=r.session.status,
                result=r.session.result,
                product_code=r.session.product_code,
                batch_id=r.batch_id,
                username=r.username,
                started_at=r.session.started_at,
                completed_at=r.session.completed_at,
            )
            for r in found.rows
        ],
        total=found.total,
        page=found.page,
        page_size=found.page_size,
    )


@router.get("/stats")
def stats(
    db: DbDep,
    _: CurrentUser,
    period: Literal["day", "week", "month"] = "day",
    since: datetime | None = None,
    until: datetime | None = None,
    product: Name = None,
) -> StatsPublic:
    """Pass/fail counts per day, week or month (the quality dashboard)."""
    with db.read() as session:
        buckets = history.stats(session, period, since, until, product)
    return StatsPublic(
        period=period,
        buckets=[StatsBucketPublic(**b.__dict__) for b in buckets],
    )


@router.get("/masters/targets")
def targets(db: DbDep, _: CurrentUser) -> list[TargetMasterPublic]:
    with db.read() as session:
        rows = session.exec(
            select(d.InspectionTargetMaster)
            .where(col(d.InspectionTargetMaster.deleted_at).is_(None))
            .order_by(col(d.InspectionTargetMaster.product_code))
        ).all()
        return [views.target_master(r) for r in rows]
