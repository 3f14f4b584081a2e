"""The inspection workflow's rules on the tablet: checking moves, the result roll-up, verdicts.

The states and their legal moves are ``schema.formats.workflow`` (the server and the device
database read the same table); this module turns a move the table does not allow into the
sidecar's ``Conflict`` naming the state it was attempted from. Every state change in the product
goes through ``check_session`` / ``check_item`` (or ``retry_target``, a named move). What the UI
offers is asked of the same checks (``may_skip``, ``may_retry``, ``VERDICT_NEEDS``), so it never
offers a move the sidecar would refuse.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from schema.formats import workflow as moves
from sidecar.errors import Conflict, InvalidInput


def check_session(current: str, target: str) -> None:
    if not moves.is_session_state(current):
        raise Conflict(f"unknown session state '{current}'", state=current)
    if not moves.session_may_move(current, target):
        if current in moves.SESSION_ENDS:
            message = f"the inspection is already {current}; it cannot become {target}"
        else:
            message = f"an inspection in state '{current}' cannot become '{target}'"
        raise Conflict(message, code="illegal_transition", state=current, target=target)


def check_session_open(current: str) -> None:
    if current in moves.SESSION_ENDS:
        raise Conflict(
            f"the inspection is already {current}; its items can no longer change",
            code="illegal_transition",
            state=current,
        )


def _label(item_code: str) -> str:
    return f"item {item_code}" if item_code else "the item"


def _item_refusal(current: str, target: str, required: bool, item_code: str) -> Conflict | None:
    if target == "skipped" and required:
        return Conflict(
            f"{_label(item_code)} is required and cannot be skipped",
            code="item_required",
            state=current,
        )
    if not moves.is_item_state(current):
        return Conflict(f"unknown item state '{current}'", state=current)
    if not moves.item_may_move(current, target):
        return Conflict(
            f"{_label(item_code)} is '{current}' and cannot become '{target}'",
            code="illegal_transition",
            state=current,
            target=target,
        )
    return None


def check_item(current: str, target: str, *, required: bool, item_code: str = "") -> None:
    refusal = _item_refusal(current, target, required, item_code)
    if refusal is not None:
        raise refusal


def may_skip(current: str, *, required: bool) -> bool:
    """Whether ``skip`` would be accepted: the check it runs, asked without raising."""
    return _item_refusal(current, "skipped", required, "") is None


def may_retry(current: str, *, required: bool) -> bool:
    """Whether ``retry`` would be accepted (``retry_target``'s checks, asked without raising)."""
    target = moves.RETRY_MOVES.get(current)
    return target is not None and _item_refusal(current, target, required, "") is None


def retry_target(current: str, *, required: bool, item_code: str = "") -> str:
    """Where retrying an item takes it (the table's named move), checked like any other move."""
    target = moves.RETRY_MOVES.get(current)
    if target is None:
        raise Conflict(
            f"{_label(item_code)} is '{current}'; only "
            f"{' or '.join(moves.RETRY_MOVES)} items are retried",
            code="illegal_transition",
            state=current,
        )
    check_item(current, target, required=required, item_code=item_code)
    return target


@dataclass(frozen=True)
class ItemView:
    """What the roll-up needs to know of one item."""

    status: str
    required: bool
    result: str | None = None
    ai_enabled: bool = False


def derive_session_status(current: str, items: Iterable[ItemView]) -> str:
    """The in-between session state that follows from the items (ends are set explicitly)."""
    if current in moves.SESSION_ENDS or current == moves.SESSION_START:
        return current
    items = list(items)
    if not items or all(i.status == moves.ITEM_START for i in items):
        return "identified" if current == "identified" else current
    open_items = [i for i in items if i.status not in moves.ITEM_DONE]
    if any(i.status in ("pending", "captured", "ai_running", "failed") for i in open_items):
        ai_items = [i for i in items if i.ai_enabled]
        if ai_items and all(i.status in ("ai_completed", *moves.ITEM_DONE) for i in ai_items):
            return "ai_completed"
        return "in_progress"
    # Every item is judged by the AI or by a person: what is left is for a person to confirm.
    return "human_review"


def missing_for_completion(items: Iterable[tuple[str, ItemView]]) -> list[str]:
    """Item codes that keep the session from completing: not verified (nor skipped, if optional)."""
    missing = []
    for code, item in items:
        if item.status == "verified":
            continue
        if item.status == "skipped" and not item.required:
            continue
        missing.append(code)
    return missing


def roll_up(items: Iterable[ItemView]) -> str:
    """The session's result from its items: any NG is NG, else any PENDING is PENDING, else OK."""
    results = [i.result for i in items if i.status == "verified"]
    if "NG" in results:
        return "NG"
    if "PENDING" in results:
        return "PENDING"
    return "OK"


VerdictField = Literal["defect_types", "severity"]

# What a person's verdict must carry, by its result: an NG says what is wrong and how badly (the
# QA report depends on it). ``validate_verdict`` enforces it; the API hands it to the UI's form.
VERDICT_NEEDS: Mapping[str, tuple[VerdictField, ...]] = MappingProxyType(
    {"OK": (), "NG": ("defect_types", "severity"), "PENDING": ()}
)
_NEEDS_SAID: Mapping[VerdictField, str] = MappingProxyType(
    {"defect_types": "at least one defect type", "severity": "a severity"}
)


def validate_verdict(
    final_result: str, defect_types: list[str] | None, severity: str | None
) -> None:
    """A person's verdict: a known result and severity, no blank defect type, and what
    ``VERDICT_NEEDS`` says its result needs."""
    if final_result not in moves.HUMAN_RESULTS:
        raise InvalidInput(
            f"final_result must be one of {', '.join(moves.HUMAN_RESULTS)}", field="final_result"
        )
    if severity is not None and severity not in moves.SEVERITIES:
        raise InvalidInput(
            f"severity must be one of {', '.join(moves.SEVERITIES)}", field="severity"
        )
    if defect_types and any(not t.strip() for t in defect_types):
        raise InvalidInput("a defect type cannot be blank", field="defect_types")
    given: dict[VerdictField, object] = {"defect_types": defect_types, "severity": severity}
    for needed in VERDICT_NEEDS[final_result]:
        if not given[needed]:
            raise InvalidInput(
                f"an {final_result} verdict needs {_NEEDS_SAID[needed]}", field=needed
            )


def ai_agrees(ai_result: str | None, final_result: str) -> bool:
    """Whether a person's verdict confirms the AI's (PENDING_REVIEW agrees with nothing)."""
    return ai_result is not None and ai_result == final_result
