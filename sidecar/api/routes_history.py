from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Query
from pydantic import AfterValidator
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
from sidecar.domain import access
from sidecar.errors import Forbidden, InvalidInput
from sidecar.services import history
from sync.device import acks

router = APIRouter(tags=["history"])

Name = Annotated[str | None, Query(max_length=150)]


def _storable(value: datetime | None) -> datetime | None:
    # The store compares in UTC: a time whose UTC falls outside years 1-9999 (year 1 at
    # +14:00, 9999-12-31 at -01:00) cannot be said there, and converting it overflowed into a
    # 500. A time without a zone is UTC, as the history reads it.
    if value is not None and value.tzinfo is not None:
        try:
            value.astimezone(UTC)
        except OverflowError as exc:
            raise ValueError("is outside the years 1 to 9999 in UTC") from exc
    return value


# A point in time a list is limited by.
Moment = Annotated[datetime | None, AfterValidator(_storable)]

# An IANA zone name ("Asia/Tokyo", "America/Argentina/Buenos_Aires", "Etc/GMT-9", "UTC").
ZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$"


def _zone(name: str | None) -> tzinfo:
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"unknown time zone {name!r}", code="timezone_unknown",
                           tz=name) from exc


def _own_only(user: d.User, inspector: str | None) -> int | None:
    """The user id lists are limited to: the caller's own for an inspector, nobody's (all
    rows) for the supervisor. An inspector naming someone else is refused rather than quietly
    shown their own rows, so the UI cannot present one person's work as another's."""
    if access.sees_everyones(user.role):
        return None
    if inspector and inspector not in (user.username, user.full_name):
        raise Forbidden("an inspector sees only their own inspections", code="not_your_inspections")
    assert user.id is not None  # a logged-in user is a stored row
    return user.id


@router.get("/history")
def search(
    db: DbDep,
    user: CurrentUser,
    inspector: Name = None,
    product: Name = None,
    batch: Name = None,
    result: Literal["OK", "NG", "PENDING"] | None = None,
    status: Name = None,
    started_from: Moment = None,
    started_to: Moment = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=200)] = 50,
) -> HistoryPublic:
    q = history.Query(
        inspector=inspector,
        user_id=_own_only(user, inspector),
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
        where = acks.states(session, [r.session.id for r in found.rows])
    return HistoryPublic(
        rows=[
            HistoryRowPublic(
                id=r.session.id,
                status=r.session.status,
                result=r.session.result,
                product_code=r.session.product_code,
                batch_id=r.batch_id,
                username=r.username,
                display_name=r.full_name or r.username,
                started_at=r.session.started_at,
                completed_at=r.session.completed_at,
                sync_state=where[r.session.id],
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
    user: CurrentUser,
    period: Literal["day", "week", "month"] = "day",
    since: Moment = None,
    until: Moment = None,
    product: Name = None,
    tz: Annotated[str | None, Query(max_length=64, pattern=ZONE_PATTERN)] = None,
) -> StatsPublic:
    """Pass/fail counts per day, week or month (the quality dashboard): an inspector's own, or
    everyone's for the supervisor. `tz` is the IANA time zone whose calendar the periods follow
    (the UI sends the tablet's; default UTC): 400 `timezone_unknown` for a zone the tablet's
    time-zone data does not hold. Periods are named `2026-12-03`, ISO 8601 weeks `2026-W49`
    (Monday first, so 1 January 2027 is in `2026-W53`) and `2026-12`."""
    zone = _zone(tz)
    with db.read() as session:
        buckets = history.stats(
            session, period, since, until, product, user_id=_own_only(user, None), zone=zone
        )
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
