"""Column types shared by both databases.

The server runs on PostgreSQL or, for a demo or a single small site, on SQLite; the device always on
SQLite. These types keep one model definition valid on both.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect

# JSONB on PostgreSQL (indexable, the seed's type), JSON text elsewhere.
JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


# A version-4 UUID's fixed bits within its 128-bit integer: the version nibble (bits 76-79) is
# 4, the variant's two top bits (62-63) are 10 (RFC 9562, as uuid.uuid4() sets them).
_V4_CLEAR = ~((0xF << 76) | (0x3 << 62))
_V4_SET = (0x4 << 76) | (0x2 << 62)


def new_id() -> str:
    """A device-made identifier: a random (version 4) UUID as text, so records from many tablets
    never collide.

    Made from ``os.urandom`` as ``uuid.uuid4()`` is, without building a ``UUID`` object: every
    workflow write makes four of these, and the object was half of their cost."""
    n = int.from_bytes(os.urandom(16)) & _V4_CLEAR | _V4_SET
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timestamps that are always timezone-aware UTC in Python.

    SQLite has no timezone type: a naive value read back there is UTC by construction, because
    only UTC is ever written. A naive datetime on the way in is refused rather than guessed at —
    tablets' local clocks and zones are exactly what must not leak into stored data.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: store timezone-aware UTC values only")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


NOW = sa.text("CURRENT_TIMESTAMP")


def defer_foreign_keys(metadata: sa.MetaData) -> None:
    """Make every foreign key of ``metadata`` checked at COMMIT instead of at each statement.

    A unit of work writes several related rows; checked at commit, the keys still protect the data
    but the order in which the session flushes those rows no longer matters.
    """
    for table in metadata.tables.values():
        for constraint in table.foreign_key_constraints:
            constraint.deferrable = True
            constraint.initially = "DEFERRED"
