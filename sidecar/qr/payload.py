"""Make sense of the text of a scanned QR code: which product, which batch or work order.

Pure (no I/O), so the same rules apply to camera frames and to keyboard-wedge scanners. Accepted
spellings (DESIGN.md, "Inspection workflow"):

``json``
    ``{"product_id": "BRK-100", "batch_id": "A12-3456", "serial": "0098172"}``; ``serial`` is
    optional, other keys are kept in ``fields``.
``work_order_json``
    ``{"workOrderId", "instructionId", "productCode", "machineNumber", "productionDate",
    "monthlySequence"}``, all six required, other keys kept. The batch is the work order.
``work_order_csv``
    The same six fields comma-separated, either one data line in that order, or a header line
    naming the fields (any order, any case) and one data line. Both occur: label software exports
    with a header, hand-made codes usually without. Standard CSV quoting applies.
``legacy``
    ``PRODUCT_BATCH_TIMESTAMP`` such as ``BRK-100_A12-3456_20261127T0800`` (seconds optional).

Identifiers (product, batch, serial, work-order ids, machine) are 1–64 letters or digits of any
script (Japanese included) plus ``- _ . / # : + ( )`` and inner spaces. That is stricter than the
field allows in principle, and deliberately so: quotes, semicolons, ``=``, ``<>`` and control
characters only ever show up in misreads and in attempts at injection, never in real labels.
Anything else raises :class:`~sidecar.errors.QrPayloadInvalid`, whose message says which format
the text looked like and what is wrong with it (``detail``: ``looks_like``, and ``field`` when one
field is at fault).
"""

from __future__ import annotations

import csv
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, NoReturn

from sidecar.errors import QrPayloadInvalid

__all__ = ["MAX_LENGTH", "WORK_ORDER_FIELDS", "PayloadFormat", "ScannedUnit", "parse_payload"]

PayloadFormat = Literal["json", "work_order_json", "work_order_csv", "legacy"]

# A version-40 QR code holds at most 4,296 alphanumeric characters; real labels carry well under
# a hundred. The cap keeps a runaway wedge scanner (or a pasted document) out of the parser.
MAX_LENGTH = 4096
MAX_IDENTIFIER = 64
MAX_SEQUENCE = 999_999

WORK_ORDER_FIELDS = (
    "workOrderId", "instructionId", "productCode", "machineNumber", "productionDate",
    "monthlySequence",
)
_WORK_ORDER_IDS = ("workOrderId", "instructionId", "productCode", "machineNumber")
_SIMPLE_FIELDS = ("product_id", "batch_id")
_IDENTIFIER_PUNCTUATION = frozenset("-_./#:+() ")
_LABELS = {
    "json": "JSON payload",
    "work_order_json": "work-order JSON",
    "work_order_csv": "work-order CSV",
    "legacy": "legacy PRODUCT_BATCH_TIMESTAMP payload",
    "unknown": "QR payload",
}
_DATE = re.compile(r"(\d{4})[-/](\d{2})[-/](\d{2})")
_TIMESTAMP = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})?")
# Wedge scanners append CR, LF or Tab; some encoders prefix a UTF-8 byte-order mark.
_TRIM = " \t\r\n\v\f\ufeff"


@dataclass(frozen=True, slots=True)
class ScannedUnit:
    """What a scan names: a product and a unit/batch of it.

    ``fields`` holds every field of the payload, the recognised ones validated and normalised
    (identifiers trimmed, dates ISO ``YYYY-MM-DD``, ``monthlySequence`` an int) and the rest as
    they came; treat it as read-only. ``raw`` is the scanned text without the whitespace around
    it (what a wedge scanner appends), i.e. exactly what the code carries.
    """

    product_code: str
    batch_id: str
    serial: str | None
    format: PayloadFormat
    fields: dict[str, Any] = field(hash=False)
    raw: str


