"""Who may do what with an inspection on a shared tablet.

Several inspectors log in on the same tablet in turn; each one's inspections, photos and verdicts
are theirs. The supervisor (role ``admin``) oversees the shift: reads everything and may clear
another's abandoned inspection (discard it, or restart it under their own name), but never
records a photo or a verdict in someone else's inspection, since a verdict names who gave it.

Actions:

- ``read``: see an inspection, its photos, its AI jobs; list it (history, statistics,
  interrupted inspections);
- ``work``: change it: photos, AI results and analyses, verdicts, skip, retry, complete, resume;
- ``discard``: end it unfinished (discard, cancel, restart);
- ``record_ai``: put on record an AI result a pipeline produced elsewhere. It names no person, and
  bringing one in is the supervisor's job (the API takes it from admins only), so the supervisor
  may do it on anyone's inspection.

An unknown role may do nothing, not even with its own rows: roles come from the server, and a
role this version does not know must not be taken for an inspector's.
"""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    READ = "read"
    WORK = "work"
    DISCARD = "discard"
    RECORD_AI = "record_ai"


INSPECTOR = "inspector"
ADMIN = "admin"

# What each role may do with an inspection it does not own; the owner may do everything.
_ON_OTHERS: dict[str, frozenset[Action]] = {
    INSPECTOR: frozenset(),
    ADMIN: frozenset({Action.READ, Action.DISCARD, Action.RECORD_AI}),
}


def may(role: str, user_id: int | None, owner_id: int | None, action: Action) -> bool:
    """Whether a user of ``role`` and id ``user_id`` may do ``action`` on an inspection owned by
    ``owner_id`` (``None``: nobody's, e.g. its user was removed)."""
    if role not in _ON_OTHERS or user_id is None:
        return False
    if owner_id is not None and owner_id == user_id:
        return True
    return action in _ON_OTHERS[role]


def sees_everyones(role: str) -> bool:
    """Whether lists (history, statistics, interrupted inspections, AI jobs) show this role every
    inspector's rows; otherwise they show the caller's own only."""
    return Action.READ in _ON_OTHERS.get(role, frozenset())
