"""The dashboard's counts per day, week and month follow the plant's calendar, not UTC's."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from schema import device as d
from schema.db import Database
from sidecar.services import history

TOKYO = ZoneInfo("Asia/Tokyo")
NEW_YORK = ZoneInfo("America/New_York")
KATHMANDU = ZoneInfo("Asia/Kathmandu")  # +05:45: a quarter hour, not a whole one


def _completed(db: Database, *at_result: tuple[str, str]) -> None:
    with db.atomic() as session:
        target = d.InspectionTarget(product_id="BRK-100", batch_id="A1", qr_code="BRK-100_A1")
        session.add(target)
        for at, result in at_result:
            session.add(d.InspectionSession(
                target_id=target.id, status="completed", result=result, product_code="BRK-100",
                completed_at=datetime.fromisoformat(at).replace(tzinfo=UTC)))


def _days(db: Database, period: history.Period, zone: ZoneInfo | None = None) -> dict[str, int]:
    with db.read() as session:
        found = history.stats(session, period, zone=zone or UTC)
    return {b.period: b.total for b in found}


# (completed at, UTC, zone): the day each falls on in its zone and in UTC
CASES = [
    # 08:30 in Tokyo, the morning shift's first hour, is still yesterday in UTC.
    ("2026-12-02 23:30:00", TOKYO, "2026-12-03", "2026-12-02"),
    ("2026-12-03 14:59:59", TOKYO, "2026-12-03", "2026-12-03"),
    ("2026-12-03 15:00:00", TOKYO, "2026-12-04", "2026-12-03"),
    # Across the change to summer time (07:00 UTC on 8 March 2026 in New York).
    ("2026-03-08 04:30:00", NEW_YORK, "2026-03-07", "2026-03-08"),
    ("2026-03-08 07:30:00", NEW_YORK, "2026-03-08", "2026-03-08"),
    ("2026-07-01 03:59:00", NEW_YORK, "2026-06-30", "2026-07-01"),
    ("2026-07-01 04:00:00", NEW_YORK, "2026-07-01", "2026-07-01"),
    ("2026-12-03 18:14:59", KATHMANDU, "2026-12-03", "2026-12-03"),
    ("2026-12-03 18:15:00", KATHMANDU, "2026-12-04", "2026-12-03"),
]


@pytest.mark.parametrize(("at", "zone", "local_day", "utc_day"), CASES)
def test_an_inspection_counts_on_its_day_in_the_zone(
    device_db: Database, at: str, zone: ZoneInfo, local_day: str, utc_day: str
) -> None:
    _completed(device_db, (at, "OK"))
    assert _days(device_db, "day", zone) == {local_day: 1}
    assert _days(device_db, "day") == {utc_day: 1}


def test_counts_add_up_per_zone_day_week_and_month(device_db: Database) -> None:
    _completed(
        device_db,
        ("2026-11-30 15:30:00", "OK"),   # Tokyo: 1 December, 00:30
        ("2026-11-30 14:30:00", "NG"),   # Tokyo: 30 November, 23:30
        ("2026-12-01 01:00:00", "OK"),   # Tokyo: 1 December, 10:00
        ("2026-12-01 02:00:00", "PENDING"),
    )
    with device_db.read() as session:
        days = history.stats(session, "day", zone=TOKYO)
        months = history.stats(session, "month", zone=TOKYO)
        utc_months = history.stats(session, "month")
        weeks = history.stats(session, "week", zone=TOKYO)
    assert [(b.period, b.total, b.ok, b.ng, b.pending) for b in days] == [
        ("2026-11-30", 1, 0, 1, 0), ("2026-12-01", 3, 2, 0, 1)]
    assert [(b.period, b.total) for b in months] == [("2026-11", 1), ("2026-12", 3)]
    assert [(b.period, b.total) for b in utc_months] == [("2026-11", 2), ("2026-12", 2)]
    # Monday 30 November and Tuesday 1 December: one week, ISO week 49 of 2026 (the year began
    # on a Thursday, so 1 January is in week 1).
    assert [(b.period, b.total) for b in weeks] == [("2026-W49", 4)]


def test_weeks_are_iso_weeks_across_the_turn_of_the_year(device_db: Database) -> None:
    _completed(
        device_db,
        ("2026-12-27 03:00:00", "OK"),   # Tokyo: Sunday 27 December, 2026-W52
        ("2026-12-28 03:00:00", "OK"),   # Tokyo: Monday 28 December, 2026-W53
        ("2027-01-01 03:00:00", "NG"),   # Tokyo: Friday 1 January 2027, still 2026-W53
        ("2027-01-04 03:00:00", "OK"),   # Tokyo: Monday 4 January, 2027-W01
        ("2029-12-31 03:00:00", "OK"),   # Tokyo: Monday 31 December 2029, 2030-W01
    )
    with device_db.read() as session:
        weeks = history.stats(session, "week", zone=TOKYO)
    assert [(b.period, b.total, b.ng) for b in weeks] == [
        ("2026-W52", 1, 0), ("2026-W53", 2, 1), ("2027-W01", 1, 0), ("2030-W01", 1, 0)]


def test_the_range_and_product_filters_still_apply(device_db: Database) -> None:
    _completed(device_db, ("2026-12-02 23:30:00", "OK"), ("2026-12-03 02:00:00", "NG"))
    with device_db.read() as session:
        since = datetime(2026, 12, 3, tzinfo=UTC)
        found = history.stats(session, "day", since=since, zone=TOKYO)
        other = history.stats(session, "day", product="OTHER-1", zone=TOKYO)
    assert [(b.period, b.total, b.ng) for b in found] == [("2026-12-03", 1, 1)]
    assert other == []


ZONES = ["UTC", "Asia/Tokyo", "America/New_York", "Europe/Berlin", "Asia/Kathmandu",
         "Australia/Lord_Howe", "Pacific/Chatham", "America/Santiago", "Asia/Kolkata",
         "America/St_Johns"]


@pytest.mark.parametrize("name", ZONES)
@pytest.mark.parametrize("period", ["day", "week", "month"])
def test_labels_reused_between_midnights_are_the_labels_worked_out_each_time(
    name: str, period: history.Period
) -> None:
    # Two years of quarter hours, summer-time changes (a half hour on Lord Howe, at midnight in
    # Santiago) included, a random tenth of them as the inspections' quarters.
    zone = ZoneInfo(name)
    start = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp()) // 900
    rng = random.Random(name + period)
    quarters = sorted(rng.sample(range(start, start + 2 * 365 * 96), 7000))
    # glibc's ISO year and week, independent of the code under test.
    fmt = {"day": "%Y-%m-%d", "week": "%G-W%V", "month": "%Y-%m"}[period]
    expected = [datetime.fromtimestamp(q * 900, zone).strftime(fmt) for q in quarters]
    assert history.period_labels(quarters, zone, period) == expected


@pytest.mark.parametrize("name", ZONES)
def test_every_quarter_around_each_midnight_gets_its_own_day(name: str) -> None:
    zone = ZoneInfo(name)
    start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()) // 900
    quarters = list(range(start, start + 365 * 96))
    expected = [datetime.fromtimestamp(q * 900, zone).strftime("%Y-%m-%d") for q in quarters]
    assert history.period_labels(quarters, zone, "day") == expected