def parse_payload(text: str) -> ScannedUnit:
    """Parse a decoded or wedge-typed QR text; raise :class:`QrPayloadInvalid` if it is none of
    the accepted formats."""
    raw = text.strip(_TRIM)
    if not raw:
        _fail("unknown", "empty")
    kind = _looks_like(raw)
    if len(raw) > MAX_LENGTH:
        _fail(kind, f"{len(raw)} characters long; at most {MAX_LENGTH} are accepted")
    _reject_control_characters(kind, raw)
    if kind in ("json", "work_order_json"):
        return _parse_json(raw)
    if kind == "work_order_csv":
        return _parse_csv(raw)
    if kind == "legacy":
        return _parse_legacy(raw)
    _fail(kind, "matches no known format (JSON object, work-order CSV or "
                "PRODUCT_BATCH_TIMESTAMP)")


def _looks_like(raw: str) -> str:
    if raw.startswith(("{", "[")):
        return "work_order_json" if "workOrderId" in raw else "json"
    if "," in raw:
        return "work_order_csv"
    if "_" in raw:
        return "legacy"
    return "unknown"


def _fail(kind: str, problem: str, **detail: Any) -> NoReturn:
    raise QrPayloadInvalid(f"{_LABELS[kind]}: {problem}", looks_like=kind, **detail)


def _reject_control_characters(kind: str, raw: str) -> None:
    for index, char in enumerate(raw):
        if char not in "\t\r\n" and unicodedata.category(char) == "Cc":
            _fail(kind, f"contains control character U+{ord(char):04X} at position {index}")


# --- JSON ------------------------------------------------------------------------------------


def _parse_json(raw: str) -> ScannedUnit:
    obj = _load_json(raw)
    work_order = [k for k in WORK_ORDER_FIELDS if k in obj]
    simple = [k for k in _SIMPLE_FIELDS if k in obj]
    if work_order and simple:
        _fail("json", f"mixes {'/'.join(simple)} with work-order fields ({', '.join(work_order)})")
    if work_order:
        return _work_order(obj, "work_order_json", raw)
    if not simple:
        _fail("json", "neither product_id/batch_id nor the work-order fields "
                      f"({', '.join(WORK_ORDER_FIELDS)})")
    product = _identifier("json", obj, "product_id")
    batch = _identifier("json", obj, "batch_id")
    serial = None if obj.get("serial") is None else _identifier("json", obj, "serial")
    fields = {**obj, "product_id": product, "batch_id": batch}
    if serial is not None:
        fields["serial"] = serial
    return ScannedUnit(product, batch, serial, "json", fields, raw)


