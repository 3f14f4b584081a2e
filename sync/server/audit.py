"""The server's side of the audit trail: every device's chain kept and judged as it arrives, the
server's own chain of administration, and the verification of both from what is stored.

**Devices' chains.** A tablet's entry (``schema.formats.audit``) arrives as an ``audit_entry``
INSERT in the sync queue and is applied once per (device, ``seq``): ``audit_log`` keeps the
canonical bytes that were hashed (the entry's fields, ``prev_hash`` included, less ``hash``), so
a verification recomputes the hash over what arrived. ``audit_chains`` keeps the verdict per
chain: verified through ``last_seq`` (``last_hash``), or broken at ``broken_seq`` with the reason.
Each arrival verifies only what is new against the kept hash, under a lock on the chain's row,
so processors that apply a device's rows in parallel judge them in sequence; the queue processor
judges the entries of a claimed batch together at its end (``EntryBatch``), with the verdict each
arrival on its own would give. An entry that arrives before the one it follows waits, stored,
until that one comes.
The same ``seq`` arriving again with another hash breaks the chain (and the operation is
refused as a conflict): a chain has one entry per sequence.

**The server's chain** (``SERVER_CHAIN``) holds the server's own actions — masters published,
users, devices — written by ``record`` in the transaction of the change, in the same format: who
(the admin from the admin API, or the console for ``kensa-server``), what (entity, id, action,
field-level before/after), the digest of the row after the change (``server_row``).

**Verification** (``verify``, ``kensa-server audit verify``) reads every chain from the stored
bytes (``schema.formats.audit.verify_stored``) and then each record's newest entry's digest
against the record as it is now: for a device's record, the record's form as the tablet digested
it (its operations as they arrived, folded — ``device_row``) and the server's columns against
those operations; for a master, its row. Records whose operations still wait in the queue are
left for a later run.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from schema import server as s
from schema.formats import audit as fmt
from schema.types import utcnow
from sync.conflicts import ORIGINAL_TIMESTAMPS_KEY, Decision
from sync.errors import ApplyNever
from sync.server import statements

SERVER_CHAIN = s.SERVER_CHAIN
ENTRY_TYPE = "audit_entry"

AUDIT: sa.Table = s.AuditEntry.__table__  # type: ignore[attr-defined]
CHAINS: sa.Table = s.AuditChain.__table__  # type: ignore[attr-defined]
QUEUE: sa.Table = s.TauriSyncQueue.__table__  # type: ignore[attr-defined]
DEVICES: sa.Table = s.Device.__table__  # type: ignore[attr-defined]

_HEX64 = re.compile(r"[0-9a-f]{64}")
# How many stored entries one arrival looks at ahead of the verified point.
CATCH_UP = 1000
ERROR_LIMIT = 2000


# --- who acts on the server -------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """Who the server's own change is by: an admin of the admin API, or the console."""

    user_id: uuid.UUID | None
    username: str | None
    role: str | None
    via: str
    detail: Mapping[str, Any] = field(default_factory=dict)


_ACTOR = "kensa.audit.actor"


def console() -> Actor:
    """``kensa-server`` run on the server's machine: no user of the server, the OS account."""
    try:
        account: str | None = getpass.getuser()
    except Exception:  # no name for this uid (containers)
        account = None
    return Actor(None, None, None, "console", {"os_user": account})


def act_as(session: Session, actor: Actor) -> None:
    """Name who the changes of this unit of work are by (read by ``record`` and ``stamp``)."""
    session.info[_ACTOR] = actor


def actor_of(session: Session) -> Actor:
    found = session.info.get(_ACTOR)
    return found if isinstance(found, Actor) else console()


def admin_actor(session: Session, username: str) -> Actor:
    """The admin of the admin API, as their row reads now."""
    users = s.User.__table__  # type: ignore[attr-defined]
    row = session.execute(
        sa.select(users.c.id, users.c.role).where(users.c.username == username)
    ).first()
    if row is None:
        return Actor(None, username, None, "admin_api")
    return Actor(row.id, username, row.role, "admin_api")


