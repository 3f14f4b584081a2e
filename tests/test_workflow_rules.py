"""Table tests of the inspection's move table (``schema.formats.workflow``), the rules the
sidecar builds on it (``sidecar.domain.workflow``) and login lockout (``sidecar.domain.lockout``):
pure functions, no database.

The legal moves are written out here rather than read from the module, so that a change to the
state machine shows up as a failing row to look at, not as a silently different table.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from schema.formats import workflow as moves
from sidecar.domain import lockout
from sidecar.domain import workflow as wf
from sidecar.errors import Conflict, InvalidInput

ITEM_STATES = ("pending", "captured", "ai_running", "ai_completed", "verified", "skipped", "failed")
SESSION_STATES = (
    "scanning",
    "identified",
    "in_progress",
    "ai_completed",
    "human_review",
    "completed",
    "failed",
    "cancelled",
    "product_not_found",
    "qr_decode_failed",
)
ENDS = ("completed", "failed", "cancelled", "product_not_found", "qr_decode_failed")

ITEM_MOVES = {
    "pending": {"captured", "skipped", "verified"},
    "captured": {"captured", "ai_running", "verified"},  # a new photo replaces the last
    "ai_running": {"ai_completed", "failed"},
    "ai_completed": {"captured", "ai_running", "verified"},
    "verified": {"verified"},  # a mistaken tap is corrected by a new verdict
    "skipped": {"pending", "captured", "verified"},
    "failed": {"captured", "ai_running", "verified"},  # failed items can be retried
}
SESSION_MOVES = {
    "scanning": {"identified", "product_not_found", "qr_decode_failed", "cancelled"},
    "identified": {"in_progress", "ai_completed", "human_review", "cancelled", "failed"},
    "in_progress": {"in_progress", "ai_completed", "human_review", "cancelled", "failed"},
    "ai_completed": {"in_progress", "human_review", "cancelled", "failed"},
    "human_review": {"in_progress", "ai_completed", "completed", "cancelled", "failed"},
    **{end: set() for end in ENDS},
}


def test_the_tables_cover_every_state() -> None:
    assert moves.ITEM_STATES == ITEM_STATES
    assert moves.SESSION_STATES == SESSION_STATES
    assert set(moves.ITEM_MOVES) == set(ITEM_STATES) == set(ITEM_MOVES)
    assert set(moves.SESSION_MOVES) == set(SESSION_STATES) == set(SESSION_MOVES)
    assert {k: set(v) for k, v in moves.ITEM_MOVES.items()} == ITEM_MOVES
    assert {k: set(v) for k, v in moves.SESSION_MOVES.items()} == SESSION_MOVES
    assert set(ENDS) == moves.SESSION_ENDS
    assert moves.SESSION_START == "scanning" and moves.ITEM_START == "pending"


def test_every_move_leads_to_a_state_of_the_table() -> None:
    for table, states in ((moves.ITEM_MOVES, ITEM_STATES), (moves.SESSION_MOVES, SESSION_STATES)):
        for current, targets in table.items():
            assert targets <= set(states), current


@pytest.mark.parametrize("value", [*ITEM_STATES, "lost", "", "PENDING", " pending", None, 3])
def test_is_item_state(value: object) -> None:
    assert moves.is_item_state(value) is (value in ITEM_STATES)


@pytest.mark.parametrize("value", [*SESSION_STATES, "pending", "paused", "", "COMPLETED", None])
def test_is_session_state(value: object) -> None:
    assert moves.is_session_state(value) is (value in SESSION_STATES)


# --- item transitions -------------------------------------------------------------------------

ITEM_PAIRS = list(itertools.product(ITEM_STATES, ITEM_STATES))


@pytest.mark.parametrize(
    "current,target",
    [pytest.param(c, t, id=f"{c}->{t}") for c, t in ITEM_PAIRS if t in ITEM_MOVES[c]],
)
@pytest.mark.parametrize("required", [True, False], ids=["required", "optional"])
def test_legal_item_move(current: str, target: str, required: bool) -> None:
    if target == "skipped" and required:
        with pytest.raises(Conflict) as caught:
            wf.check_item(current, target, required=required, item_code="V-SCRATCH")
        assert caught.value.code == "item_required"
        assert "V-SCRATCH" in caught.value.message and "required" in caught.value.message
        return
    wf.check_item(current, target, required=required, item_code="V-SCRATCH")


@pytest.mark.parametrize(
    "current,target",
    [pytest.param(c, t, id=f"{c}->{t}") for c, t in ITEM_PAIRS if t not in ITEM_MOVES[c]],
)
def test_illegal_item_move(current: str, target: str) -> None:
    with pytest.raises(Conflict) as caught:
        wf.check_item(current, target, required=False, item_code="D-BORE")
    error = caught.value
    assert error.status_code == 409 and error.code == "illegal_transition"
    assert error.detail == {"state": current, "target": target}
    assert "D-BORE" in error.message and current in error.message and target in error.message


@pytest.mark.parametrize("current", ITEM_STATES)
def test_a_required_item_is_never_skipped(current: str) -> None:
    with pytest.raises(Conflict) as caught:
        wf.check_item(current, "skipped", required=True)
    assert caught.value.code == "item_required"
    assert caught.value.detail == {"state": current}
    assert caught.value.message.startswith("the item is required")


@pytest.mark.parametrize("current,target", [("lost", "captured"), ("pending", "lost")])
def test_unknown_item_states_are_refused(current: str, target: str) -> None:
    with pytest.raises(Conflict):
        wf.check_item(current, target, required=False)


# Retrying is a named move of the table: from failed back to captured (the photo stays), from
# skipped back to the start.
RETRY = {"failed": "captured", "skipped": "pending"}


@pytest.mark.parametrize("current", ITEM_STATES)
def test_retry_is_a_move_of_the_table(current: str) -> None:
    if current not in RETRY:
        with pytest.raises(Conflict) as caught:
            wf.retry_target(current, required=False, item_code="F-PISTON")
        assert caught.value.code == "illegal_transition"
        assert caught.value.detail == {"state": current}
        assert "F-PISTON" in caught.value.message and current in caught.value.message
        return
    target = wf.retry_target(current, required=False, item_code="F-PISTON")
    assert target == RETRY[current]
    assert target in ITEM_MOVES[current]


# What the UI is offered: skip only from pending and only when optional, retry from failed and
# skipped — written out, and each answer the same as the check the move itself runs.
SKIPPABLE = {"pending"}


@pytest.mark.parametrize("current", ITEM_STATES)
@pytest.mark.parametrize("required", [True, False], ids=["required", "optional"])
def test_what_the_ui_is_offered_is_what_the_moves_accept(current: str, required: bool) -> None:
    may_skip = wf.may_skip(current, required=required)
    may_retry = wf.may_retry(current, required=required)
    assert may_skip == (current in SKIPPABLE and not required)
    assert may_retry == (current in RETRY)
    try:
        wf.check_item(current, "skipped", required=required)
    except Conflict:
        assert not may_skip
    else:
        assert may_skip
    try:
        wf.retry_target(current, required=required)
    except Conflict:
        assert not may_retry
    else:
        assert may_retry


def test_the_named_moves_are_moves_of_the_table() -> None:
    assert dict(moves.RETRY_MOVES) == RETRY
    for current, target in moves.RETRY_MOVES.items():
        assert moves.item_may_move(current, target)
    # A posted AI result steps through ai_running from wherever the job runner could start.
    for current in ("captured", "ai_completed", "failed"):
        assert moves.item_may_move(current, "ai_running")
    assert moves.item_may_move("ai_running", "ai_completed")


# --- session transitions ----------------------------------------------------------------------

SESSION_PAIRS = list(itertools.product(SESSION_STATES, SESSION_STATES))


@pytest.mark.parametrize(
    "current,target",
    [pytest.param(c, t, id=f"{c}->{t}") for c, t in SESSION_PAIRS if t in SESSION_MOVES[c]],
)
def test_legal_session_move(current: str, target: str) -> None:
    wf.check_session(current, target)


@pytest.mark.parametrize(
    "current,target",
    [pytest.param(c, t, id=f"{c}->{t}") for c, t in SESSION_PAIRS if t not in SESSION_MOVES[c]],
)
def test_illegal_session_move(current: str, target: str) -> None:
    with pytest.raises(Conflict) as caught:
        wf.check_session(current, target)
    error = caught.value
    assert error.code == "illegal_transition"
    assert error.detail == {"state": current, "target": target}
    assert current in error.message and target in error.message
    if current in ENDS:
        assert f"already {current}" in error.message


def test_an_unknown_session_state_is_refused() -> None:
    with pytest.raises(Conflict) as caught:
        wf.check_session("paused", "completed")
    assert "paused" in caught.value.message


@pytest.mark.parametrize("state", SESSION_STATES)
def test_check_session_open(state: str) -> None:
    if state not in ENDS:
        wf.check_session_open(state)
        return
    with pytest.raises(Conflict) as caught:
        wf.check_session_open(state)
    assert caught.value.code == "illegal_transition"
    assert f"already {state}" in caught.value.message
    assert caught.value.detail == {"state": state}


# --- the session state that follows from the items --------------------------------------------


def v(
    status: str, *, required: bool = True, result: str | None = None, ai: bool = True
) -> wf.ItemView:
    return wf.ItemView(status, required, result, ai)


MANUAL = v("pending", required=False, ai=False)  # an optional item without AI, not done yet

# fmt: off
DERIVE = [
    # current, items, expected
    pytest.param("scanning", [v("captured")], "scanning", id="scanning-stays"),
    pytest.param("completed", [v("pending")], "completed", id="end-stays"),
    pytest.param("cancelled", [v("verified", result="OK")], "cancelled", id="cancelled-stays"),
    pytest.param("identified", [], "identified", id="no-items"),
    pytest.param("identified", [v("pending"), v("pending", ai=False)], "identified",
                 id="nothing-done-yet"),
    pytest.param("in_progress", [v("pending"), v("pending")], "in_progress",
                 id="all-back-to-pending-keeps-state"),
    pytest.param("identified", [v("captured"), v("pending")], "in_progress", id="first-photo"),
    pytest.param("in_progress", [v("ai_running"), v("pending")], "in_progress", id="ai-running"),
    pytest.param("identified", [v("verified", result="OK", ai=False), v("pending")],
                 "in_progress", id="judged-by-hand-first"),
    pytest.param("in_progress", [v("ai_completed"), v("ai_completed"), MANUAL],
                 "ai_completed", id="every-ai-item-judged"),
    pytest.param("in_progress", [v("verified", result="OK"), v("skipped", required=False),
                                 MANUAL], "ai_completed",
                 id="ai-items-done-a-manual-item-open"),
    pytest.param("in_progress", [v("ai_completed"), v("failed"), v("pending", ai=False)],
                 "in_progress", id="an-ai-item-failed"),
    pytest.param("in_progress", [v("ai_completed"), v("ai_completed")], "human_review",
                 id="all-judged-by-ai"),
    pytest.param("ai_completed", [v("verified", result="OK"), v("skipped", required=False)],
                 "human_review", id="all-done"),
    pytest.param("human_review", [v("verified", result="OK"), MANUAL],
                 "ai_completed", id="skip-undone"),
    pytest.param("human_review", [v("captured"), v("verified", result="OK")], "in_progress",
                 id="new-photo-after-review"),
    pytest.param("identified", [v("verified", result="NG", ai=False)], "human_review",
                 id="single-item-verified"),
]
# fmt: on


@pytest.mark.parametrize("current,items,expected", DERIVE)
def test_derive_session_status(current: str, items: list[wf.ItemView], expected: str) -> None:
    assert wf.derive_session_status(current, items) == expected


@pytest.mark.parametrize("current", [s for s in SESSION_STATES if s not in ENDS])
def test_every_derived_state_is_a_legal_move(current: str) -> None:
    # Three items (one without AI) in every combination of states: whatever the items say, the
    # session can move there from where it is (the service checks each move it makes).
    for statuses in itertools.product(ITEM_STATES, repeat=3):
        items = [v(s, ai=i < 2, result="OK" if s == "verified" else None)
                 for i, s in enumerate(statuses)]  # fmt: skip
        derived = wf.derive_session_status(current, items)
        if derived != current:
            wf.check_session(current, derived)


# --- completing and the result ----------------------------------------------------------------

# fmt: off
MISSING = [
    pytest.param([], [], id="no-items"),
    pytest.param([("A", v("verified", result="OK")), ("B", v("verified", result="NG"))], [],
                 id="all-verified"),
    pytest.param([("A", v("verified", result="OK")), ("B", v("skipped", required=False))], [],
                 id="optional-skipped"),
    pytest.param([("A", v("skipped", required=True))], ["A"], id="required-skipped"),
    pytest.param([("A", v("pending", required=False))], ["A"], id="optional-not-done"),
    pytest.param([("A", v("ai_completed")), ("B", v("captured")), ("C", v("ai_running")),
                  ("D", v("failed")), ("E", v("pending")), ("F", v("verified", result="OK"))],
                 ["A", "B", "C", "D", "E"], id="every-open-state-in-order"),
]
# fmt: on


@pytest.mark.parametrize("items,missing", MISSING)
def test_missing_for_completion(items: list[tuple[str, wf.ItemView]], missing: list[str]) -> None:
    assert wf.missing_for_completion(items) == missing


# fmt: off
ROLL_UP = [
    pytest.param([v("verified", result="OK")] * 3, "OK", id="all-ok"),
    pytest.param([v("verified", result="OK"), v("verified", result="NG")], "NG", id="one-ng"),
    pytest.param([v("verified", result="PENDING"), v("verified", result="OK")], "PENDING",
                 id="one-pending"),
    pytest.param([v("verified", result="PENDING"), v("verified", result="NG")], "NG",
                 id="ng-beats-pending"),
    pytest.param([v("verified", result="OK"), v("skipped", required=False)], "OK",
                 id="skipped-does-not-count"),
    pytest.param([v("verified", result="OK"), v("ai_completed", result="NG")], "OK",
                 id="only-verified-results-count"),
]
# fmt: on


@pytest.mark.parametrize("items,result", ROLL_UP)
def test_roll_up(items: list[wf.ItemView], result: str) -> None:
    assert wf.roll_up(items) == result


# --- verdicts ---------------------------------------------------------------------------------

# fmt: off
GOOD_VERDICTS = [
    ("OK", None, None),
    ("OK", ["burr"], "minor"),  # noted although it passes
    ("PENDING", None, None),
    ("NG", ["scratch"], "major"),
    ("NG", ["scratch", "dent"], "critical"),
]
BAD_VERDICTS = [
    ("FINE", None, None, "final_result"),
    ("ng", ["scratch"], "major", "final_result"),
    ("NG", None, None, "defect_types"),
    ("NG", [], "major", "defect_types"),
    ("NG", ["scratch"], None, "severity"),
    ("NG", ["scratch"], "fatal", "severity"),
    ("OK", None, "fatal", "severity"),
    ("NG", [""], "major", "defect_types"),
    ("NG", ["scratch", "   "], "major", "defect_types"),
    ("OK", [""], None, "defect_types"),
]
# fmt: on


def test_the_verdict_rule_the_ui_is_given_is_the_one_enforced() -> None:
    assert dict(wf.VERDICT_NEEDS) == {"OK": (), "NG": ("defect_types", "severity"),
                                      "PENDING": ()}
    assert tuple(wf.VERDICT_NEEDS) == moves.HUMAN_RESULTS
    for final, needs in wf.VERDICT_NEEDS.items():
        wf.validate_verdict(final, ["scratch"], "major")
        for field in needs:  # each need left out alone is refused, naming it
            defects = None if field == "defect_types" else ["scratch"]
            severity = None if field == "severity" else "major"
            with pytest.raises(InvalidInput) as caught:
                wf.validate_verdict(final, defects, severity)
            assert caught.value.detail == {"field": field}


@pytest.mark.parametrize("final,defects,severity", GOOD_VERDICTS)
def test_valid_verdict(final: str, defects: list[str] | None, severity: str | None) -> None:
    wf.validate_verdict(final, defects, severity)


@pytest.mark.parametrize("final,defects,severity,field", BAD_VERDICTS)
def test_invalid_verdict(
    final: str, defects: list[str] | None, severity: str | None, field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        wf.validate_verdict(final, defects, severity)
    assert caught.value.status_code == 400
    assert caught.value.detail == {"field": field}


@pytest.mark.parametrize(
    "ai,final,agrees",
    [
        ("OK", "OK", True),
        ("NG", "NG", True),
        ("OK", "NG", False),
        ("NG", "OK", False),
        ("PENDING_REVIEW", "OK", False),
        ("PENDING_REVIEW", "PENDING", False),
        (None, "OK", False),
    ],
)
def test_ai_agrees(ai: str | None, final: str, agrees: bool) -> None:
    assert wf.ai_agrees(ai, final) is agrees


# --- lockout ----------------------------------------------------------------------------------

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


@pytest.mark.parametrize(
    "locked_until,locked",
    [
        (None, False),
        (NOW + SECOND, True),
        (NOW + lockout.LOCK_FOR, True),
        (NOW, False),  # runs out at that instant
        (NOW - SECOND, False),
    ],
)
def test_is_locked(locked_until: datetime | None, locked: bool) -> None:
    assert lockout.is_locked(lockout.Attempt(lockout.MAX_FAILURES, locked_until), NOW) is locked


@pytest.mark.parametrize(
    "before,after",
    [
        (lockout.Attempt(0, None), lockout.Attempt(1, None)),
        (lockout.Attempt(3, None), lockout.Attempt(4, None)),
        (lockout.Attempt(4, None), lockout.Attempt(5, NOW + lockout.LOCK_FOR)),
        # A lock that has run out starts a fresh count.
        (lockout.Attempt(5, NOW - SECOND), lockout.Attempt(1, None)),
        (lockout.Attempt(5, NOW), lockout.Attempt(1, None)),
    ],
)
def test_after_failure(before: lockout.Attempt, after: lockout.Attempt) -> None:
    assert lockout.after_failure(before, NOW) == after


def test_five_failures_in_a_row_lock_for_a_while() -> None:
    state = lockout.Attempt(0, None)
    for n in range(1, lockout.MAX_FAILURES + 1):
        assert not lockout.is_locked(state, NOW)
        state = lockout.after_failure(state, NOW)
        assert state.failed_attempts == n
    assert lockout.MAX_FAILURES == 5
    assert lockout.is_locked(state, NOW)
    assert lockout.is_locked(state, NOW + lockout.LOCK_FOR - SECOND)
    assert not lockout.is_locked(state, NOW + lockout.LOCK_FOR)


def test_after_success() -> None:
    assert lockout.after_success() == lockout.Attempt(0, None)
