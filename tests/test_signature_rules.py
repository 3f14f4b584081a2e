"""Table tests of which acts need a signature, with which meaning
(``sidecar.domain.signatures``): pure functions, no database. The table is written out, so a
change to the rules shows up as a row to look at."""

from __future__ import annotations

import itertools

import pytest

from sidecar.domain import signatures as sig
from sidecar.domain.signatures import Meaning, SignatureRequired
from sync.bounds import signature_problem

RESULTS = ("OK", "NG", "PENDING")
AI_RESULTS = (None, "OK", "NG", "PENDING_REVIEW")
PREVIOUS = (None, "OK", "NG", "PENDING")

REL, OVR = Meaning.RELEASED, Meaning.OVERRIDDEN

# (final verdict, AI's result, item's result before) -> meaning; every combination is listed.
VERDICTS: dict[tuple[str, str | None, str | None], Meaning | None] = {
    # no AI result: only releasing an earlier NG needs a signature
    ("OK", None, None): None,
    ("OK", None, "OK"): None,
    ("OK", None, "NG"): REL,
    ("OK", None, "PENDING"): None,
    ("NG", None, None): None,
    ("NG", None, "OK"): None,
    ("NG", None, "NG"): None,
    ("NG", None, "PENDING"): None,
    ("PENDING", None, None): None,
    ("PENDING", None, "OK"): None,
    ("PENDING", None, "NG"): None,
    ("PENDING", None, "PENDING"): None,
    # AI said OK: agreeing needs nothing, anything else overrides it
    ("OK", "OK", None): None,
    ("OK", "OK", "OK"): None,
    ("OK", "OK", "NG"): REL,
    ("OK", "OK", "PENDING"): None,
    ("NG", "OK", None): OVR,
    ("NG", "OK", "OK"): OVR,
    ("NG", "OK", "NG"): OVR,
    ("NG", "OK", "PENDING"): OVR,
    ("PENDING", "OK", None): OVR,
    ("PENDING", "OK", "OK"): OVR,
    ("PENDING", "OK", "NG"): OVR,
    ("PENDING", "OK", "PENDING"): OVR,
    # AI said NG: OK releases the part, PENDING overrides, NG agrees
    ("OK", "NG", None): REL,
    ("OK", "NG", "OK"): REL,
    ("OK", "NG", "NG"): REL,
    ("OK", "NG", "PENDING"): REL,
    ("NG", "NG", None): None,
    ("NG", "NG", "OK"): None,
    ("NG", "NG", "NG"): None,
    ("NG", "NG", "PENDING"): None,
    ("PENDING", "NG", None): OVR,
    ("PENDING", "NG", "OK"): OVR,
    ("PENDING", "NG", "NG"): OVR,
    ("PENDING", "NG", "PENDING"): OVR,
    # AI left it for review: judging it is no override; releasing an earlier NG still is
    ("OK", "PENDING_REVIEW", None): None,
    ("OK", "PENDING_REVIEW", "OK"): None,
    ("OK", "PENDING_REVIEW", "NG"): REL,
    ("OK", "PENDING_REVIEW", "PENDING"): None,
    ("NG", "PENDING_REVIEW", None): None,
    ("NG", "PENDING_REVIEW", "OK"): None,
    ("NG", "PENDING_REVIEW", "NG"): None,
    ("NG", "PENDING_REVIEW", "PENDING"): None,
    ("PENDING", "PENDING_REVIEW", None): None,
    ("PENDING", "PENDING_REVIEW", "OK"): None,
    ("PENDING", "PENDING_REVIEW", "NG"): None,
    ("PENDING", "PENDING_REVIEW", "PENDING"): None,
}


def test_the_verdict_table_lists_every_combination() -> None:
    assert set(VERDICTS) == set(itertools.product(RESULTS, AI_RESULTS, PREVIOUS))


@pytest.mark.parametrize(("case", "meaning"), VERDICTS.items(), ids=str)
def test_verdict_meaning(case: tuple[str, str | None, str | None], meaning: Meaning | None) -> None:
    assert sig.for_verdict(*case) is meaning


@pytest.mark.parametrize(
    ("result", "meaning"),
    [("NG", Meaning.APPROVED), ("OK", None), ("PENDING", None), (None, None)],
)
def test_completion_meaning(result: str | None, meaning: Meaning | None) -> None:
    assert sig.for_completion(result) is meaning


def test_discarding_always_needs_a_signature() -> None:
    assert sig.for_discard() is Meaning.DISCARDED


def test_meanings_are_the_four_documented() -> None:
    assert sig.MEANINGS == ("approved", "overridden", "released", "discarded")


@pytest.mark.parametrize(
    ("needed", "given", "recorded"),
    [
        (None, None, None),
        (None, "approved", None),  # not needed: not stored
        (Meaning.APPROVED, "approved", Meaning.APPROVED),
        (Meaning.OVERRIDDEN, "overridden", Meaning.OVERRIDDEN),
        (Meaning.RELEASED, "released", Meaning.RELEASED),
        (Meaning.DISCARDED, "discarded", Meaning.DISCARDED),
    ],
)
def test_require_accepts(
    needed: Meaning | None, given: str | None, recorded: Meaning | None
) -> None:
    assert sig.require(needed, given) is recorded


@pytest.mark.parametrize(
    ("needed", "given"),
    [
        (Meaning.APPROVED, None),
        (Meaning.DISCARDED, None),
        (Meaning.RELEASED, "overridden"),  # signing another meaning does not sign this one
        (Meaning.OVERRIDDEN, "approved"),
        (Meaning.DISCARDED, "released"),
    ],
)
def test_require_refuses_naming_the_meaning(needed: Meaning, given: str | None) -> None:
    with pytest.raises(SignatureRequired) as caught:
        sig.require(needed, given)
    assert caught.value.status_code == 428
    assert caught.value.code == "signature_required"
    assert caught.value.detail["meaning"] == needed.value


# --- what the server keeps (sync.bounds.signature_problem) -------------------------------------

GOOD = {
    "meaning": "overridden",
    "record_type": "human_verification_result",
    "record_digest": "a" * 64,
}


@pytest.mark.parametrize(
    ("operation", "data", "problem"),
    [
        ("INSERT", GOOD, None),
        ("INSERT", {**GOOD, "record_type": "inspection_session"}, None),
        ("INSERT", {**GOOD, "meaning": "because"}, "meaning 'because' is not one of"),
        ("INSERT", {**GOOD, "meaning": None}, "meaning None is not one of"),
        ("INSERT", {**GOOD, "record_type": "user"}, "record_type 'user' is not one of"),
        ("INSERT", {**GOOD, "record_digest": "A" * 64}, "record_digest is not a SHA-256"),
        ("INSERT", {**GOOD, "record_digest": "a" * 63}, "record_digest is not a SHA-256"),
        ("INSERT", {**GOOD, "record_digest": 7}, "record_digest is not a SHA-256"),
        ("UPDATE", GOOD, "a signature is never changed or removed (UPDATE)"),
        ("DELETE", GOOD, "a signature is never changed or removed (DELETE)"),
    ],
)
def test_what_the_server_keeps_as_a_signature(
    operation: str, data: dict[str, object], problem: str | None
) -> None:
    found = signature_problem(operation, data)
    if problem is None:
        assert found is None
    else:
        assert found is not None and found.startswith(problem), found
