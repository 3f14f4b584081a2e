"""The shared column types and identifiers of ``schema.types``: pure functions, no database."""

from __future__ import annotations

import re
import uuid
from collections import Counter

from schema.types import new_id

_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def test_new_id_is_a_random_uuid_in_its_canonical_text() -> None:
    ids = [new_id() for _ in range(20_000)]
    for text in ids:
        parsed = uuid.UUID(text)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == text
        assert _CANONICAL_UUID.fullmatch(text)
    assert len(set(ids)) == len(ids)


def test_new_id_leaves_every_free_bit_random() -> None:
    # 122 bits are random; a mask that cleared one more would show as a position that never
    # changes across many ids (each free hex digit takes all 16 values in 20,000 draws).
    ids = [new_id().replace("-", "") for _ in range(20_000)]
    for position in range(32):
        seen = Counter(text[position] for text in ids)
        if position == 12:
            assert set(seen) == {"4"}
        elif position == 16:
            assert set(seen) == set("89ab")
        else:
            assert len(seen) == 16, position
