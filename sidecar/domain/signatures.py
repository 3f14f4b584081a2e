"""Which acts need an electronic signature, and with which meaning (21 CFR 11.50, 11.200).

A signature is the signer's password entered again at the moment of the act, stored with what
it means and bound to the record it signs (``services.signing``). Four acts need one:

============== =================================================================================
meaning        when
============== =================================================================================
``released``   a verdict of OK on an item that was judged NG, by the AI or by an earlier
               verdict: a rejected part goes on as good
``overridden`` any other verdict that differs from the AI's verdict (OK or NG); a result the
               AI left for review (PENDING_REVIEW) is no verdict, and judging it is the
               person's ordinary job
``approved``   completing an inspection whose result rolls up to NG: the signer puts the NG
               record on file as final
``discarded``  ending an inspection unfinished: discard, cancel, or restart (which discards the
               old one)
============== =================================================================================

A verdict that agrees with the AI, a verdict on an item without AI, and completing an OK (or
pending) inspection need none. Releasing comes before overriding: an NG the AI found and a person
releases is both, and "released" says more.

Plain functions over plain values: no FastAPI, no database session.
"""

from __future__ import annotations

from enum import StrEnum

from sidecar.errors import KensaError


class Meaning(StrEnum):
    APPROVED = "approved"
    OVERRIDDEN = "overridden"
    RELEASED = "released"
    DISCARDED = "discarded"


MEANINGS: tuple[str, ...] = tuple(m.value for m in Meaning)
# What an AI result says that a person can override; PENDING_REVIEW asks a person instead.
AI_VERDICTS = frozenset({"OK", "NG"})


class SignatureRequired(KensaError):
    """428: the act needs the user's signature (their password again) with ``meaning``."""

    status_code = 428
    code = "signature_required"


def for_verdict(
    final_result: str, ai_result: str | None, previous_result: str | None
) -> Meaning | None:
    """The meaning a verdict of ``final_result`` needs, given the AI's result for the item (None:
    no AI result) and the item's result before this verdict (None: not judged yet)."""
    if final_result == "OK" and "NG" in (ai_result, previous_result):
        return Meaning.RELEASED
    if ai_result in AI_VERDICTS and ai_result != final_result:
        return Meaning.OVERRIDDEN
    return None


def for_completion(result: str | None) -> Meaning | None:
    """Completing an inspection whose items roll up to ``result``."""
    return Meaning.APPROVED if result == "NG" else None


def for_discard() -> Meaning:
    """Ending an inspection unfinished (discard, cancel, restart)."""
    return Meaning.DISCARDED


def require(needed: Meaning | None, given: str | None) -> Meaning | None:
    """Check a signature's stated meaning against the one the act needs.

    Returns the meaning to record (None when the act needs no signature: a signature given anyway
    is not stored). Raises ``SignatureRequired`` naming the meaning when none was given, or one
    with another meaning: a signature says what it approves, and approving something else does
    not sign this.
    """
    if needed is None:
        return None
    if given is None:
        raise SignatureRequired(
            f"this needs your signature: enter your password again to sign it as {needed.value}",
            meaning=needed.value,
        )
    if given != needed.value:
        raise SignatureRequired(
            f"this is signed as {needed.value}, not as {given}",
            meaning=needed.value,
            given=given,
        )
    return needed
