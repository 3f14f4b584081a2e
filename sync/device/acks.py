"""How far each inspection's records got: on this tablet, received by the server, applied there,
or needing a person's attention.

An operation leaves the outbox once the server has stored it; at that moment the highest sequence
of each inspection's operations is kept (``inspection_sync``, written by ``SqliteOutbox.delete``
in the same transaction). The server's changes feed says up to which sequence everything of this
tablet is applied (``Acks``, kept as the ``acks`` cursor in ``sync_state``), and lists each
operation that ended otherwise, which the tablet keeps set aside (``sync.device.refused``). So an
inspection is

- **attention** when one of its operations is set aside (the server refused it, or refused it for
  good after storing it: a conflict, a rejection, a dead letter);
- **local** when one of its operations still waits in the outbox;
- **received** when all have left the outbox but the newest is above the applied watermark;
- **applied** otherwise.

Everything is read from what is stored, so the status bar, the history and ``GET /sync/status``
agree whichever process synced.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa
from sqlmodel import Session

from schema.db import Database
from sync.device import state
from sync.protocol import Acks

STREAM = "acks"

SyncState = Literal["local", "received", "applied", "attention"]

# The inspection an outbox row belongs to, by its entity (NULL: none, or not on the tablet any
# more). Targets are left out: a target is written with its inspection's first operations, and
# finding its inspection would be a scan.
SESSION_OF_OP = """CASE o.entity_type
    WHEN 'inspection_session' THEN o.entity_id
    WHEN 'inspection_session_item' THEN
        (SELECT session_id FROM inspection_session_items WHERE id = o.entity_id)
    WHEN 'inspection_image' THEN (SELECT session_id FROM inspection_images WHERE id = o.entity_id)
    WHEN 'ai_inspection_result' THEN
        (SELECT session_id FROM ai_inspection_results WHERE id = o.entity_id)
    WHEN 'human_verification_result' THEN
        (SELECT session_id FROM human_verification_results WHERE id = o.entity_id)
    WHEN 'signature' THEN (SELECT session_id FROM signatures WHERE id = o.entity_id)
END"""

# Run in the transaction that deletes the pushed rows, before it does.
RECORD_RECEIVED = (
    "INSERT INTO inspection_sync (session_id, received_through_seq) "  # noqa: S608 (ours)
    f"SELECT sid, max(seq) FROM (SELECT o.seq AS seq, {SESSION_OF_OP} AS sid FROM outbox o "
    "WHERE o.seq IN :seqs) WHERE sid IS NOT NULL GROUP BY sid "
    "ON CONFLICT (session_id) DO UPDATE SET received_through_seq = "
    "max(received_through_seq, excluded.received_through_seq)"
)

_WAITING = sa.text(
    f"SELECT DISTINCT {SESSION_OF_OP} AS sid, "  # noqa: S608 (a fragment of ours)
    "o.set_aside_at IS NOT NULL AS aside FROM outbox o"
)


def store(session: Session, acks: Acks) -> None:
    state.set_cursor(session, STREAM, str(acks.applied_through_seq))


def applied_through(session: Session) -> int:
    cursor = state.get(session, STREAM).cursor
    return int(cursor) if cursor and cursor.isdigit() else 0


@dataclass(frozen=True)
class Standing:
    """The inspections that are not (yet) simply applied, as of one read."""

    attention: frozenset[str]
    local: frozenset[str]
    received: frozenset[str]

    def of(self, session_id: str) -> SyncState:
        if session_id in self.attention:
            return "attention"
        if session_id in self.local:
            return "local"
        if session_id in self.received:
            return "received"
        return "applied"


def standing(session: Session) -> Standing:
    attention: set[str] = set()
    local: set[str] = set()
    for sid, aside in session.execute(_WAITING).all():
        if sid is not None:
            (attention if aside else local).add(sid)
    watermark = applied_through(session)
    received = {
        row[0]
        for row in session.execute(
            sa.text("SELECT session_id FROM inspection_sync WHERE received_through_seq > :w"),
            {"w": watermark},
        ).all()
    }
    return Standing(
        attention=frozenset(attention),
        local=frozenset(local - attention),
        received=frozenset(received - local - attention),
    )


@dataclass(frozen=True)
class Counts:
    local: int
    received: int
    applied: int
    attention: int


def counts(db: Database) -> Counts:
    """How many inspections stand where, over every inspection on the tablet."""
    with db.read() as session:
        now = standing(session)
        total = int(
            session.execute(sa.text("SELECT count(*) FROM inspection_sessions")).scalar() or 0
        )
        # An inspection deleted since its operations were counted is no inspection any more.
        present = _present(session, now.attention | now.local | now.received)
    attention = len(now.attention & present)
    local = len(now.local & present)
    received = len(now.received & present)
    return Counts(local=local, received=received, attention=attention,
                  applied=max(0, total - attention - local - received))


def states(session: Session, ids: Iterable[str]) -> dict[str, SyncState]:
    """Each of these inspections' sync state."""
    now = standing(session)
    return {sid: now.of(sid) for sid in ids}


def _present(session: Session, ids: frozenset[str]) -> frozenset[str]:
    if not ids:
        return frozenset()
    found: set[str] = set()
    listed = sorted(ids)
    for start in range(0, len(listed), 500):
        rows = session.execute(
            sa.text("SELECT id FROM inspection_sessions WHERE id IN :ids").bindparams(
                sa.bindparam("ids", expanding=True)
            ),
            {"ids": listed[start : start + 500]},
        ).all()
        found.update(r[0] for r in rows)
    return frozenset(found)