def stamp(session: Session, row: Any, *, created: bool) -> None:
    """``created_by`` (when ``created``) and ``updated_by`` of a master row: the acting user."""
    who = actor_of(session).user_id
    if created and hasattr(row, "created_by"):
        row.created_by = who
    if hasattr(row, "updated_by"):
        row.updated_by = who


# --- record forms and their digests -----------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value


# The server's own records: (entity, table, key column) and columns that change without an
# administrative act (a device's last contact) and so are not part of what is digested.
SERVER_ENTITIES: dict[str, tuple[type[Any], str]] = {
    "user": (s.User, "id"),
    "pipeline": (s.Pipeline, "id"),
    "target": (s.InspectionTargetMaster, "id"),
    "item": (s.InspectionItemMaster, "id"),
    "model": (s.File, "checksum"),
    "device": (s.Device, "id"),
}
VOLATILE = {"device": {"last_applied_seq", "last_seen_at", "app_version"}}
# Never written into an entry's changes (they are still part of the digest).
SECRET = {"password_hash", "token_hash"}


def _table(model: type[Any]) -> sa.Table:
    table: sa.Table = model.__table__
    return table


# Columns added to a record after its audit entries began, left out of the digest while null:
# an entry written before the column existed still matches the row it digested.
ADDED_LATER = {"target": {"product_name_en"}, "item": {"item_name_en"}}


def server_row(entity: str, row: Mapping[str, Any] | sa.RowMapping) -> dict[str, Any]:
    """The form of a server record that its digest covers: every column as JSON text would
    carry it, less the ones that change without an administrative act."""
    skip = VOLATILE.get(entity, set())
    later = ADDED_LATER.get(entity, set())
    return {name: _jsonable(value) for name, value in row.items()
            if name not in skip and not (name in later and value is None)}


def _read_server_row(session: Session, entity: str, key: str) -> dict[str, Any] | None:
    model, column = SERVER_ENTITIES[entity]
    table = _table(model)
    value: Any = key
    if isinstance(table.c[column].type, sa.Uuid):
        try:
            value = uuid.UUID(key)
        except ValueError:
            return None
    found = session.execute(sa.select(table).where(table.c[column] == value)).mappings().first()
    return None if found is None else server_row(entity, found)


def snapshot(session: Session, entity: str, key: str) -> dict[str, Any] | None:
    """The record as stored now (flushing the unit of work first): for ``before`` of a change."""
    session.flush()
    return _read_server_row(session, entity, key)


def _changes(
    before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    if before is None or after is None:
        return None
    out: dict[str, Any] = {}
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old == new or name == "updated_at":
            continue
        if name in SECRET:
            out[name] = {"before": "(not shown)", "after": "(changed)"}
        else:
            out[name] = {"before": old, "after": new}
    return out


def _now_text() -> str:
    return utcnow().strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- appending to a chain ----------------------------------------------------------------------


def _lock_chain(session: Session, chain: str, device_id: uuid.UUID | None) -> Any:
    """The chain's verdict row, created when new, locked for this transaction."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        session.execute(
            pg_insert(CHAINS)
            .values(chain=chain, device_id=device_id, last_hash=fmt.GENESIS)
            .on_conflict_do_nothing()
        )
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        session.execute(
            sqlite_insert(CHAINS)
            .values(chain=chain, device_id=device_id, last_hash=fmt.GENESIS)
            .on_conflict_do_nothing()
        )
    return session.execute(
        sa.select(CHAINS).where(CHAINS.c.chain == chain).with_for_update()
    ).one()


def _text(value: Any, limit: int) -> str | None:
    return value if isinstance(value, str) and len(value) <= limit else None


def _columns(fields: Mapping[str, Any]) -> dict[str, Any]:
    """What ``audit_log`` keeps beside the bytes, for searching (None where it does not fit)."""
    return {
        "entry_id": _text(fields.get("id"), 64),
        "at": _text(fields.get("at"), 40),
        "username": _text(fields.get("username"), 150),
        "entity": _text(fields.get("entity"), 100),
        "entity_id": _text(fields.get("entity_id"), 64),
        "action": _text(fields.get("action"), 50),
        "row_digest": _text(fields.get("row_digest"), 64),
    }


def record(
    session: Session,
    entity: str,
    key: str,
    action: str,
    *,
    before: Mapping[str, Any] | None = None,
    detail: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Append the server's own action to its chain, in the caller's transaction: ``entity`` (one
    of ``SERVER_ENTITIES``) ``key`` after ``action``, with the fields ``before`` changed."""
    after = snapshot(session, entity, key)
    actor = actor_of(session)
    state = _lock_chain(session, SERVER_CHAIN, None)
    fields: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "seq": int(state.last_seq) + 1,
        "at": _now_text(),
        "user_id": None,
        "user_server_id": str(actor.user_id) if actor.user_id else None,
        "username": actor.username,
        "role": actor.role,
        "entity": entity,
        "entity_id": key,
        "action": action,
        "changes": _changes(before, after) if action == "update" else None,
        "reason": None,
        "detail": {"via": actor.via, **actor.detail, **(detail or {})},
        "row_digest": fmt.row_digest(entity, after) if after is not None else None,
        "prev_hash": state.last_hash,
    }
    data = fmt.canonical(fields)
    digest = hashlib.sha256(data).hexdigest()
    session.execute(
        sa.insert(AUDIT).values(
            chain=SERVER_CHAIN, device_id=None, seq=fields["seq"], prev_hash=state.last_hash,
            hash=digest, canonical=data, **_columns(fields),
        )
    )
    if state.status == "ok":
        session.execute(
            sa.update(CHAINS).where(CHAINS.c.chain == SERVER_CHAIN)
            .values(last_seq=fields["seq"], last_hash=digest, updated_at=utcnow())
        )
    return {**fields, "hash": digest}


