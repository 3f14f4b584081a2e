"""Table tests of the audit trail's shared format (``schema.formats.audit``): RFC 8785 canonical
JSON (the RFC's own examples), an entry's hash, a record's digest, and every way a chain breaks.
Pure functions, no database."""

from __future__ import annotations

import json
import re
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schema.formats import audit

# --- RFC 8785 -------------------------------------------------------------------------------


def test_rfc8785_section_3_2_2_example() -> None:
    text = (
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert audit.canonical(json.loads(text)) == expected.encode("utf-8")


def test_rfc8785_sorts_names_by_utf16_code_units() -> None:
    # RFC 8785 3.2.3: the emoji (a surrogate pair, 0xD83D…) sorts before U+FB33, though its
    # code point is higher.
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    keys = [k for k, _ in json.loads(audit.canonical(value)).items()]
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


# RFC 8785 appendix B: IEEE 754 bit patterns and their ECMAScript form.
NUMBERS = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


@pytest.mark.parametrize(("bits", "text"), NUMBERS)
def test_rfc8785_numbers(bits: str, text: str) -> None:
    (value,) = struct.unpack(">d", bytes.fromhex(bits))
    assert audit.canonical(value) == text.encode()


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (-1, "-1"),
        (2**53 - 1, "9007199254740991"),
        (-(2**53 - 1), "-9007199254740991"),
        (True, "true"),
        (False, "false"),
        (None, "null"),
        (1.0, "1"),
        (0.5, "0.5"),
        (type("F", (float,), {"__repr__": lambda self: "F(0.5)"})(0.5), "0.5"),  # numpy's float64
        ((1, "a"), '[1,"a"]'),
        ([], "[]"),
        ({}, "{}"),
        ({"b": [1, {"d": 1, "c": 2}], "a": None}, '{"a":null,"b":[1,{"c":2,"d":1}]}'),
    ],
)
def test_values(value: Any, text: str) -> None:
    assert audit.canonical(value) == text.encode()


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("plain", '"plain"'),
        ('q"b\\', '"q\\"b\\\\"'),
        ("\b\f\n\r\t", '"\\b\\f\\n\\r\\t"'),
        ("\x00\x01\x1f", '"\\u0000\\u0001\\u001f"'),
        ("\x7f/\u2028", '"\x7f/\u2028"'),  # DEL, solidus and U+2028 stay literal
        ("検査", '"検査"'),
    ],
)
def test_string_escaping(value: str, text: str) -> None:
    assert audit.canonical(value) == text.encode("utf-8")


@pytest.mark.parametrize(
    ("value", "where"),
    [
        (2**53, "$"),
        (-(2**53), "$"),
        ({"a": [float("nan")]}, "$.a[0]"),
        ({"a": float("inf")}, "$.a"),
        ({"t": "\ud800"}, "$.t"),
        ({1: "x"}, "$"),
        ({"s": {1, 2}}, "$.s"),
        ({"b": b"x"}, "$.b"),
    ],
)
def test_refused(value: Any, where: str) -> None:
    with pytest.raises(audit.CanonicalError, match=f"^{re.escape(where)}:"):
        audit.canonical(value)


# --- entries and digests --------------------------------------------------------------------


def _fields(seq: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"00000000-0000-4000-8000-{seq:012d}",
        "seq": seq,
        "at": "2026-12-03T01:00:00.000000Z",
        "user_id": 2,
        "user_server_id": None,
        "username": "tanaka",
        "role": "inspector",
        "entity": "inspection_session",
        "entity_id": "s-1",
        "action": "update",
        "changes": {"status": {"before": "identified", "after": "in_progress"}},
        "reason": None,
        "detail": None,
        "row_digest": "ab" * 32,
        **extra,
    }


def test_entry_hash_is_sha256_of_the_canonical_fields_with_prev_hash() -> None:
    import hashlib

    fields = _fields(1)
    expected = hashlib.sha256(audit.canonical({**fields, "prev_hash": audit.GENESIS})).hexdigest()
    assert audit.entry_hash(audit.GENESIS, fields) == expected
    assert audit.GENESIS == "0" * 64
    # Any field, and the link, changes the hash.
    assert audit.entry_hash("1" * 64, fields) != expected
    assert audit.entry_hash(audit.GENESIS, {**fields, "reason": "x"}) != expected


def test_entry_hash_refuses_what_is_not_an_entry() -> None:
    with pytest.raises(audit.CanonicalError):
        audit.entry_hash("xyz", _fields(1))
    with pytest.raises(audit.CanonicalError):
        audit.entry_hash(audit.GENESIS, {**_fields(1), "hash": "0" * 64})
    with pytest.raises(audit.CanonicalError):
        audit.entry_hash(audit.GENESIS, {**_fields(1), "prev_hash": "1" * 64})


