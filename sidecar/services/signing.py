"""Electronic signatures: the user's password entered again, checked offline like a login, and
the signature stored bound to the record it signs (which acts need one: ``domain.signatures``).

A wrong password counts toward the login lockout (``domain.lockout``) exactly as a failed login
from the same client does, and is on the audit trail as one (``login_failed``, why
``bad_signature``): signing is no way around it. A user locked at that client cannot sign
there until the lock runs out or a supervisor unlocks them.

``check`` owns nothing: the caller commits its unit of work before answering a failure, so the
count survives the error (see the API). ``record`` writes the signature with its outbox row in
the caller's unit of work, the same one as the change it signs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from schema import device as d
from schema.types import utcnow
from sidecar import audit, outbox, security
from sidecar.domain import lockout
from sidecar.domain.signatures import Meaning
from sidecar.errors import Locked, Unauthorized


class SignatureInvalid(Unauthorized):
    """401: the password entered to sign is not the user's."""

    code = "signature_invalid"


@dataclass(frozen=True)
class Signer:
    """A user whose password was just checked, and the meaning they said they sign with."""

    user: d.User
    meaning: str


def _locked(until: datetime) -> Locked:
    return Locked(
        f"too many failed attempts; the account is locked until "
        f"{until.isoformat(timespec='seconds')}",
        locked_until=until.isoformat(),
    )


def check(
    session: Session,
    user: d.User,
    password: str,
    meaning: str,
    *,
    source: str = lockout.UNKNOWN_SOURCE,
    now: datetime | None = None,
) -> Signer:
    """The signer, if ``password`` is ``user``'s; else ``SignatureInvalid`` (or ``Locked`` when
    this failure locks them, or they were locked already), with the failure counted at
    ``source`` and for the user across sources, as a failed login is."""
    now = now or utcnow()
    assert user.id is not None
    row = session.get(d.LoginSource, (user.id, source))
    state = (
        lockout.Attempt(row.failed_attempts, row.locked_until) if row else lockout.Attempt(0, None)
    )
    if lockout.is_locked(state, now):
        assert state.locked_until is not None
        raise _locked(state.locked_until)
    if security.verify_password(user.password_hash, password):
        return Signer(user=user, meaning=meaning)
    if row is None:
        row = d.LoginSource(user_id=user.id, source=source)
    state = lockout.after_failure(state, now)
    row.failed_attempts, row.locked_until = state.failed_attempts, state.locked_until
    row.last_failed_at = now
    # The user may be the API's copy from another session: count on this session's own row.
    counted = session.get(d.User, user.id)
    assert counted is not None
    counted.failed_attempts += 1
    session.add_all([row, counted])
    # On the audit trail like a failed login, committed with the counts.
    actor = audit.Actor.of(user)
    detail = {"source": source, "why": "bad_signature", "meaning": meaning}
    audit.record(
        session,
        entity="user",
        entity_id=user.username,
        action="login_failed",
        detail=detail,
        actor=actor,
    )
    if state.locked_until is not None:
        audit.record(
            session,
            entity="user",
            entity_id=user.username,
            action="lockout",
            detail={"source": source, "locked_until": state.locked_until.isoformat()},
            actor=actor,
        )
        raise _locked(state.locked_until)
    raise SignatureInvalid(
        "the password does not match; the signature was not accepted",
        attempts_left=lockout.MAX_FAILURES - state.failed_attempts,
    )


def digest(session: Session, record: outbox.Entity) -> str:
    """The digest of ``record`` as it is stored now (``outbox.digest``: what its newest audit
    entry carries), after flushing what the unit of work changed in it."""
    session.flush()  # column defaults and onupdate values are the record's as stored
    return outbox.digest(session, record)


def record(
    session: Session,
    signer: Signer,
    meaning: Meaning,
    signed: d.InspectionSession | d.HumanVerificationResult,
    session_id: str,
) -> d.Signature:
    """The signature of ``signed`` (a session or a verdict of inspection ``session_id``) with its
    outbox row, in the caller's unit of work, after the change it signs."""
    user = signer.user
    assert user.id is not None
    return outbox.insert(
        session,
        d.Signature,
        session_id=session_id,
        user_id=user.id,
        username=user.username,
        full_name=user.full_name,
        role=user.role,
        meaning=meaning.value,
        record_type=outbox.ENTITY_TYPES[type(signed)],
        record_id=str(signed.id),
        record_digest=digest(session, signed),
        signed_at=utcnow(),
    )


def of_session(session: Session, session_id: str) -> list[d.Signature]:
    """The signatures given in inspection ``session_id``, oldest first."""
    return list(
        session.exec(
            select(d.Signature)
            .where(d.Signature.session_id == session_id)
            .order_by(col(d.Signature.signed_at), col(d.Signature.id))
        ).all()
    )
