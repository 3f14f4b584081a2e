"""The tablet's data key: 32 random bytes that encrypt its database (SQLCipher) and wrap the key
of each photo (envelope encryption, ``sidecar.photo_crypto``).

On the wire and on disk the key is written as 64 lower-case hex digits. It is held as a
``DataKey``, whose ``repr`` and ``str`` never show it, so a log line or a traceback that formats
one leaks nothing. Where it comes from (the Tauri shell on stdin, the OS keystore, a 0600 key
file) is ``sidecar.key_source``.
"""

from __future__ import annotations

import hmac
import re
import secrets

KEY_BYTES = 32
_HEX = re.compile(r"[0-9a-f]{64}")


class KeyFormatError(ValueError):
    """Text that is not a data key (the message never repeats the text)."""


class DataKey:
    """A 256-bit data key. Compare with ``==`` (constant time); never printed."""

    __slots__ = ("_raw",)

    def __init__(self, raw: bytes) -> None:
        if not isinstance(raw, bytes) or len(raw) != KEY_BYTES:
            raise KeyFormatError(f"a data key is {KEY_BYTES} bytes")
        self._raw = raw

    @classmethod
    def generate(cls) -> DataKey:
        return cls(secrets.token_bytes(KEY_BYTES))

    @classmethod
    def from_hex(cls, text: str) -> DataKey:
        """The key written as 64 lower-case hex digits (surrounding whitespace allowed)."""
        text = text.strip()
        if not _HEX.fullmatch(text):
            # Neither the text nor its length beyond a count: it may be a mistyped real key.
            raise KeyFormatError(
                f"a data key is {2 * KEY_BYTES} lower-case hex digits; this one is not "
                f"({len(text)} characters)"
            )
        return cls(bytes.fromhex(text))

    @property
    def raw(self) -> bytes:
        return self._raw

    def hex(self) -> str:
        return self._raw.hex()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DataKey) and hmac.compare_digest(self._raw, other._raw)

    def __hash__(self) -> int:
        return hash((DataKey, self._raw))

    def __repr__(self) -> str:
        return "DataKey(<hidden>)"

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("a data key is not pickled")
