"""The audit trail's shared format: canonical JSON (RFC 8785), an entry's hash, a record's digest,
and the check of a chain — what the tablet writes and the server verifies alike.

**Canonical JSON** is RFC 8785 (JCS): object members sorted by their names' UTF-16 code units, no
whitespace, strings escaped as ECMAScript's ``JSON.stringify`` does (``\\"``, ``\\\\``,
``\\b \\f \\n \\r \\t``, other controls as ``\\u00xx``, everything else literal), UTF-8 bytes.
Numbers are ECMAScript doubles: an integer is written as its digits and must be within
±(2**53 − 1) (I-JSON, RFC 7493, which JCS requires: a larger one would not survive a reader that
parses doubles, so it is refused); a float is written as ECMAScript's ``Number.prototype.toString``
writes it (shortest round-trip digits, ``1e+21`` / ``0.000001`` boundaries, ``-0`` as ``0``);
NaN and infinities are refused. ``True``/``False``/``None`` are ``true``/``false``/``null``; lists
and tuples are arrays; object names must be text. Lone surrogates are refused. Anything else
(datetimes, bytes, sets) is refused: the caller turns it into text first. A refusal is a
``CanonicalError`` (a ``ValueError``) naming the path of the value.

**An entry** is a flat JSON object with these fields (all are hashed; ``hash`` itself is not):

========== =================================================================================
``id``         the entry's UUID (text), unique across devices
``seq``        per-device sequence, 1, 2, 3, … with no gaps
``at``         UTC time as text, ``YYYY-MM-DDTHH:MM:SS.ffffffZ``
``user_id``    the tablet's local user id (integer) or null (no one logged in, e.g. a failed login)
``user_server_id``  the server's id of that user (text) or null (a device-only user)
``username``   text or null (for a failed login: the name that was tried)
``role``       the user's role at the time, or null
``entity``     what was acted on: a record's entity type as in the outbox
               (``inspection_session``, ``inspection_session_item``, ``inspection_target``,
               ``inspection_image``, ``ai_inspection_result``, ``human_verification_result``)
               or ``user``, ``device``, ``signing_key``, ``request``
``entity_id``  the record's id as text, or null
``action``     ``insert`` / ``update`` / ``delete`` for records; ``login``, ``login_failed``,
               ``lockout``, ``unlock``, ``refused``, ``connect``, ``disconnect``,
               ``key_created`` for events
``changes``    for ``update``: ``{field: {"before": v, "after": v}}`` of the fields changed
               (values as they travel in the outbox: timestamps as ISO 8601 text); else null
``reason``     the user's reason (overrides, discards), text or null
``detail``     an object with what else the event needs (a refusal's ``code``, ``method`` and
               ``path``; a login's client), or null
``row_digest`` for a record: ``row_digest(entity, row)`` of the record after the change (null
               after a delete); null for events
``prev_hash``  the previous entry's ``hash``; the first entry's is ``GENESIS`` (64 zeros)
========== =================================================================================

``hash = entry_hash(prev_hash, fields)`` = SHA-256 (lower-case hex) of the canonical JSON of
``fields`` (every field above but ``prev_hash``) with ``prev_hash`` added. So each device's log is
one chain: changing, removing or moving an entry breaks the hash of the entry or the link of the
next one.

**A record's digest** ``row_digest(entity, row)`` = SHA-256 hex of the canonical JSON of
``{"entity": entity, "row": row}``, where ``row`` is the record's fields as they travel in the
outbox (``sidecar.outbox.payload``: the device table's column names, timestamps ISO 8601 UTC,
the local-only columns ``file_path``, ``thumbnail_path``, ``uploaded_at``, ``user_id`` left out)
with ``username`` for the record's user. Two keys are never part of it (``DIGEST_LEAVES_OUT``,
dropped by ``row_digest`` itself, so a row given with them digests the same): ``user_server_id``
(a later pull may fill it in for a user the record does not change with) and ``updated_at`` (the
tablet's bookkeeping of its own last write, which an update does not send: the entry's ``at``
says when). So the server, folding a record's operations as they arrived, digests the same row.

**On the wire** each entry travels once, as an outbox operation like every other record:
``entity_type = "audit_entry"``, ``entity_id`` = the entry's ``id``, ``operation = "INSERT"``,
``data`` = the entry's fields above plus ``hash``. The server keeps them per device, checks each
one's hash and its link to the entry with the previous ``seq`` (``verify_chain``), and keeps the
verdict.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

GENESIS = "0" * 64
MAX_SAFE_INTEGER = 2**53 - 1

# The fields of an entry, in the order they are documented (the hash does not depend on it).
ENTRY_FIELDS: tuple[str, ...] = (
    "id",
    "seq",
    "at",
    "user_id",
    "user_server_id",
    "username",
    "role",
    "entity",
    "entity_id",
    "action",
    "changes",
    "reason",
    "detail",
    "row_digest",
    "prev_hash",
)

_HEX64 = re.compile(r"[0-9a-f]{64}")


class CanonicalError(ValueError):
    """A value that has no RFC 8785 form (or that this format refuses), with where it is."""


_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _escape_one(match: re.Match[str]) -> str:
    ch = match.group(0)
    return _SHORT_ESCAPES.get(ch) or f"\\u{ord(ch):04x}"


def _string(value: str, path: str) -> str:
    if _LONE_SURROGATE.search(value):
        raise CanonicalError(f"{path}: text with a lone surrogate has no canonical form")
    return '"' + _NEEDS_ESCAPE.sub(_escape_one, value) + '"'


def _float(value: float, path: str) -> str:
    """ECMAScript's Number.prototype.toString for a finite double (ECMA-262 7.1.12.1)."""
    if not math.isfinite(value):
        raise CanonicalError(f"{path}: NaN and infinities have no JSON form")
    if value == 0:
        return "0"
    if value < 0:
        return "-" + _float(-value, path)
    # repr gives the shortest digits that read back as the same double, as ECMAScript requires.
    _, digit_tuple, exponent = Decimal(float.__repr__(value)).as_tuple()
    assert isinstance(exponent, int)
    all_digits = "".join(map(str, digit_tuple))
    digits = all_digits.rstrip("0")
    exponent += len(all_digits) - len(digits)
    k = len(digits)
    n = exponent + k  # value = 0.digits × 10**n
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * (-n) + digits
    e = n - 1
    mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"


