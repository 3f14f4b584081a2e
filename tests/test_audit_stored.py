"""The server's check of entries kept as the bytes that were hashed (``verify_stored``) finds the
same first broken entry, of the same kind, as the check of the entries themselves."""

from __future__ import annotations

from typing import Any

import pytest

from schema.formats import audit
from tests.test_audit_format import (
    _bad_hash,
    _deleted,
    _edited,
    _edited_and_rehashed,
    _log,
    _relinked,
    _renumbered,
    _swapped,
    _truncated_field,
)


def _stored(log: list[dict[str, Any]]) -> list[tuple[bytes, str]]:
    return [(audit.canonical({k: v for k, v in e.items() if k != "hash"}), e["hash"]) for e in log]


def test_an_untouched_chain_verifies_as_stored() -> None:
    log = _log(6)
    assert audit.verify_stored(_stored(log)) is None
    assert audit.verify_stored([]) is None
    assert audit.verify_stored(_stored(log[3:]), prev_hash=log[2]["hash"], prev_seq=3) is None


@pytest.mark.parametrize(
    "tamper",
    [
        _edited,
        _edited_and_rehashed,
        _deleted,
        _swapped,
        _renumbered,
        _relinked,
        _truncated_field,
        _bad_hash,
    ],
)
def test_stored_entries_break_where_the_entries_do(tamper: Any) -> None:
    expected = audit.verify_chain(tamper(_log()))
    found = audit.verify_stored(_stored(tamper(_log())))
    assert expected is not None and found is not None
    assert (found.index, found.seq, found.kind) == (expected.index, expected.seq, expected.kind)


def test_stored_bytes_edited_in_place_are_caught() -> None:
    stored = _stored(_log())
    data, digest = stored[1]
    stored[1] = (data.replace(b'"username":"tanaka"', b'"username":"suzuki"'), digest)
    assert stored[1][0] != data
    found = audit.verify_stored(stored)
    assert found is not None and (found.seq, found.kind) == (2, "hash_mismatch")


@pytest.mark.parametrize(("data", "kind"), [(b"not json", "malformed"), (b"[1]", "malformed")])
def test_stored_bytes_that_are_no_entry(data: bytes, kind: str) -> None:
    found = audit.verify_stored([(data, "0" * 64)])
    assert found is not None and (found.index, found.kind) == (0, kind)


def test_an_entry_without_a_field_is_malformed_when_checked_strictly() -> None:
    """As it arrives, an entry is read in full; after that, hashes and links are what can change."""
    fields = {k: v for k, v in _log(1)[0].items() if k not in ("hash", "row_digest")}
    stored = [(audit.canonical(fields), audit.entry_hash(audit.GENESIS, fields))]
    found = audit.verify_stored(stored, strict=True)
    assert found is not None and (found.seq, found.kind) == (1, "malformed")
    assert "row_digest" in found.message
    assert audit.verify_stored(stored) is None


def test_a_rows_digest_leaves_out_what_an_update_does_not_send() -> None:
    """The tablet digests its row after a change; the server folds the operations that arrived.
    Neither the user's server id nor the tablet's own updated_at is part of what both digest."""
    row = {"id": "s-1", "status": "completed", "version": 3, "username": "tanaka"}
    digest = audit.row_digest("inspection_session", row)
    with_bookkeeping = {**row, "updated_at": "2026-12-03T01:00:00+00:00", "user_server_id": "u"}
    assert audit.row_digest("inspection_session", with_bookkeeping) == digest
    assert audit.row_digest("inspection_session", {**row, "status": "cancelled"}) != digest