# --- devices' entries, as they arrive ---------------------------------------------------------


@dataclass(frozen=True)
class Applied:
    decision: Decision
    note: str | None = None


def _entry_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """What the tablet hashed: the operation's data less ``hash`` and the server's own notes
    (keys starting with ``_``, e.g. a clock correction)."""
    return {k: v for k, v in data.items() if k != "hash" and not k.startswith("_")}


@dataclass
class _Verdict:
    """A chain's verdict row as this transaction holds it (locked)."""

    status: str
    last_seq: int
    last_hash: str


def _verdict(found: Any) -> _Verdict:
    return _Verdict(str(found.status), int(found.last_seq), str(found.last_hash))


Owner = Callable[[Session, type[Any], uuid.UUID], uuid.UUID | None]
# The id of a result's current version (its line's newest), for a result that is applied.
Current = Callable[[Session, sa.Table, uuid.UUID], uuid.UUID]


class EntryBatch:
    """What the entries of one claimed batch share, in the processor's transaction: each chain's
    row is locked once (the lock holds until COMMIT) and its verdict kept here, the server's
    users the entries name are looked up once, and the entries kept are verified together when
    the batch's rows are applied (``finish``) — or before a break is recorded — so the verdict is
    the one that judging each arrival on its own gives, for a query per chain instead of two
    per entry."""

    def __init__(self, owner: Owner | None = None, current: Current | None = None) -> None:
        self.owner = owner
        self.current = current
        self._chains: dict[str, _Verdict] = {}
        self._users: dict[tuple[Any, Any], uuid.UUID | None] = {}
        # chain -> entries kept since its last verification
        self._pending: dict[str, int] = {}

    def forget(self) -> None:
        """A savepoint was rolled back: what was read or written under it may be gone."""
        self._chains.clear()
        self._users.clear()

    def state(self, session: Session, chain: str, device: uuid.UUID | None) -> _Verdict:
        found = self._chains.get(chain)
        if found is None:
            found = self._chains[chain] = _verdict(_lock_chain(session, chain, device))
        return found

    def kept(self, chain: str) -> None:
        self._pending[chain] = self._pending.get(chain, 0) + 1

    def catch_up(self, session: Session, chain: str) -> None:
        """Verify what was kept in ``chain`` since its last verification: as many windows of
        ``CATCH_UP`` as entries arrived, as one verification per arrival would."""
        arrivals = self._pending.pop(chain, 0)
        if not arrivals:
            return
        state = self.state(session, chain, uuid.UUID(chain))
        for _ in range(arrivals):
            if _advance(session, chain, state) < CATCH_UP:
                return

    def finish(self, session: Session) -> None:
        for chain in list(self._pending):
            self.catch_up(session, chain)

    def user(self, session: Session, server_id: Any, username: Any) -> uuid.UUID | None:
        key = (server_id, username)
        if key not in self._users:
            self._users[key] = _server_user(session, server_id, username)
        return self._users[key]


