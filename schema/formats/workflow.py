"""The inspection's states and their legal moves: the one list the tablet, the server and the
device database read.

Session: ``scanning → identified → in_progress → (ai_completed) → human_review → completed``,
with ``failed``, ``cancelled``, ``product_not_found``, ``qr_decode_failed`` as ends.
Item: ``pending → captured → ai_running → ai_completed → verified | skipped | failed``.

Pure data and pure functions, so that everything else is built from it rather than written out
again: the device schema's CHECK constraints, the sidecar's 409s (``sidecar.domain.workflow``),
the server's refusal of a pushed or queued status it does not know, and the UI's state names
(checked against these tuples by a test).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# In the order an inspection reaches them; the CHECK constraints list them in this order.
SESSION_STATES: tuple[str, ...] = (
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
ITEM_STATES: tuple[str, ...] = (
    "pending",
    "captured",
    "ai_running",
    "ai_completed",
    "verified",
    "skipped",
    "failed",
)

SESSION_START = "scanning"
ITEM_START = "pending"

SESSION_ENDS = frozenset(
    {"completed", "failed", "cancelled", "product_not_found", "qr_decode_failed"}
)

SESSION_MOVES: Mapping[str, frozenset[str]] = MappingProxyType({
    "scanning": frozenset({"identified", "product_not_found", "qr_decode_failed", "cancelled"}),
    "identified": frozenset({"in_progress", "ai_completed", "human_review", "cancelled", "failed"}),
    "in_progress": frozenset(
        {"in_progress", "ai_completed", "human_review", "cancelled", "failed"}
    ),
    "ai_completed": frozenset({"in_progress", "human_review", "cancelled", "failed"}),
    "human_review": frozenset({"in_progress", "ai_completed", "completed", "cancelled", "failed"}),
    **{end: frozenset() for end in SESSION_ENDS},
})

ITEM_MOVES: Mapping[str, frozenset[str]] = MappingProxyType({
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
})

# Retrying an item is one of its moves, named: a failed item keeps its photo and goes back to be
# judged again; a skipped one goes back to the start.
RETRY_MOVES: Mapping[str, str] = MappingProxyType({"failed": "captured", "skipped": "pending"})

ITEM_DONE = frozenset({"verified", "skipped"})

# A person's verdict on an item, and how bad an NG is: the values a verdict and the session's
# rolled-up result may take.
HUMAN_RESULTS: tuple[str, ...] = ("OK", "NG", "PENDING")
SEVERITIES: tuple[str, ...] = ("minor", "major", "critical")


def is_session_state(value: object) -> bool:
    return isinstance(value, str) and value in SESSION_MOVES


def is_item_state(value: object) -> bool:
    return isinstance(value, str) and value in ITEM_MOVES


def session_may_move(current: str, target: str) -> bool:
    return target in SESSION_MOVES.get(current, frozenset())


def item_may_move(current: str, target: str) -> bool:
    return target in ITEM_MOVES.get(current, frozenset())