def _sort_key(name: str) -> bytes:
    # UTF-16 big-endian bytes compare exactly as the code units do.
    return name.encode("utf-16-be", "surrogatepass")


def _write(value: Any, path: str, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_string(value, path))
    elif isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise CanonicalError(f"{path}: integer {value} is outside ±(2**53 - 1)")
        out.append(str(int(value)))
    elif isinstance(value, float):
        out.append(_float(value, path))
    elif isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise CanonicalError(f"{path}: object names must be text, not {key!r}")
        out.append("{")
        for i, key in enumerate(sorted(value, key=_sort_key)):
            if i:
                out.append(",")
            out.append(_string(key, path))
            out.append(":")
            _write(value[key], f"{path}.{key}", out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, f"{path}[{i}]", out)
        out.append("]")
    else:
        raise CanonicalError(f"{path}: {type(value).__name__} has no JSON form")


# The standard library's C encoder writes the common case exactly as RFC 8785 does: sorted
# members, no whitespace, the same escapes (the short ones, other controls as lower-case
# ``\u00xx``, everything else literal with ensure_ascii off). It differs on floats (``1.0``,
# ``1e+16``), on integers beyond ±(2**53 - 1) (written, not refused), on object names outside
# ASCII (code-point order is not UTF-16 order above the BMP) and on types it converts (int
# names, subclasses). ``_plain`` sends every value with one of those to ``_write``; a lone
# surrogate is caught when the text is encoded to UTF-8. An entry and a record's row are
# nearly always plain, and the C encoder writes them several times faster: it is most of what
# writing an audit entry costs (scripts/benchmarks/write.py).
_c_encode = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")
).encode


def _plain(value: Any) -> bool:
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return True
    if kind is int:
        number: int = value
        return -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not key.isascii():
                return False
            # Text and null, most of an entry's members, without a call each.
            if type(item) is not str and item is not None and not _plain(item):
                return False
        return True
    if kind is list or kind is tuple:
        return all(_plain(item) for item in value)
    return False


def canonical(value: Any) -> bytes:
    """The RFC 8785 canonical JSON of ``value``, as UTF-8 bytes."""
    return _canonical(value)[1]


def _canonical(value: Any) -> tuple[str, bytes]:
    """The canonical JSON of ``value`` as text and as the UTF-8 bytes that are hashed."""
    if _plain(value):
        text = _c_encode(value)
        try:
            return text, text.encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate: the full writer names where it is
    data = canonical_slow(value)
    return data.decode("utf-8"), data