def apply_entry(session: Session, row: Any, batch: EntryBatch | None = None) -> Applied:
    """Apply one ``audit_entry`` queue row of a device: keep it once, judge what is new. With a
    ``batch``, the judgment waits for ``batch.finish`` (see ``EntryBatch``)."""
    if row.operation != "INSERT":
        raise ApplyNever("audit entries are only ever inserted")
    data: Mapping[str, Any] = row.data
    fields = _entry_fields(data)
    seq, prev_hash, digest = fields.get("seq"), fields.get("prev_hash"), data.get("hash")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 < seq <= fmt.MAX_SAFE_INTEGER:
        raise ApplyNever(f"audit entry: seq {str(seq)[:40]!r} is not a sequence number")
    for name, value in (("prev_hash", prev_hash), ("hash", digest)):
        if not isinstance(value, str) or not _HEX64.fullmatch(value):
            raise ApplyNever(f"audit entry {seq}: {name} is not 64 lower-case hex digits")
    try:
        canonical = fmt.canonical(fields)
    except fmt.CanonicalError as exc:
        raise ApplyNever(f"audit entry {seq}: {exc}") from exc
    device = uuid.UUID(str(row.device_id))
    chain = str(device)
    if batch is None:
        state = _verdict(_lock_chain(session, chain, device))
    else:
        state = batch.state(session, chain, device)
    inserted = _insert_entry(session, {
        "chain": chain, "device_id": device, "seq": seq, "prev_hash": prev_hash, "hash": digest,
        "canonical": canonical, **_columns(fields),
    })
    if not inserted:
        held = session.execute(
            sa.select(AUDIT.c.hash).where(AUDIT.c.chain == chain, AUDIT.c.seq == seq)
        ).scalar_one()
        if held == digest:
            return Applied(Decision.SKIP)
        reason = (f"a second entry {seq} arrived with another hash "
                  f"({str(digest)[:12]}…, kept {str(held)[:12]}…)")
        if batch is not None:
            # The entries before this one are judged first, as they arrived first.
            batch.catch_up(session, chain)
        _break(session, chain, state, seq, "duplicate_seq", reason)
        return Applied(Decision.CONFLICT, reason)
    if batch is None:
        _advance(session, chain, state)
    else:
        batch.kept(chain)
    attribute(session, device, fields, batch)
    return Applied(Decision.APPLY)


def _server_user(session: Session, server_id: Any, username: Any) -> uuid.UUID | None:
    """The server's user an entry names: by the server's id, else by name; None for nobody."""
    users = _table(s.User)
    if isinstance(server_id, str):
        try:
            key = uuid.UUID(server_id)
        except ValueError:
            key = None
        if key is not None and session.execute(
            sa.select(users.c.id).where(users.c.id == key)
        ).first() is not None:
            return key
    if isinstance(username, str):
        found = session.execute(
            sa.select(users.c.id).where(users.c.username == username)
        ).scalar_one_or_none()
        return found if isinstance(found, uuid.UUID) else None
    return None


def attribute(session: Session, device: uuid.UUID, fields: Mapping[str, Any],
              batch: EntryBatch | None = None) -> None:
    """Who made or changed a device's record, from the entry of its change: ``updated_by`` (and
    ``created_by`` for an insert) of the record — the current version, for a result — when the
    record is the device's own and already applied. An entry of nobody (the job runner) names
    nobody. A record applied after its entry keeps what its own operation named."""
    from sync.server import apply as applying  # the record specs; apply imports this module

    entity, key, action = fields.get("entity"), fields.get("entity_id"), fields.get("action")
    spec = applying.SPECS.get(entity) if isinstance(entity, str) else None
    if spec is None or action not in ("insert", "update") or "updated_by" not in spec.table.c:
        return
    try:
        record_id = uuid.UUID(str(key))
    except ValueError:
        return
    owner = batch.owner if batch is not None and batch.owner is not None else applying.owner_of
    if owner(session, spec.model, record_id) != device:
        return
    if entity in applying.VERSIONED_RESULTS:
        if batch is not None and batch.current is not None:
            record_id = batch.current(session, spec.table, record_id)
        else:
            record_id = applying.result_versions(session, spec.table, record_id)[-1]["id"]
    if batch is None:
        who = _server_user(session, fields.get("user_server_id"), fields.get("username"))
    else:
        who = batch.user(session, fields.get("user_server_id"), fields.get("username"))
    values: dict[str, Any] = {"updated_by": who}
    if action == "insert":
        values["created_by"] = who
    statements.update_row(session, spec.table, record_id, values)