def _load_json(raw: str) -> dict[str, Any]:
    kind = _looks_like(raw)
    try:
        obj = json.loads(raw, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        _fail(kind, f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")
    except RecursionError as exc:
        raise QrPayloadInvalid(f"{_LABELS[kind]}: nested too deeply",
                               looks_like=kind) from exc
    if not isinstance(obj, dict):
        _fail(kind, f"must be a JSON object, got {_json_type(obj)}")
    return obj


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of duplicate keys silently; two product ids in one code is either a
    # broken encoder or someone smuggling a second value past a checker that reads the first.
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            kind = "work_order_json" if key in WORK_ORDER_FIELDS else "json"
            _fail(kind, f"key {key!r} appears twice", field=key)
        obj[key] = value
    return obj


def _no_constant(name: str) -> NoReturn:
    _fail("json", f"contains {name}, which is not JSON")


# --- work orders -----------------------------------------------------------------------------


def _work_order(values: Mapping[str, Any], kind: PayloadFormat, raw: str) -> ScannedUnit:
    missing = [k for k in WORK_ORDER_FIELDS if k not in values]
    if missing:
        _fail(kind, f"missing {', '.join(missing)}", field=missing[0])
    ids = {name: _identifier(kind, values, name) for name in _WORK_ORDER_IDS}
    fields = {
        **values,
        **ids,
        "productionDate": _date(kind, values["productionDate"]).isoformat(),
        "monthlySequence": _sequence(kind, values["monthlySequence"]),
    }
    return ScannedUnit(ids["productCode"], ids["workOrderId"], None, kind, fields, raw)


def _date(kind: str, value: object) -> date:
    name = "productionDate"
    text = value.strip() if isinstance(value, str) else None
    match = _DATE.fullmatch(text) if text else None
    if match is None:
        _fail(kind, f"{name} must be a date YYYY-MM-DD, got {value!r}", field=name)
    try:
        return date(*(int(g) for g in match.groups()))
    except ValueError:
        _fail(kind, f"{name} {text!r} is not a real date", field=name)


def _sequence(kind: str, value: object) -> int:
    name = "monthlySequence"
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        number = int(value.strip())
    if number is None or not 1 <= number <= MAX_SEQUENCE:
        _fail(kind, f"{name} must be a positive integer up to {MAX_SEQUENCE}, got {value!r}",
              field=name)
    return number


# --- CSV -------------------------------------------------------------------------------------


def _parse_csv(raw: str) -> ScannedUnit:
    kind: PayloadFormat = "work_order_csv"
    lines = [line for line in raw.splitlines() if line.strip()]
    try:
        rows = [[cell.strip() for cell in row]
                for row in csv.reader(lines, strict=True, skipinitialspace=True)]
    except csv.Error as exc:
        raise QrPayloadInvalid(f"{_LABELS[kind]}: not valid CSV: {exc}",
                               looks_like=kind) from exc
    header = _header(rows[0])
    if header is not None:
        rows = rows[1:]
    if len(rows) != 1:
        problem = "header line but no data line" if not rows else (
            f"{len(rows)} data lines; a code carries exactly one unit")
        _fail(kind, problem)
    row = rows[0]
    names = header or list(WORK_ORDER_FIELDS)
    if len(row) != len(names):
        _fail(kind, f"needs {len(names)} fields ({', '.join(names)}), got {len(row)}")
    return _work_order(dict(zip(names, row, strict=True)), kind, raw)


def _header(row: list[str]) -> list[str] | None:
    """The canonical field names if ``row`` is a header line, ``None`` if it is data."""
    canonical = {name.casefold(): name for name in WORK_ORDER_FIELDS}
    known = [canonical.get(cell.casefold()) for cell in row]
    if not any(known):
        return None
    unknown = [cell for cell, name in zip(row, known, strict=True) if name is None]
    if unknown:
        _fail("work_order_csv", f"header has unknown field(s) {', '.join(map(repr, unknown))}")
    names = [name for name in known if name is not None]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        _fail("work_order_csv", f"header names {', '.join(duplicated)} twice",
              field=duplicated[0])
    return names


# --- legacy ----------------------------------------------------------------------------------


def _parse_legacy(raw: str) -> ScannedUnit:
    kind: PayloadFormat = "legacy"
    if any(char.isspace() for char in raw):
        _fail(kind, "contains whitespace")
    parts = raw.split("_")
    if len(parts) != 3:
        _fail(kind, f"must be 3 parts separated by '_', got {len(parts)}")
    values = dict(zip(("product_code", "batch_id", "timestamp"), parts, strict=True))
    product = _identifier(kind, values, "product_code")
    batch = _identifier(kind, values, "batch_id")
    stamp = _timestamp(kind, values["timestamp"])
    fields = {"product_code": product, "batch_id": batch, "timestamp": stamp.isoformat()}
    return ScannedUnit(product, batch, None, kind, fields, raw)


def _timestamp(kind: str, text: str) -> datetime:
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        _fail(kind, f"timestamp must be YYYYMMDDTHHMM[SS], got {text!r}", field="timestamp")
    year, month, day, hour, minute, second = match.groups()
    try:
        return datetime(int(year), int(month), int(day), int(hour), int(minute),
                        int(second or 0))
    except ValueError:
        _fail(kind, f"timestamp {text!r} is not a real date and time", field="timestamp")


# --- shared ----------------------------------------------------------------------------------


def _identifier(kind: str, values: Mapping[str, Any], name: str) -> str:
    if name not in values:
        _fail(kind, f"missing {name}", field=name)
    value = values[name]
    # Numbers are fine (some systems emit numeric ids), booleans, floats and structures are not.
    if isinstance(value, bool) or not isinstance(value, str | int):
        _fail(kind, f"{name} must be a string or a number, got {_json_type(value)}", field=name)
    text = str(value).strip()
    if not text:
        _fail(kind, f"{name} is empty", field=name)
    if len(text) > MAX_IDENTIFIER:
        _fail(kind, f"{name} is longer than {MAX_IDENTIFIER} characters", field=name)
    for char in text:
        if not (char.isalnum() or char in _IDENTIFIER_PUNCTUATION):
            _fail(kind, f"{name} contains {char!r}, which identifiers may not hold", field=name)
    return text


def _json_type(value: object) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string",
             list: "an array", dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)
