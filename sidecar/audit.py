"""Writing the tablet's audit trail: one hash-chained entry per change and per security event, in
the caller's unit of work (format: ``schema.formats.audit``).

Every record change passes through ``sidecar.outbox`` (``insert``, ``record_update``,
``record_delete``), which calls ``entry_rows`` here so the record, its outbox row, its audit entry
and the entry's own outbox row are one batch of prepared INSERTs on the unit of work's connection
(``schema.db.insert_rows``): no ORM flush. The previous entry's hash is read in the same
transaction, which holds SQLite's write lock from BEGIN IMMEDIATE, by one query on the primary
key; so the sequence has no gaps and two writers never link to the same entry.

Who acted comes from, in order: ``acting_as`` on the unit of work's session (the command line,
the login itself), else the logged-in user of the HTTP request being served (``RequestContext``,
an ASGI middleware, reads the user the API's login check stored on the request), else nobody (the
job runner, the sync service). Why comes from ``give_reason`` on the session, for the acts the
API asks a reason for (overrides, discards).

Nothing here commits: an entry commits or rolls back with the change it describes. Events whose
request fails (a refused action) are written by the caller in a unit of work of their own.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from schema import device as d
from schema.db import DRIVER_ERRORS, Database, Serialized, insert_rows, sqlite_driver
from schema.formats import audit as fmt
from schema.types import new_id, utcnow

ENTITY_TYPE = "audit_entry"  # the outbox's entity_type of an entry (see schema.formats.audit)
REASON_MAX = 500  # characters: the API bounds a reason to this

log = logging.getLogger("kensa.audit")

_TABLE: sa.Table = d.AuditLog.__table__  # type: ignore[attr-defined]
_OUTBOX: sa.Table = d.Outbox.__table__  # type: ignore[attr-defined]
_ACTOR = "kensa.audit.actor"
_REASON = "kensa.audit.reason"
_LAST = "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"


@dataclass(frozen=True)
class Actor:
    """Who acted, as they were at the time."""

    user_id: int | None
    user_server_id: str | None
    username: str | None
    role: str | None

    @classmethod
    def of(cls, user: d.User) -> Actor:
        return cls(user.id, user.server_id, user.username, user.role)


NOBODY = Actor(None, None, None, None)


def acting_as(session: Session, actor: Actor | d.User | None) -> None:
    """Entries written in this unit of work name ``actor``."""
    session.info[_ACTOR] = Actor.of(actor) if isinstance(actor, d.User) else actor


def give_reason(session: Session, reason: str | None) -> None:
    """Entries written in this unit of work carry ``reason`` (the user's words for why)."""
    session.info[_REASON] = reason


# The request being served: the state dict Starlette keeps the request's ``state`` in. The API's
# login check stores the logged-in user there (``request.state.user``), possibly on another
# thread; the dict is shared, so the user is found wherever the route's work runs.
_request_state: contextvars.ContextVar[MutableMapping[str, Any] | None] = contextvars.ContextVar(
    "kensa_audit_request_state", default=None
)

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


class RequestContext:
    """ASGI middleware: makes the request's logged-in user the actor of what it writes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = _request_state.set(scope.setdefault("state", {}))
        try:
            await self.app(scope, receive, send)
        finally:
            _request_state.reset(token)


def request_user() -> d.User | None:
    state = _request_state.get()
    user = state.get("user") if state is not None else None
    return user if isinstance(user, d.User) else None


def current_actor(session: Session) -> Actor:
    if _ACTOR in session.info:
        found: Actor | None = session.info[_ACTOR]
        return found or NOBODY
    user = request_user()
    return Actor.of(user) if user is not None else NOBODY


def _stamp() -> str:
    # YYYY-MM-DDTHH:MM:SS.ffffffZ: isoformat of a UTC time to the microsecond is that, with
    # "+00:00" for "Z", at a fifth of strftime's cost (and four-digit years before 1000 too).
    return utcnow().isoformat(timespec="microseconds")[:26] + "Z"


def _last(session: Session) -> tuple[int, str]:
    driver = sqlite_driver(session)
    if driver is not None:
        try:
            row = driver.execute(_LAST).fetchone()
        except DRIVER_ERRORS as exc:
            raise sa.exc.DBAPIError.instance(_LAST, (), exc, type(exc)) from exc
    else:
        row = session.connection().exec_driver_sql(_LAST).first()
    return (int(row[0]), str(row[1])) if row is not None else (0, fmt.GENESIS)


def entry_rows(
    session: Session,
    *,
    entity: str,
    entity_id: str | None,
    action: str,
    changes: Mapping[str, Any] | None = None,
    reason: str | None = None,
    detail: Mapping[str, Any] | None = None,
    row_digest: str | None = None,
    actor: Actor | None = None,
) -> list[tuple[sa.Table, dict[str, Any]]]:
    """The next entry and its outbox row, for ``insert_rows`` in the caller's unit of work.

    Raises ``schema.formats.audit.CanonicalError`` for a value with no canonical form."""
    seq, prev_hash = _last(session)
    who = actor or current_actor(session)
    if reason is None:
        reason = session.info.get(_REASON)
    fields: dict[str, Any] = {
        "id": new_id(),
        "seq": seq + 1,
        "at": _stamp(),
        "user_id": who.user_id,
        "user_server_id": who.user_server_id,
        "username": who.username,
        "role": who.role,
        "entity": entity,
        "entity_id": entity_id,
        "action": action,
        "changes": dict(changes) if changes is not None else None,
        "reason": reason,
        "detail": dict(detail) if detail is not None else None,
        "row_digest": row_digest,
        "prev_hash": prev_hash,
    }
    text, digest = fmt.sealed_entry(prev_hash, fields)
    entry = {**fields, "hash": digest}
    return [
        (_TABLE, entry),
        (
            _OUTBOX,
            {
                "op_id": new_id(),
                "entity_type": ENTITY_TYPE,
                "entity_id": entry["id"],
                "operation": "INSERT",
                # The text that was hashed travels as it is: serialising the entry again
                # would cost as much as hashing it.
                "data": Serialized(entry, text),
                "priority": 0,
                "created_at": utcnow(),
            },
        ),
    ]


def record(
    session: Session,
    *,
    entity: str,
    entity_id: str | None,
    action: str,
    changes: Mapping[str, Any] | None = None,
    reason: str | None = None,
    detail: Mapping[str, Any] | None = None,
    row_digest: str | None = None,
    actor: Actor | None = None,
) -> None:
    """Write one entry (an event: a login, a refusal, connecting the device) in the caller's
    unit of work."""
    insert_rows(
        session,
        entry_rows(
            session,
            entity=entity,
            entity_id=entity_id,
            action=action,
            changes=changes,
            reason=reason,
            detail=detail,
            row_digest=row_digest,
            actor=actor,
        ),
    )


def connected(session: Session, detail: dict[str, Any]) -> None:
    """The device was connected to a server (or moved to another): ``SyncService.on_connect``."""
    record(
        session,
        entity="device",
        entity_id=str(detail.get("device_id")),
        action="connect",
        detail=detail,
    )


def record_made_keys(db: Database) -> None:
    """An entry for each login-signing key file this process made (``security.MADE_KEYS``)."""
    from sidecar import security

    while security.MADE_KEYS:
        path = security.MADE_KEYS[0]
        try:
            with db.atomic() as session:
                record(
                    session,
                    entity="signing_key",
                    entity_id=None,
                    action="key_created",
                    detail={"path": str(path)[:500]},
                )
        except sa.exc.SQLAlchemyError:
            # A database that is not there yet (an app built before its migration): the next
            # start that finds one writes the entry.
            log.warning("the signing key made at %s is not in the audit trail yet", path)
            return
        security.MADE_KEYS.pop(0)
