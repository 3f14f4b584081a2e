"""The server queue's rules, table-tested: the retry policy, which database errors are permanent,
who owns a record, and which device timestamps cannot be true — and the HTTP answer a database
error gets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import exc as sa_exc

from sync.conflicts import Decision, clamp_future, decide_owner
from sync.errors import ApplyError, ApplyLater, ApplyNever, NotOwner, SyncError
from sync.server.app import create_app
from sync.server.db_faults import Fault, classify, classify_sqlstate, describe
from sync.server.queue_policy import Failure, RetryPolicy
from sync.server.settings import ServerSettings

POLICY = RetryPolicy(base_s=2.0, cap_s=600.0, max_attempts=25)


@pytest.mark.parametrize(
    ("attempts", "failure", "dead_letter", "delay_s"),
    [
        (1, Failure.LATER, False, 2.0),
        (2, Failure.LATER, False, 4.0),
        (5, Failure.LATER, False, 32.0),
        (9, Failure.LATER, False, 512.0),
        (10, Failure.LATER, False, 600.0),  # capped
        (24, Failure.LATER, False, 600.0),
        (25, Failure.LATER, True, 0.0),  # the last attempt was spent
        (400, Failure.LATER, True, 0.0),
        # Never: at the first attempt, however few were spent.
        (1, Failure.NEVER, True, 0.0),
        (3, Failure.NEVER, True, 0.0),
    ],
)
def test_retry_policy_backs_off_then_dead_letters(
    attempts: int, failure: Failure, dead_letter: bool, delay_s: float
) -> None:
    step = POLICY.after_failure(attempts, failure)
    assert step.dead_letter is dead_letter
    assert step.delay_s == delay_s


def test_a_waiting_row_is_given_hours_not_for_ever() -> None:
    assert 2 * 3600 < POLICY.patience_s() < 4 * 3600
    assert RetryPolicy(base_s=0.0).patience_s() == 0.0
    # A huge attempt count does not overflow the arithmetic.
    assert POLICY.delay_s(10_000) == 600.0


@pytest.mark.parametrize(
    ("base_s", "cap_s", "max_attempts"),
    [(-1.0, 10.0, 3), (20.0, 10.0, 3), (1.0, 10.0, 0)],
)
def test_a_policy_that_makes_no_sense_is_refused(
    base_s: float, cap_s: float, max_attempts: int
) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(base_s=base_s, cap_s=cap_s, max_attempts=max_attempts)


def test_apply_errors_are_sync_errors() -> None:
    for kind in (ApplyLater, ApplyNever, NotOwner):
        assert issubclass(kind, ApplyError) and issubclass(kind, SyncError)
    refused = NotOwner("session x belongs to device a", owner="a")
    assert refused.message == "session x belongs to device a" and refused.detail == {"owner": "a"}


@pytest.mark.parametrize(
    ("sqlstate", "fault"),
    [
        ("22P05", Fault.PERMANENT),  # untranslatable character: NUL in jsonb text
        ("22001", Fault.PERMANENT),  # string data right truncation
        ("22003", Fault.PERMANENT),  # numeric value out of range
        ("22P02", Fault.PERMANENT),  # invalid text representation
        ("23505", Fault.PERMANENT),  # unique violation
        ("23503", Fault.PERMANENT),  # foreign key violation
        ("23514", Fault.PERMANENT),  # check violation
        ("54000", Fault.PERMANENT),  # program limit exceeded
        ("08006", Fault.TRANSIENT),  # connection failure
        ("40001", Fault.TRANSIENT),  # serialization failure
        ("40P01", Fault.TRANSIENT),  # deadlock
        ("53300", Fault.TRANSIENT),  # too many connections
        ("55P03", Fault.TRANSIENT),  # lock not available
        ("57014", Fault.TRANSIENT),  # statement timeout
        ("57P01", Fault.TRANSIENT),  # admin shutdown
        ("57P03", Fault.TRANSIENT),  # cannot connect now
        ("58030", Fault.TRANSIENT),  # I/O error
        ("42601", Fault.UNKNOWN),  # syntax error: ours, not the request's
        ("XX000", Fault.UNKNOWN),
        (None, Fault.UNKNOWN),
        ("", Fault.UNKNOWN),
    ],
)
def test_sqlstates_are_permanent_or_transient(sqlstate: str | None, fault: Fault) -> None:
    assert classify_sqlstate(sqlstate) is fault


class DriverError(Exception):
    """What psycopg raises: an exception with a ``sqlstate``."""

    def __init__(self, message: str, sqlstate: str | None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def wrapped(kind: type[sa_exc.DBAPIError], message: str,
            sqlstate: str | None) -> sa_exc.DBAPIError:
    return kind("INSERT …", {}, DriverError(message, sqlstate))


@pytest.mark.parametrize(
    ("error", "fault"),
    [
        (wrapped(sa_exc.DataError, "unsupported Unicode escape sequence", "22P05"),
         Fault.PERMANENT),
        (wrapped(sa_exc.IntegrityError, "duplicate key", "23505"), Fault.PERMANENT),
        (wrapped(sa_exc.OperationalError, "deadlock detected", "40P01"), Fault.TRANSIENT),
        (wrapped(sa_exc.OperationalError, "terminating connection", "57P01"), Fault.TRANSIENT),
        # SQLite says no SQLSTATE: the class SQLAlchemy chose decides.
        (wrapped(sa_exc.IntegrityError, "CHECK constraint failed", None), Fault.PERMANENT),
        (wrapped(sa_exc.DataError, "bad value", None), Fault.PERMANENT),
        (wrapped(sa_exc.OperationalError, "database is locked", None), Fault.TRANSIENT),
        (wrapped(sa_exc.ProgrammingError, "syntax error", "42601"), Fault.UNKNOWN),
        (wrapped(sa_exc.ProgrammingError, "cannot adapt type", None), Fault.UNKNOWN),
    ],
)
def test_database_errors_are_classified(error: sa_exc.DBAPIError, fault: Fault) -> None:
    assert classify(error) is fault


def test_a_database_error_is_described_on_one_line() -> None:
    error = wrapped(sa_exc.DataError, "value too long\nDETAIL: more", "22001")
    assert describe(error) == "value too long (SQLSTATE 22001)"


@pytest.mark.parametrize(
    ("acting", "owner", "decision"),
    [
        ("tab-01", None, Decision.APPLY),  # not there yet: the inserting device will own it
        ("tab-01", "tab-01", Decision.APPLY),
        ("tab-02", "tab-01", Decision.REJECT),
    ],
)
def test_a_device_writes_only_its_own_records(
    acting: str, owner: str | None, decision: Decision
) -> None:
    assert decide_owner(acting, owner) is decision


NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ((NOW + timedelta(days=3650)).isoformat(), False),  # ten years ahead
        ((NOW + timedelta(hours=1)).isoformat(), False),
        ("2036-12-02T10:00:00", False),  # no zone: read as UTC, as the processor reads it
        ((NOW + timedelta(seconds=119)).isoformat(), True),  # within network delay and drift
        (NOW.isoformat(), True),
        ((NOW - timedelta(days=30)).isoformat(), True),  # an offline month: legitimate
        ("2001-01-01T00:00:00+00:00", True),
        ("tomorrow", True),  # not a timestamp: the processor refuses it, not this rule
    ],
)
def test_future_timestamps_are_corrected_and_the_original_kept(sent: str, kept: bool) -> None:
    data = {"created_at": sent, "started_at": sent, "status": "in_progress", "completed_at": None}
    out, originals = clamp_future(data, NOW, threshold_s=120.0)
    if kept:
        assert out == data and originals == {}
    else:
        assert out["created_at"] == out["started_at"] == NOW.isoformat()
        assert originals == {"created_at": sent, "started_at": sent}
        assert out["status"] == "in_progress" and out["completed_at"] is None
    assert data["created_at"] == sent  # the input is not modified


@pytest.mark.parametrize(
    ("error", "status", "code", "retry_after"),
    [
        (wrapped(sa_exc.DataError, "unsupported Unicode escape sequence", "22P05"), 422,
         "invalid_value", False),
        (wrapped(sa_exc.DataError, "value too long", "22001"), 422, "invalid_value", False),
        (wrapped(sa_exc.IntegrityError, "duplicate key", "23505"), 409,
         "constraint_violation", False),
        (wrapped(sa_exc.IntegrityError, "UNIQUE constraint failed", None), 409,
         "constraint_violation", False),
        (wrapped(sa_exc.OperationalError, "could not serialize access", "40001"), 503,
         "database_unavailable", True),
        (wrapped(sa_exc.OperationalError, "connection refused", "08006"), 503,
         "database_unavailable", True),
        (wrapped(sa_exc.ProgrammingError, "syntax error", "42601"), 503, "database_error", True),
    ],
)
def test_database_errors_answer_by_their_kind(
    tmp_path: Path, error: sa_exc.DBAPIError, status: int, code: str, retry_after: bool
) -> None:
    app = create_app(ServerSettings(data_dir=tmp_path))

    def fail() -> None:
        raise error

    app.add_api_route("/fail", fail)
    answer = TestClient(app, raise_server_exceptions=False).get("/fail")
    assert answer.status_code == status
    body = answer.json()["error"]
    assert body["code"] == code and body["message"]
    assert ("retry-after" in answer.headers) is retry_after