def _insert_entry(session: Session, values: dict[str, Any]) -> bool:
    statement = statements.insert_ignore(session.get_bind().dialect.name, AUDIT)
    return session.execute(statement, values).first() is not None


def _break(session: Session, chain: str, state: _Verdict, seq: int | None, kind: str,
           message: str) -> None:
    if state.status == "broken":
        return
    state.status = "broken"
    session.execute(
        sa.update(CHAINS).where(CHAINS.c.chain == chain).values(
            status="broken", broken_seq=seq, broken_reason=f"{kind}: {message}"[:ERROR_LIMIT],
            updated_at=utcnow(),
        )
    )


def advance(session: Session, chain: str, state: Any) -> None:
    """Verify the stored entries that follow the verified point, in sequence, as far as they
    are all there; record the new point, or where and why the chain broke."""
    _advance(session, chain, _verdict(state))


def _advance(session: Session, chain: str, state: _Verdict) -> int:
    """``advance``, keeping ``state`` up to date; returns how many stored entries it looked at
    (``CATCH_UP`` when there may be more)."""
    if state.status != "ok":
        return 0
    last_seq, last_hash = int(state.last_seq), str(state.last_hash)
    rows = session.execute(
        sa.select(AUDIT.c.seq, AUDIT.c.canonical, AUDIT.c.hash)
        .where(AUDIT.c.chain == chain, AUDIT.c.seq > last_seq)
        .order_by(AUDIT.c.seq).limit(CATCH_UP)
    ).all()
    ready: list[tuple[bytes, str]] = []
    for r in rows:
        if r.seq != last_seq + 1 + len(ready):
            break  # the next one has not arrived yet
        ready.append((bytes(r.canonical), r.hash))
    if not ready:
        return len(rows)
    found = fmt.verify_stored(ready, prev_hash=last_hash, prev_seq=last_seq, strict=True)
    good = ready if found is None else ready[: found.index]
    values: dict[str, Any] = {"updated_at": utcnow()}
    if good:
        values.update(last_seq=last_seq + len(good), last_hash=good[-1][1])
        state.last_seq, state.last_hash = last_seq + len(good), good[-1][1]
    if found is not None:
        values.update(status="broken", broken_seq=found.seq if found.seq is not None
                      else last_seq + found.index + 1,
                      broken_reason=f"{found.kind}: {found.message}"[:ERROR_LIMIT])
        state.status = "broken"
    session.execute(sa.update(CHAINS).where(CHAINS.c.chain == chain).values(**values))
    return len(rows)


# --- verification from what is stored ---------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    chain: str
    device: str
    what: str  # "chain" or "record"
    seq: int | None
    kind: str
    message: str

    def line(self) -> str:
        where = f" entry {self.seq}" if self.seq is not None else ""
        return f"{self.device}{where}: {self.kind}: {self.message}"


@dataclass
class Report:
    chains: int = 0
    entries: int = 0
    records: int = 0
    skipped: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.problems


def _has_entries(session: Session, chain: str) -> bool:
    found = session.execute(sa.select(AUDIT.c.id).where(AUDIT.c.chain == chain).limit(1))
    return found.first() is not None


