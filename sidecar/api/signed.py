"""Signed requests: the routes whose act may need the user's signature (``domain.signatures``)
take ``{"signature": {"password", "meaning"}}`` in their body.

The password is checked first, in a unit of work of its own that commits even when the check
fails: a wrong password counts toward the login lockout at the client the request names
(``X-Kensa-Client``, as for a login) and answers 401 ``signature_invalid`` (423 once locked).
The act then runs in its own unit of work, which decides what it needs: no signature, or one of
a meaning; a missing one (or one of another meaning) is 428 ``signature_required`` naming it,
and nothing is written. A signature is recorded in the act's unit of work, after the change.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Header
from sqlmodel import Session

from schema import device as d
from schema.db import Database
from sidecar.api.schemas import SignatureCreate, SignaturePublic
from sidecar.domain import lockout, signatures
from sidecar.domain.signatures import Meaning
from sidecar.errors import InvalidInput, Locked, Unauthorized
from sidecar.services import signing

CLIENT_HEADER = "X-Kensa-Client"


def client_source(
    x_kensa_client: Annotated[str | None, Header(alias=CLIENT_HEADER)] = None,
) -> str:
    """Where a signature's password is counted, as ``domain.lockout.source_of`` says (400 for an
    id of the wrong form)."""
    try:
        return lockout.source_of(x_kensa_client)
    except ValueError as exc:
        raise InvalidInput(str(exc), field=CLIENT_HEADER) from exc


def signer(
    db: Database, user: d.User, given: SignatureCreate | None, source: str
) -> signing.Signer | None:
    """The signer when a signature came with the request and its password is the user's."""
    if given is None:
        return None
    failure: Unauthorized | Locked
    with db.atomic() as session:
        try:
            return signing.check(session, user, given.password, given.meaning, source=source)
        except (Unauthorized, Locked) as exc:
            # Commit the failure count before answering, as a failed login does.
            failure = exc
    raise failure


def sign(
    session: Session,
    who: signing.Signer | None,
    needed: Meaning | None,
    record: d.InspectionSession | d.HumanVerificationResult,
    session_id: str,
) -> d.Signature | None:
    """Record the signature the act needs, in its unit of work; 428 when it needs one that was
    not given (the unit of work then rolls back)."""
    meaning = signatures.require(needed, who.meaning if who else None)
    if meaning is None:
        return None
    assert who is not None
    return signing.record(session, who, meaning, record, session_id)


def public(row: d.Signature) -> SignaturePublic:
    return SignaturePublic.model_validate(row, from_attributes=True)
