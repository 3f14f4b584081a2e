"""The inspection workflow: session and item states, their legal moves, and the result roll-up.

Session: ``scanning → identified → in_progress → (ai_completed) → human_review → completed``,
with ``failed``, ``cancelled``, ``product_not_found``, ``qr_decode_failed`` as ends.
Item: ``pending → captured → ai_running → ai_completed → verified | skipped | failed``.

Every transition in the product goes through ``check_session`` / ``check_item``; an illegal one
raises ``Conflict`` naming the state it was attempted from.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sidecar.errors import Conflict, InvalidInput

SESSION_ENDS = frozenset(
    {"completed", "failed", "cancelled", "product_not_found", "qr_decode_failed"}
)

SESSION_TRANSITIONS: dict[str, frozenset[str]] = {
    "scanning": frozenset({"identified", "product_not_found", "qr_decode_failed", "cancelled"}),
    "identified": frozenset({"in_progress", "ai_completed", "human_review", "cancelled", "failed"}),
    "in_progress": frozenset(
        {"in_progress", "ai_completed", "human_review", "cancelled", "failed"}
    ),
    "ai_completed": frozenset({"in_progress", "human_review", "cancelled", "failed"}),
    "human_review": frozenset({"in_progress", "ai_completed", "completed", "cancelled", "failed"}),
    **{end: frozenset() for end in SESSION_ENDS},
}

ITEM_TRANSITIONS: dict[str, frozenset[str]] = {
    # A person may judge any item directly (FUNCTION items have no AI; AI may be unavailable).
    "pending": frozenset({"captured", "skipped", "verified"}),
    "captured": frozenset({"captured", "ai_running", "verified"}),
    "ai_running": frozenset({"ai_completed", "failed"}),
    # A new photo or a re-run replaces an AI result the inspector does not trust.
    "ai_completed": frozenset({"captured", "ai_running", "verified"}),
    # A mistaken tap can be corrected until the session completes; every verdict is kept.
    "verified": frozenset({"verified"}),
    "skipped": frozenset({"pending", "captured", "verified"}),
    "failed": frozenset({"captured", "ai_running", "verified"}),
}

ITEM_DONE = frozenset({"verified", "skipped"})
HUMAN_RESULTS = ("OK", "NG", "PENDING")
SEVERITIES = ("minor", "major", "critical")


def check_session(current: str, target: str) -> None:
    allowed = SESSION_TRANSITIONS.get(current)
    if allowed is None:
        raise Conflict(f"unknown session state '{current}'", state=current)
    if target not in allowed:
        if current in SESSION_ENDS:
            message = f"the inspection is already {current}; it cannot become {target}"
        else:
            message = f"an inspection in state '{current}' cannot become '{target}'"
        raise Conflict(message, code="illegal_transition", state=current, target=target)


def check_session_open(current: str) -> None:
    if current in SESSION_ENDS:
        raise Conflict(
            f"the inspection is already {current}; its items can no longer change",
            code="illegal_transition",
            state=current,
        )


def check_item(current: str, target: str, *, required: bool, item_code: str = "") -> None:
    label = f"item {item_code}" if item_code else "the item"
    if target == "skipped" and required:
        raise Conflict(
            f"{label} is required and cannot be skipped", code="item_required", state=current
        )
    allowed = ITEM_TRANSITIONS.get(current)
    if allowed is None:
        raise Conflict(f"unknown item state '{current}'", state=current)
    if target not in allowed:
        raise Conflict(
            f"{label} is '{current}' and cannot become '{target}'",
            code="illegal_transition",
            state=current,
            target=target,
        )


@dataclass(frozen=True)
class ItemView:
    """What the roll-up needs to know of one item."""

    status: str
    required: bool
    result: str | None = None
    ai_enabled: bool = False


def derive_session_status(current: str, items: Iterable[ItemView]) -> str:
    """The in-between session state that follows from the items (ends are set explicitly)."""
    if current in SESSION_ENDS or current == "scanning":
        return current
    items = list(items)
    if not items or all(i.status == "pending" for i in items):
        return "identified" if current == "identified" else current
    open_items = [i for i in items if i.status not in ITEM_DONE]
    if any(i.status in ("pending", "captured", "ai_running", "failed") for i in open_items):
        ai_items = [i for i in items if i.ai_enabled]
        if ai_items and all(i.status in ("ai_completed", *ITEM_DONE) for i in ai_items):
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


def validate_verdict(
    final_result: str, defect_types: list[str] | None, severity: str | None
) -> None:
    """A person's verdict: NG needs what is wrong and how badly (the QA report depends on it)."""
    if final_result not in HUMAN_RESULTS:
        raise InvalidInput(
            f"final_result must be one of {', '.join(HUMAN_RESULTS)}", field="final_result"
        )
    if severity is not None and severity not in SEVERITIES:
        raise InvalidInput(f"severity must be one of {', '.join(SEVERITIES)}", field="severity")
    if defect_types and any(not t.strip() for t in defect_types):
        raise InvalidInput("a defect type cannot be blank", field="defect_types")
    if final_result == "NG":
        if not defect_types:
            raise InvalidInput("an NG verdict needs at least one defect type", field="defect_types")
        if severity is None:
            raise InvalidInput("an NG verdict needs a severity", field="severity")


def ai_agrees(ai_result: str | None, final_result: str) -> bool:
    """Whether a person's verdict confirms the AI's (PENDING_REVIEW agrees with nothing)."""
    return ai_result is not None and ai_result == final_result