def _chains(session: Session, device_name: str | None) -> list[tuple[str, str]]:
    """(chain, name to show) of the chains asked for: the server's, and every device's that has
    entries or a verdict (each found through the (chain, seq) index, never by reading the log)."""
    devices = {str(r.id): r.name for r in session.execute(sa.select(DEVICES.c.id, DEVICES.c.name))}
    verdicts = {str(r[0]) for r in session.execute(sa.select(CHAINS.c.chain))}
    candidates = {SERVER_CHAIN, *devices}
    if device_name is not None:
        candidates = {c for c in candidates if c == device_name
                      or devices.get(c, SERVER_CHAIN) == device_name}
        verdicts &= candidates
    known = verdicts | {c for c in candidates if _has_entries(session, c)}
    names = {c: devices.get(c, c) for c in known}
    return sorted(names.items(), key=lambda cn: (cn[0] != SERVER_CHAIN, cn[1]))


def stored_entries(
    session: Session, chain: str, batch: int = 10_000
) -> Iterator[tuple[bytes, str]]:
    """A chain's entries as stored, in sequence, ``batch`` at a time after the last one read. On
    PostgreSQL the pages are read by the driver in binary on the unit of work's connection: the
    bytes come as they are, with no row objects in between."""
    after = 0
    if session.get_bind().dialect.name == "postgresql":
        driver = session.connection().connection.driver_connection
        assert driver is not None
        with driver.cursor(binary=True) as cursor:
            while True:
                cursor.execute(_PAGE, (chain, after, batch))
                page = cursor.fetchall()
                for _, data, digest in page:
                    yield data, digest
                if len(page) < batch:
                    return
                after = page[-1][0]
    while True:
        rows = session.execute(
            sa.select(AUDIT.c.seq, AUDIT.c.canonical, AUDIT.c.hash)
            .where(AUDIT.c.chain == chain, AUDIT.c.seq > after)
            .order_by(AUDIT.c.seq).limit(batch)
        ).all()
        for r in rows:
            yield bytes(r.canonical), r.hash
        if len(rows) < batch:
            return
        after = rows[-1].seq


_PAGE = (
    "SELECT seq, canonical, hash FROM audit_log WHERE chain = %s AND seq > %s "
    "ORDER BY seq LIMIT %s"
)


def verify(session: Session, device_name: str | None = None) -> Report:
    """Every chain asked for, from its stored bytes, then the records' digests."""
    report = Report()
    for chain, name in _chains(session, device_name):
        report.chains += 1
        count, found = verify_chain(session, chain)
        report.entries += count
        if found is not None:
            report.problems.append(Problem(chain, name, "chain", found.seq, found.kind,
                                           found.message))
        else:
            # What only the check on arrival can see (an entry without a field, a second entry
            # under a sequence), and an entry verified then that is gone or changed now.
            kept = _kept_problem(session, chain, name) or _tip_problem(session, chain, name)
            if kept is not None:
                report.problems.append(kept)
        _check_records(session, chain, name, report)
    return report


def verify_chain(session: Session, chain: str) -> tuple[int, fmt.Break | None]:
    """One chain from its stored bytes: how many entries, and the first that breaks it."""
    counted = _Counted(stored_entries(session, chain))
    found = fmt.verify_stored(counted)
    return counted.n, found


class _Counted:
    def __init__(self, inner: Iterator[tuple[bytes, str]]) -> None:
        self.inner, self.n = inner, 0

    def __iter__(self) -> Iterator[tuple[bytes, str]]:
        for item in self.inner:
            self.n += 1
            yield item


def _kept_problem(session: Session, chain: str, name: str) -> Problem | None:
    state = session.execute(sa.select(CHAINS).where(CHAINS.c.chain == chain)).first()
    if state is None or state.status == "ok":
        return None
    kind, _, message = str(state.broken_reason or "broken: ").partition(": ")
    return Problem(chain, name, "chain", state.broken_seq, kind,
                   f"{message} (found when it arrived)")


def _tip_problem(session: Session, chain: str, name: str) -> Problem | None:
    """The verdict kept on arrival against what is stored now: an entry the server verified that
    is gone or changed (the newest one has no successor whose link would tell)."""
    state = session.execute(sa.select(CHAINS).where(CHAINS.c.chain == chain)).first()
    if state is None or not state.last_seq:
        return None
    held = session.execute(
        sa.select(AUDIT.c.hash).where(AUDIT.c.chain == chain, AUDIT.c.seq == state.last_seq)
    ).scalar_one_or_none()
    if held == state.last_hash:
        return None
    return Problem(chain, name, "chain", int(state.last_seq), "verified_entry_changed",
                   f"entry {state.last_seq}, verified on arrival, is "
                   + ("gone" if held is None else "not the one verified"))


