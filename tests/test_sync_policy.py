"""The backoff policy, the sync schedule and the batch sizer: pure rules, table-tested."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sync.policy import (
    BackoffPolicy,
    BatchSizer,
    Failure,
    SyncSchedule,
    parse_retry_after,
)

POLICY = BackoffPolicy(base=1.0, cap=60.0)


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(0, 0.0), (1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (50, 60.0), (10_000, 60.0)],
)
def test_ceiling_doubles_up_to_the_cap(attempt: int, ceiling: float) -> None:
    assert POLICY.ceiling(attempt) == ceiling


@pytest.mark.parametrize(
    ("attempt", "rand", "retry_after", "delay"),
    [
        (1, 0.0, None, 0.1),  # full jitter may draw 0: the floor keeps it from spinning
        (1, 0.5, None, 0.5),
        (3, 0.5, None, 2.0),
        (3, 0.999, None, 3.996),
        (20, 0.5, None, 30.0),  # capped ceiling, then jittered
        (1, 0.5, 10.0, 10.0),  # Retry-After is a floor
        (6, 0.9, 10.0, 28.8),  # ... and never shortens a longer backoff
        (1, 0.5, 99_999.0, 3600.0),  # a silly Retry-After is bounded
        (1, 0.5, 0.0, 0.5),
    ],
)
def test_delay_is_full_jitter_with_retry_after_as_floor(
    attempt: int, rand: float, retry_after: float | None, delay: float
) -> None:
    assert POLICY.delay(attempt, rand, retry_after) == pytest.approx(delay)


@pytest.mark.parametrize("rand", [-0.1, 1.0, 2.0])
def test_rand_outside_unit_interval_is_refused(rand: float) -> None:
    with pytest.raises(ValueError):
        POLICY.delay(1, rand)


@pytest.mark.parametrize(
    ("kwargs"), [{"base": 0}, {"base": 5, "cap": 1}, {"factor": 0.5}]
)
def test_nonsense_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(**kwargs)


NOW = datetime(2026, 11, 27, 8, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "server_date", "expected"),
    [
        (None, None, None),
        ("", None, None),
        ("  7 ", None, 7.0),
        ("0", None, 0.0),
        ("soon", None, None),
        ("Fri, 27 Nov 2026 08:00:30 GMT", None, 30.0),
        # Measured against the server's own Date header, not the device's (wrong) clock.
        ("Fri, 27 Nov 2026 08:00:30 GMT", "Fri, 27 Nov 2026 08:00:00 GMT", 30.0),
        ("Sat, 28 Nov 2026 08:00:30 GMT", "Sat, 28 Nov 2026 08:00:20 GMT", 10.0),
        ("Fri, 27 Nov 2026 07:59:00 GMT", None, 0.0),
        ("Fri, 27 Nov 2026 08:00:30 GMT", "garbage", 30.0),
    ],
)
def test_retry_after_parsing(value: str | None, server_date: str | None,
                             expected: float | None) -> None:
    assert parse_retry_after(value, server_date=server_date, now=NOW) == expected


def test_success_resets_backoff_and_schedules_the_next_interval() -> None:
    schedule = SyncSchedule(policy=POLICY, interval=30.0)
    schedule.failed(100.0, Failure.SERVER, rand=0.5)
    schedule.failed(101.0, Failure.SERVER, rand=0.5)
    assert schedule.failures == 2
    assert schedule.succeeded(200.0) == 230.0
    assert schedule.failures == 0 and schedule.online is True
    assert schedule.succeeded(300.0, more_pending=True) == 300.0


@pytest.mark.parametrize(
    ("failure", "online_after"),
    [(Failure.OFFLINE, False), (Failure.SERVER, True), (Failure.AUTH, True),
     (Failure.OTHER, None)],
)
def test_every_failure_schedules_a_retry(failure: Failure, online_after: bool | None) -> None:
    schedule = SyncSchedule(policy=POLICY)
    next_at = schedule.failed(10.0, failure, rand=0.25)
    assert next_at > 10.0  # never "wait for the next local write"
    assert not schedule.due(10.0) and schedule.due(next_at)
    assert schedule.online is online_after


def test_failures_grow_the_delay_until_the_cap() -> None:
    schedule = SyncSchedule(policy=POLICY)
    delays = [schedule.failed(0.0, Failure.SERVER, rand=0.999) for _ in range(10)]
    assert delays == sorted(delays)
    assert delays[-1] == pytest.approx(60.0 * 0.999)


def test_retry_after_is_honoured_by_the_schedule() -> None:
    schedule = SyncSchedule(policy=POLICY)
    assert schedule.failed(0.0, Failure.SERVER, rand=0.0, retry_after=42.0) == 42.0


def test_probe_runs_only_while_offline_and_brings_the_run_forward() -> None:
    schedule = SyncSchedule(policy=BackoffPolicy(base=1.0, cap=300.0), probe_interval=5.0)
    assert not schedule.should_probe(0.0)  # online state unknown: no probing
    for _ in range(5):
        schedule.failed(0.0, Failure.OFFLINE, rand=0.99)
    assert schedule.next_run_at > 15.0
    assert not schedule.should_probe(1.0)  # not before the probe interval
    assert schedule.should_probe(5.0)
    assert schedule.probed(5.0, reachable=False) is False
    assert not schedule.should_probe(6.0) and schedule.should_probe(10.0)
    assert schedule.probed(10.0, reachable=True) is True
    assert schedule.due(10.0) and schedule.online is True
    # Backoff only resets on a successful sync, not on a probe.
    assert schedule.failures == 5


def test_a_server_that_answers_probes_but_fails_each_run_is_left_to_the_backoff() -> None:
    # /ping answers, every push times out (read as offline): before, each probe's success ran a
    # whole push again, every probe interval, whatever the backoff said.
    schedule = SyncSchedule(policy=BackoffPolicy(base=1.0, cap=300.0), probe_interval=2.0)
    schedule.failed(0.0, Failure.OFFLINE, rand=0.99)
    assert schedule.probed(2.0, reachable=True) is True  # once: it may just have come back
    early = [2.0]
    now = 2.0
    for _ in range(6):
        schedule.failed(now, Failure.OFFLINE, rand=0.99)
        now += 2.0
        if schedule.probed(now, reachable=True):
            early.append(now)
    assert early == [2.0]
    assert schedule.next_run_at > now  # the backoff's time, grown with each failure
    # A sync that succeeds gives the next outage its early run back.
    schedule.succeeded(schedule.next_run_at)
    schedule.failed(1000.0, Failure.OFFLINE, rand=0.99)
    assert schedule.probed(1002.0, reachable=True) is True


def test_trigger_only_brings_the_run_forward() -> None:
    schedule = SyncSchedule(policy=POLICY, interval=30.0)
    schedule.succeeded(0.0)
    schedule.trigger(5.0)
    assert schedule.due(5.0)
    schedule.next_run_at = 1.0
    schedule.trigger(5.0)
    assert schedule.next_run_at == 1.0


@pytest.mark.parametrize(
    ("steps", "sizes"),
    [
        (["shrink", "shrink", "grow"], [500, 250, 500]),
        (["single", "grow", "grow"], [1, 2, 4]),
        (["grow"], [1000]),
        (["shrink"] * 12, [500, 250, 125, 62, 31, 15, 7, 3, 1, 1, 1, 1]),
    ],
)
def test_batch_sizer(steps: list[str], sizes: list[int]) -> None:
    sizer = BatchSizer(maximum=1000)
    assert [getattr(sizer, step)() for step in steps] == sizes