def test_row_digest_binds_table_and_every_field() -> None:
    row = {"id": "r", "confidence": 0.93, "measurements": {"mm": 12.5}, "version": 2}
    digest = audit.row_digest("ai_inspection_result", row)
    assert len(digest) == 64
    assert digest == audit.row_digest("ai_inspection_result", dict(reversed(list(row.items()))))
    assert digest != audit.row_digest("human_verification_result", row)
    assert digest != audit.row_digest("ai_inspection_result", {**row, "confidence": 0.94})


# --- the chain ------------------------------------------------------------------------------


def _log(n: int = 5) -> list[dict[str, Any]]:
    return audit.chain([_fields(seq) for seq in range(1, n + 1)])


def _rehash(entry: dict[str, Any]) -> dict[str, Any]:
    fields = {k: v for k, v in entry.items() if k != "hash"}
    return {**fields, "hash": audit.entry_hash(entry["prev_hash"], fields)}


def test_an_untouched_chain_verifies() -> None:
    assert audit.verify_chain(_log()) is None
    assert audit.verify_chain([]) is None
    log = _log()
    # Continuing from a verified point.
    assert audit.verify_chain(log[2:], prev_hash=log[1]["hash"], prev_seq=2) is None


def _edited(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    log[2] = {**log[2], "username": "suzuki"}
    return log


def _edited_and_rehashed(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    log[2] = _rehash({**log[2], "username": "suzuki"})
    return log


def _deleted(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    del log[2]
    return log


def _swapped(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    log[2], log[3] = log[3], log[2]
    return log


def _renumbered(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Entries 3 and 4 trade places and numbers, so the sequence still reads 1..5.
    log[2], log[3] = {**log[3], "seq": 3}, {**log[2], "seq": 4}
    return log


def _relinked(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    log[3] = _rehash({**log[3], "prev_hash": "f" * 64})
    return log


def _truncated_field(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    log[2] = {k: v for k, v in log[2].items() if k != "row_digest"}
    return log


def _bad_hash(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    log[2] = {**log[2], "hash": "XYZ"}
    return log


@pytest.mark.parametrize(
    ("tamper", "seq", "kind"),
    [
        (_edited, 3, "hash_mismatch"),
        (_edited_and_rehashed, 4, "prev_hash_mismatch"),
        (_deleted, 4, "sequence_gap"),
        (_swapped, 4, "sequence_gap"),
        (_renumbered, 3, "hash_mismatch"),
        (_relinked, 4, "prev_hash_mismatch"),
        (_truncated_field, 3, "malformed"),
        (_bad_hash, 3, "malformed"),
    ],
)
def test_the_first_broken_entry_is_named(tamper: Any, seq: int, kind: str) -> None:
    found = audit.verify_chain(tamper(_log()))
    assert found is not None
    assert (found.seq, found.kind) == (seq, kind)
    assert found.message


def test_swapped_entries_read_in_order_of_storage() -> None:
    # Entry 4 stored before entry 3: entry 4 is named, with entry 3 missing before it.
    found = audit.verify_chain(_swapped(_log()))
    assert found is not None and found.index == 2
    # … and a first entry that is not 1 is a gap at the start.
    found = audit.verify_chain(_log()[1:])
    assert found is not None and (found.seq, found.kind) == (2, "sequence_gap")


def test_an_entry_repeated_is_reordered() -> None:
    log = _log()
    found = audit.verify_chain([*log[:3], log[2], *log[3:]])
    assert found is not None and (found.index, found.seq, found.kind) == (3, 3, "reordered")


# --- the fast path ----------------------------------------------------------------------------

# Text from the characters where an encoder can go wrong: the escapes, controls, DEL, the line
# separators JSON leaves alone, non-BMP characters and lone surrogates, and names that sort
# differently as UTF-16 than as code points (U+E000..U+FFFF against supplementary characters).
_TRICKY = 'aZ"\\/\n\t\b\f\r\x00\x1f\x7f é日\u2028\ue000\uffff\U0001f600\ud800\udfff'
_text = st.text(alphabet=st.sampled_from(_TRICKY), max_size=6)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.sampled_from([2**53 - 1, -(2**53 - 1), 2**53, -(2**53), 0.0, -0.0, 1.0, 1e16, 1e21])
    | st.floats(allow_nan=True, allow_infinity=True)
    | _text
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(_text, inner, max_size=4)
    ),
    max_leaves=12,
)


def _outcome(encode: Any, value: Any) -> bytes | tuple[str, str]:
    try:
        result: bytes = encode(value)
    except audit.CanonicalError as exc:
        return ("refused", str(exc))
    return result


@settings(max_examples=3000, deadline=None, derandomize=True)
@given(_values)
def test_canonical_writes_every_value_as_the_reference_writer_does(value: Any) -> None:
    # The C encoder's shortcut must be invisible: the same bytes, or the same refusal naming the
    # same place, for every value either path can meet.
    assert _outcome(audit.canonical, value) == _outcome(audit.canonical_slow, value)