def canonical_slow(value: Any) -> bytes:
    """``canonical`` written member by member, for every value: the reference the fast path is
    tested against."""
    out: list[str] = []
    _write(value, "$", out)
    return "".join(out).encode("utf-8")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entry_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    """SHA-256 hex of the canonical JSON of ``fields`` with ``prev_hash`` added. ``fields`` holds
    neither ``hash`` nor a ``prev_hash`` of its own that differs."""
    return sealed_entry(prev_hash, fields)[1]


def sealed_entry(prev_hash: str, fields: Mapping[str, Any]) -> tuple[str, str]:
    """``entry_hash`` and, with it, the entry as JSON text: every field, ``prev_hash`` and
    ``hash`` (the canonical text that was hashed, with ``hash`` added as its last member), for a
    writer that stores or sends the entry without serialising it again."""
    if "hash" in fields:
        raise CanonicalError("an entry's hash is not part of what it hashes")
    if not _HEX64.fullmatch(prev_hash):
        raise CanonicalError("prev_hash must be 64 lower-case hex digits")
    if fields.get("prev_hash", prev_hash) != prev_hash:
        raise CanonicalError("fields carry another prev_hash")
    text, data = _canonical({**fields, "prev_hash": prev_hash})
    digest = _sha256(data)
    # The canonical text of an object is "{...}" with at least prev_hash inside.
    return f'{text[:-1]},"hash":"{digest}"}}', digest


DIGEST_LEAVES_OUT = frozenset({"user_server_id", "updated_at"})


def row_digest(entity: str, row: Mapping[str, Any]) -> str:
    """SHA-256 hex of the canonical JSON of ``{"entity": entity, "row": row}``, ``row`` less
    ``DIGEST_LEAVES_OUT``."""
    kept = {key: value for key, value in row.items() if key not in DIGEST_LEAVES_OUT}
    return _sha256(canonical({"entity": entity, "row": kept}))


@dataclass(frozen=True)
class Break:
    """The first entry of a chain that does not hold, and why.

    ``kind`` is one of ``hash_mismatch`` (the entry is not what was hashed), ``prev_hash_mismatch``
    (it does not link to the entry before it), ``sequence_gap`` (entries are missing before it),
    ``reordered`` (its sequence is not above the one before it), ``malformed`` (a field is
    missing or of the wrong type)."""

    index: int  # position in what was given
    seq: int | None
    entry_id: str | None
    kind: str
    message: str


def _malformed(index: int, entry: Mapping[str, Any], message: str) -> Break:
    seq = entry.get("seq")
    entry_id = entry.get("id")
    return Break(
        index,
        seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
        entry_id if isinstance(entry_id, str) else None,
        "malformed",
        message,
    )


def verify_chain(
    entries: Iterable[Mapping[str, Any]],
    *,
    prev_hash: str = GENESIS,
    prev_seq: int = 0,
) -> Break | None:
    """The first entry that breaks the chain, or None when every entry holds.

    ``entries`` are one device's entries in the order they are stored (by ``seq`` for a tablet;
    in arrival order for a server that checks each one as it arrives), each with all of
    ``ENTRY_FIELDS`` and ``hash``. To continue a chain already verified, pass the last good
    entry's ``hash`` and ``seq``."""
    for index, entry in enumerate(entries):
        missing = [name for name in (*ENTRY_FIELDS, "hash") if name not in entry]
        if missing:
            return _malformed(index, entry, f"missing {', '.join(missing)}")
        seq = entry["seq"]
        if not isinstance(seq, int) or isinstance(seq, bool):
            return _malformed(index, entry, "seq is not an integer")
        stored_hash = entry["hash"]
        if not isinstance(stored_hash, str) or not _HEX64.fullmatch(stored_hash):
            return _malformed(index, entry, "hash is not 64 lower-case hex digits")
        entry_id = entry["id"] if isinstance(entry["id"], str) else None
        if seq <= prev_seq:
            return Break(
                index,
                seq,
                entry_id,
                "reordered",
                f"entry {seq} comes after entry {prev_seq}",
            )
        if seq != prev_seq + 1:
            return Break(
                index,
                seq,
                entry_id,
                "sequence_gap",
                f"entries {prev_seq + 1}..{seq - 1} are missing before entry {seq}",
            )
        fields = {name: value for name, value in entry.items() if name != "hash"}
        try:
            computed = entry_hash(str(entry["prev_hash"]), fields)
        except CanonicalError as exc:
            return _malformed(index, entry, str(exc))
        if computed != stored_hash:
            return Break(
                index, seq, entry_id, "hash_mismatch", f"entry {seq} is not what was hashed"
            )
        if entry["prev_hash"] != prev_hash:
            return Break(
                index,
                seq,
                entry_id,
                "prev_hash_mismatch",
                f"entry {seq} does not link to the entry before it",
            )
        prev_hash, prev_seq = stored_hash, seq
    return None


