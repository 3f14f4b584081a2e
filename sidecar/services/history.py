"""Finding past inspections, and the pass/fail counts of the quality dashboard, from local data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any, Literal

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from schema import device as d

Period = Literal["day", "week", "month"]

_BUCKETS: dict[Period, str] = {"day": "%Y-%m-%d", "month": "%Y-%m"}


def _label(local: datetime, period: Period) -> str:
    """The period ``local`` falls in: ``2026-12-03``, ``2026-W49``, ``2026-12``.

    Weeks are ISO 8601's (Monday first; week 1 holds the year's first Thursday), so the last
    days of December can be week 1 of the next year and the first days of January week 52 or
    53 of the one before, as a plant's calendar shows them."""
    if period == "week":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    return local.strftime(_BUCKETS[period])
_QUARTER_S = 900


@dataclass(frozen=True)
class Query:
    inspector: str | None = None
    # Only this user's inspections (an inspector's own view); None: everyone's.
    user_id: int | None = None
    product: str | None = None
    batch: str | None = None
    result: str | None = None
    status: str | None = None
    started_from: datetime | None = None
    started_to: datetime | None = None
    page: int = 1
    page_size: int = 50


@dataclass(frozen=True)
class Row:
    session: d.InspectionSession
    batch_id: str
    username: str | None
    full_name: str | None = None


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    total: int
    page: int
    page_size: int


def _aware(value: datetime) -> datetime:
    # A filter without a zone is read as UTC, the zone everything is stored in.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def search(session: Session, q: Query) -> Page:
    s, t, u = d.InspectionSession, d.InspectionTarget, d.User
    # Filters are on inspection_sessions alone (joins become IN sub-selects), so the count runs
    # on one indexed table; the joins are made only for the page of rows that is shown.
    conditions: list[Any] = []
    if q.inspector:
        # By the name the list shows (the full name) or the one people log in with.
        named = sa.or_(col(u.username) == q.inspector, col(u.full_name) == q.inspector)
        conditions.append(col(s.user_id).in_(select(u.id).where(named)))
    if q.user_id is not None:
        conditions.append(s.user_id == q.user_id)
    if q.product:
        conditions.append(s.product_code == q.product)
    if q.batch:
        conditions.append(col(s.target_id).in_(select(t.id).where(t.batch_id == q.batch)))
    if q.result:
        conditions.append(s.result == q.result)
    if q.status:
        conditions.append(s.status == q.status)
    if q.started_from:
        conditions.append(col(s.started_at) >= _aware(q.started_from))
    if q.started_to:
        conditions.append(col(s.started_at) < _aware(q.started_to))
    total = session.exec(select(func.count()).select_from(s).where(*conditions)).one()
    rows = session.exec(
        select(s, t.batch_id, u.username, u.full_name)
        .join(t, col(t.id) == col(s.target_id))
        .outerjoin(u, col(u.id) == col(s.user_id))
        .where(*conditions)
        .order_by(col(s.started_at).desc(), col(s.id))
        .offset((q.page - 1) * q.page_size)
        .limit(q.page_size)
    ).all()
    return Page(
        rows=[Row(session=r[0], batch_id=r[1], username=r[2], full_name=r[3]) for r in rows],
        total=int(total),
        page=q.page,
        page_size=q.page_size,
    )


@dataclass(frozen=True)
class Bucket:
    period: str
    total: int
    ok: int
    ng: int
    pending: int


# Labels are worked out afresh from this long before each local midnight on: more than any
# zone's summer-time shift, on whichever side of midnight it falls.
_EXACT_BEFORE_MIDNIGHT_S = 3 * 3600


def period_labels(quarters: list[int], zone: tzinfo, period: Period) -> list[str]:
    """The period of ``zone``'s calendar each UTC quarter hour (ascending, as seconds since the
    epoch over 900) falls in.

    A label can change only at a local midnight, so it is worked out once a local day (a year of
    quarters is 35,000; working each out took 135 ms) and near each midnight, and reused in
    between."""
    labels: list[str] = []
    label, reuse_until = "", -1
    for q in quarters:
        at = q * _QUARTER_S
        if at >= reuse_until:
            local = datetime.fromtimestamp(at, zone)
            label = _label(local, period)
            midnight = datetime.combine(local.date() + timedelta(days=1), time(), tzinfo=zone)
            reuse_until = int(midnight.timestamp()) - _EXACT_BEFORE_MIDNIGHT_S
        labels.append(label)
    return labels


def stats(
    session: Session,
    period: Period,
    since: datetime | None = None,
    until: datetime | None = None,
    product: str | None = None,
    user_id: int | None = None,
    zone: tzinfo = UTC,
) -> list[Bucket]:
    """Counts per day, week or month of ``zone``'s calendar; ``user_id`` limits them to that
    user's inspections.

    The plant's days, not UTC's: a morning shift in Japan completes its first hour of
    inspections on the previous day in UTC. SQLite knows no time zones, so the counts are
    grouped by UTC quarter hour in SQL (every zone's offset is a whole number of quarter hours)
    and the quarters into the zone's periods here, summer time included."""
    s = d.InspectionSession
    quarter = (
        sa.cast(func.strftime("%s", s.completed_at), sa.Integer) / _QUARTER_S
    ).label("quarter")
    conditions: list[Any] = [s.status == "completed", col(s.completed_at).is_not(None)]
    if since:
        conditions.append(col(s.completed_at) >= _aware(since))
    if until:
        conditions.append(col(s.completed_at) < _aware(until))
    if product:
        conditions.append(s.product_code == product)
    if user_id is not None:
        conditions.append(s.user_id == user_id)
    query = (
        sa.select(
            quarter,
            func.count(),
            func.sum(sa.case((col(s.result) == "OK", 1), else_=0)),
            func.sum(sa.case((col(s.result) == "NG", 1), else_=0)),
            func.sum(sa.case((col(s.result) == "PENDING", 1), else_=0)),
        )
        .where(*conditions)
        .group_by(quarter)
        .order_by(quarter)
    )
    rows = session.execute(query).all()
    labels = period_labels([int(r[0]) for r in rows], zone, period)
    counts: dict[str, list[int]] = {}
    for label, (_, n, ok, ng, pending) in zip(labels, rows, strict=True):
        into = counts.setdefault(label, [0, 0, 0, 0])
        into[0] += int(n)
        into[1] += int(ok or 0)
        into[2] += int(ng or 0)
        into[3] += int(pending or 0)
    return [
        Bucket(period=label, total=n, ok=ok, ng=ng, pending=pending)
        for label, (n, ok, ng, pending) in sorted(counts.items())
    ]