def _newest_digests(session: Session, chain: str) -> dict[tuple[str, str], tuple[int, str | None]]:
    """(entity, id) -> (seq, row_digest) of each record's newest entry in the chain."""
    newest = (
        sa.select(AUDIT.c.entity, AUDIT.c.entity_id, sa.func.max(AUDIT.c.seq).label("seq"))
        .where(AUDIT.c.chain == chain, AUDIT.c.entity_id.is_not(None),
               AUDIT.c.action.in_(("insert", "update", "delete", "token", "revoke")))
        .group_by(AUDIT.c.entity, AUDIT.c.entity_id)
        .subquery()
    )
    rows = session.execute(
        sa.select(AUDIT.c.entity, AUDIT.c.entity_id, AUDIT.c.seq, AUDIT.c.row_digest)
        .join(newest, sa.and_(AUDIT.c.chain == chain, AUDIT.c.seq == newest.c.seq))
    ).all()
    return {(r.entity, r.entity_id): (int(r.seq), r.row_digest) for r in rows}


def _check_records(session: Session, chain: str, name: str, report: Report) -> None:
    from sync.server import apply as applying  # the record specs; apply imports this module

    for (entity, key), (seq, digest) in sorted(_newest_digests(session, chain).items(),
                                               key=lambda kv: kv[1][0]):
        if digest is None:
            continue
        if chain == SERVER_CHAIN:
            if entity not in SERVER_ENTITIES:
                continue
            current = _read_server_row(session, entity, key)
            report.records += 1
            if current is None:
                report.problems.append(Problem(chain, name, "record", seq, "record_missing",
                                               f"{entity} {key} is gone"))
            elif fmt.row_digest(entity, current) != digest:
                table = _table(SERVER_ENTITIES[entity][0]).name
                report.problems.append(Problem(
                    chain, name, "record", seq, "record_changed",
                    f"{table} {key} no longer matches the digest of entry {seq}"))
            continue
        if entity not in applying.SPECS:
            continue
        outcome = applying.check_record(session, chain, entity, key, digest)
        if outcome == applying.WAITING:
            report.skipped += 1
            continue
        report.records += 1
        if outcome is not None:
            table = applying.SPECS[entity].table.name
            report.problems.append(Problem(chain, name, "record", seq, "record_changed",
                                           f"{table} {key}: {outcome}"))


# Keys of an operation's data that are not fields of the record: the update's bookkeeping, who
# acted (apply.py), and the user's server id, which the digest leaves out (schema.formats.audit).
NOT_OF_THE_ROW = frozenset({"base_version", "user_server_id", "actor_server_id", "actor_username"})


def device_row(data: Mapping[str, Any]) -> dict[str, Any]:
    """A record as the tablet digested it, from its operations' data folded as they arrived:
    timestamps the server moved back to what was sent, the server's notes (``_…``) and the keys
    that are not the record's (``NOT_OF_THE_ROW``) left out."""
    out = {k: v for k, v in data.items() if not k.startswith("_") and k not in NOT_OF_THE_ROW}
    originals = data.get(ORIGINAL_TIMESTAMPS_KEY)
    if isinstance(originals, Mapping):
        for name, value in originals.items():
            if name in out:
                out[name] = value
    return out


def fold(operations: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The record's data after its INSERT and UPDATEs, each a dict of the fields it set."""
    merged: dict[str, Any] = {}
    originals: dict[str, Any] = {}
    for data in operations:
        merged.update(data)
        found = data.get(ORIGINAL_TIMESTAMPS_KEY)
        for name in data:
            originals.pop(name, None)
        if isinstance(found, Mapping):
            originals.update(found)
    merged.pop(ORIGINAL_TIMESTAMPS_KEY, None)
    if originals:
        merged[ORIGINAL_TIMESTAMPS_KEY] = originals
    return merged


def dumps(report: Report) -> str:
    return json.dumps({
        "chains": report.chains, "entries": report.entries, "records": report.records,
        "records_waiting": report.skipped, "clean": report.clean,
        "problems": [p.__dict__ for p in report.problems],
    })