_FIELD_SET = frozenset(ENTRY_FIELDS)


def verify_stored(
    entries: Iterable[tuple[bytes, str]],
    *,
    prev_hash: str = GENESIS,
    prev_seq: int = 0,
    strict: bool = False,
) -> Break | None:
    """``verify_chain`` over entries kept as they arrived: each as the canonical bytes that were
    hashed (every field but ``hash``, ``prev_hash`` included) and its ``hash``.

    The hash is recomputed over those bytes as they are (one SHA-256 each, no canonicalising
    again: they are what the tablet hashed, or the hash does not match), and the entry's ``seq``
    and ``prev_hash`` are read from those bytes, never from a copy beside them. An entry whose
    bytes hash to its ``hash`` and hold the ``"prev_hash":"…"`` and ``"seq":N,`` that link it to
    the one before holds (those members in their canonical spelling: only the bytes the tablet
    hashed can carry them, and an edit to those bytes fails the hash); any other is read in full,
    so a break is reported with the same checks, order and ``Break`` kinds as ``verify_chain``.
    ``index`` is the position in ``entries``. With ``strict`` every entry is read in full, so an
    entry that lacks a field is ``malformed`` even when it is what was hashed: for entries as they
    arrive; a chain checked strictly once is checked again by hashes and links alone."""
    for index, (data, stored_hash) in enumerate(entries):
        if (
            not strict
            and hashlib.sha256(data).hexdigest() == stored_hash
            and b'"seq":%d,' % (prev_seq + 1) in data
            and b'"prev_hash":"%s"' % prev_hash.encode() in data
        ):
            prev_hash, prev_seq = stored_hash, prev_seq + 1
            continue
        found = _stored_break(index, data, stored_hash, prev_hash, prev_seq)
        if found is not None:
            return found
        prev_hash, prev_seq = stored_hash, prev_seq + 1
    return None


def _stored_break(
    index: int, data: bytes, stored_hash: str, prev_hash: str, prev_seq: int
) -> Break | None:
    """Why one stored entry does not follow ``prev_seq`` / ``prev_hash``, read in full."""
    try:
        fields = json.loads(data)
    except ValueError:
        return Break(index, None, None, "malformed", "the stored entry is not JSON")
    if not isinstance(fields, dict):
        return Break(index, None, None, "malformed", "the stored entry is not an object")
    missing = _FIELD_SET - fields.keys()
    if missing:
        return _malformed(index, fields, f"missing {', '.join(sorted(missing))}")
    seq = fields["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool):
        return _malformed(index, fields, "seq is not an integer")
    if not isinstance(stored_hash, str) or not _HEX64.fullmatch(stored_hash):
        return _malformed(index, fields, "hash is not 64 lower-case hex digits")
    entry_id = fields["id"] if isinstance(fields["id"], str) else None
    if seq <= prev_seq:
        return Break(index, seq, entry_id, "reordered", f"entry {seq} comes after entry {prev_seq}")
    if seq != prev_seq + 1:
        return Break(
            index,
            seq,
            entry_id,
            "sequence_gap",
            f"entries {prev_seq + 1}..{seq - 1} are missing before entry {seq}",
        )
    if hashlib.sha256(data).hexdigest() != stored_hash:
        return Break(index, seq, entry_id, "hash_mismatch", f"entry {seq} is not what was hashed")
    if fields["prev_hash"] != prev_hash:
        return Break(
            index,
            seq,
            entry_id,
            "prev_hash_mismatch",
            f"entry {seq} does not link to the entry before it",
        )
    return None


def chain(
    entries: Sequence[Mapping[str, Any]], *, prev_hash: str = GENESIS
) -> list[dict[str, Any]]:
    """``entries`` (without ``prev_hash`` and ``hash``) linked into a chain: for building and
    testing logs."""
    out: list[dict[str, Any]] = []
    for fields in entries:
        linked = {**fields, "prev_hash": prev_hash}
        prev_hash = entry_hash(prev_hash, linked)
        out.append({**linked, "hash": prev_hash})
    return out
