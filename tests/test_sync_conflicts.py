"""Conflict rules and device-clock correction: pure, table-tested."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sync.conflicts import (
    REASON_CODES,
    REASON_LIMIT,
    Decision,
    bounded_reason,
    clock_offset,
    correct_timestamps,
    decide_delete,
    decide_insert,
    decide_update,
    may_overwrite_pulled,
    reason_code,
)


@pytest.mark.parametrize(("exists", "decision"), [(False, Decision.APPLY), (True, Decision.SKIP)])
def test_inserts_are_append_only(exists: bool, decision: Decision) -> None:
    assert decide_insert(exists) is decision


@pytest.mark.parametrize(
    ("current", "base", "decision"),
    [
        (None, 1, Decision.RETRY),  # the INSERT is not applied yet
        (1, 1, Decision.APPLY),
        (1, 2, Decision.RETRY),  # update 2->3 arrived before 1->2
        # The server's record took version 2 in a change the device never saw; the device's
        # own 1->2 is another history, not a redelivery (the queue takes an op id once).
        (2, 1, Decision.CONFLICT),
        (5, 1, Decision.CONFLICT),
    ],
)
def test_updates_apply_only_against_their_base_version(
    current: int | None, base: int, decision: Decision
) -> None:
    assert decide_update(current, base) is decision


@pytest.mark.parametrize(
    ("current", "base", "insert_pending", "decision"),
    [
        (None, 1, False, Decision.SKIP),  # already gone
        (None, 1, True, Decision.RETRY),  # its INSERT is still queued
        (1, 2, False, Decision.RETRY),
        (2, 2, False, Decision.APPLY),
        (3, 2, False, Decision.CONFLICT),
    ],
)
def test_deletes(current: int | None, base: int, insert_pending: bool, decision: Decision) -> None:
    assert decide_delete(current, base, insert_pending) is decision


@pytest.mark.parametrize(("pending", "allowed"), [(True, False), (False, True)])
def test_pulled_rows_never_overwrite_pending_local_changes(pending: bool, allowed: bool) -> None:
    assert may_overwrite_pulled(pending) is allowed


SERVER_NOW = datetime(2026, 11, 27, 16, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("skew", "field_value", "expected"),
    [
        # A day ahead: 08:00 "tomorrow" by the tablet is 08:00 today.
        (timedelta(days=1), "2026-11-28T08:00:00+00:00", "2026-11-27T08:00:00+00:00"),
        (timedelta(days=-1), "2026-11-26T08:00:00+00:00", "2026-11-27T08:00:00+00:00"),
        # Seconds of difference are network delay and drift: left alone.
        (timedelta(seconds=30), "2026-11-27T08:00:00+00:00", "2026-11-27T08:00:00+00:00"),
        # A move past the calendar's ends is kept as sent, not a 500 for the whole batch.
        (timedelta(days=1), "0001-01-01T00:00:00+00:00", "0001-01-01T00:00:00+00:00"),
        (timedelta(days=-1), "9999-12-31T23:00:00", "9999-12-31T23:00:00"),
    ],
)
def test_device_timestamps_move_onto_the_server_clock(
    skew: timedelta, field_value: str, expected: str
) -> None:
    offset = clock_offset(SERVER_NOW + skew, SERVER_NOW)
    data = {"started_at": field_value, "status": "completed", "completed_at": None,
            "created_at": "not a time"}
    out = correct_timestamps(data, offset)
    assert out["started_at"] == expected
    assert out["status"] == "completed" and out["completed_at"] is None
    assert out["created_at"] == "not a time"
    assert data["started_at"] == field_value  # the input is not modified


# (kind, entity type, the server's reason) -> the code the tablet words
REFUSALS = {
    "version conflict": ("conflict", "inspection_session", "server holds version 3",
                         "version_conflict"),
    "audit chain": ("conflict", "audit_entry", "entry 4 differs", "audit_chain_conflict"),
    "another device's record": ("rejected", "inspection_session", "owned by TAB-02",
                                "other_device"),
    "waited too long": ("dead_letter", "inspection_image", "gave up after 25 attempts: parent",
                        "gave_up_waiting"),
    "can never apply": ("dead_letter", "inspection_session", "completed_at: 'x' is not a time",
                        "cannot_apply"),
}


@pytest.mark.parametrize(("kind", "entity", "reason", "code"), REFUSALS.values(),
                         ids=REFUSALS.keys())
def test_every_refusal_has_a_code_the_ui_words(kind: str, entity: str, reason: str,
                                                code: str) -> None:
    assert reason_code(kind, entity, reason) == code
    assert code in REASON_CODES


def test_the_servers_reason_travels_bounded() -> None:
    assert bounded_reason("short") == "short"
    long = bounded_reason("x" * 5000)
    assert len(long) == REASON_LIMIT and long.endswith("…")
