"""Who may do what on a tablet: one matrix of roles x actions.

Several people log in on the same tablet in turn; each one's inspections, photos and verdicts
are theirs. Three roles (the seed system's ``operator`` is the inspector; its ``admin`` is split
into the shift's supervisor and the site's administrator; see the README):

- ``inspector``: their own inspections only: see, work, resume, discard their own.
- ``supervisor``: oversees the shift: sees every inspection on the tablet, discards or restarts
  another's abandoned one, re-judges an item after its inspection was completed (``override``),
  sees the operations the server set aside, lifts a user's lockout. Never records a photo or a
  verdict in someone else's inspection: a verdict names who gave it.
- ``admin``: the site's administrator: connects the tablet and changes its server (where its
  records go and whose logins it trusts), the tablet's users (lockouts) and settings. Before the
  first connect the only account is a local one made with ``kensa user add --role admin``.
  The admin keeps what the ``admin`` role could do before supervisors existed (then it was the
  supervisor's role: every user keeps what they could do): see every inspection, clear an
  abandoned one, lift a lockout, see set-aside operations. It gets none of the
  supervisor's judgment: a site administrator does not re-judge parts.

Actions on one inspection (its photos, verdicts and AI jobs) are granted on the caller's own
(``OWN``) or on anyone's (``ANY``); actions on the tablet itself only as ``ANY``:

- ``read``: see an inspection, its photos, its AI jobs; list it (history, statistics,
  interrupted inspections, jobs);
- ``work``: change it: photos, AI analyses, verdicts, skip, retry, complete, resume;
- ``discard``: end it unfinished (discard, cancel, restart);
- ``override``: re-judge an item after the inspection was completed;
- ``inspect``: scan a code, start an inspection, read the product masters;
- ``set_aside``: see the operations the server set aside, with its reasons;
- ``users``: lift a user's lockout (the users themselves come from the server);
- ``connect``: connect the tablet to a server, or move it to another;
- ``calibrate``: take a camera's calibration photo (its scale for measurements): the shift's
  supervisor, who answers for the measurements.

An unknown role may do nothing, not even with its own rows: roles come from the server, and a
role this version does not know must not be taken for an inspector's.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    INSPECTOR = "inspector"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


ROLES: tuple[str, ...] = tuple(r.value for r in Role)  # the same as ``schema.formats.roles``


class Action(StrEnum):
    READ = "read"
    WORK = "work"
    DISCARD = "discard"
    OVERRIDE = "override"
    INSPECT = "inspect"
    SET_ASIDE = "set_aside"
    USERS = "users"
    CONNECT = "connect"
    CALIBRATE = "calibrate"


class Scope(StrEnum):
    OWN = "own"  # on inspections the caller started
    ANY = "any"  # on anyone's, or on the tablet itself


# Actions on the tablet itself, not on an inspection: no owner, so only ever ``ANY``.
DEVICE_ACTIONS = frozenset({Action.INSPECT, Action.SET_ASIDE, Action.USERS, Action.CONNECT,
                            Action.CALIBRATE})

OWN, ANY = Scope.OWN, Scope.ANY

# The matrix: every role's grants. An action a role is not given here it may not do at all.
# fmt: off
MATRIX: dict[Role, dict[Action, Scope]] = {
    Role.INSPECTOR: {
        Action.READ: OWN, Action.WORK: OWN, Action.DISCARD: OWN,
        Action.INSPECT: ANY,
    },
    Role.SUPERVISOR: {
        Action.READ: ANY, Action.WORK: OWN, Action.DISCARD: ANY,
        Action.OVERRIDE: ANY,
        Action.INSPECT: ANY, Action.SET_ASIDE: ANY, Action.USERS: ANY,
        Action.CALIBRATE: ANY,
    },
    Role.ADMIN: {
        Action.READ: ANY, Action.WORK: OWN, Action.DISCARD: ANY,
        Action.INSPECT: ANY, Action.SET_ASIDE: ANY, Action.USERS: ANY, Action.CONNECT: ANY,
    },
}
# fmt: on


def grant(role: str, action: Action) -> Scope | None:
    """How far ``role`` may do ``action``: on its own inspections, on anyone's, or not at all
    (``None``, also for a role this version does not know)."""
    if role not in ROLES:
        return None
    return MATRIX[Role(role)].get(action)


def may(role: str, user_id: int | None, owner_id: int | None, action: Action) -> bool:
    """Whether a user of ``role`` and id ``user_id`` may do ``action`` on an inspection owned by
    ``owner_id`` (``None``: nobody's, e.g. its user was removed)."""
    scope = grant(role, action)
    if scope is None or user_id is None:
        return False
    return scope is ANY or (owner_id is not None and owner_id == user_id)


def may_do(role: str, action: Action) -> bool:
    """Whether ``role`` may do ``action`` at all: on the tablet (a device action), or on at least
    its own inspections. The API asks this before it looks at any record."""
    return grant(role, action) is not None


def sees_everyones(role: str) -> bool:
    """Whether lists (history, statistics, interrupted inspections, AI jobs) show this role every
    inspector's rows; otherwise they show the caller's own only."""
    return grant(role, Action.READ) is ANY


def permissions(role: str) -> dict[Action, Scope]:
    """What the login answer and ``/auth/me`` carry, so the UI offers only what the role may do
    without a copy of this matrix: action -> ``own`` or ``any``; an unknown role gets nothing."""
    if role not in ROLES:
        return {}
    return dict(MATRIX[Role(role)])
