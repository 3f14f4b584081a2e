"""Make sense of the text of a scanned code: which product, which batch or work order.

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
``gs1``
    A GS1 element string (GS1-128, GS1 DataMatrix, GS1 QR), in its printed form
    ``(01)09501101530003(17)261231(10)ABC123(21)S1`` or as a scanner sends it: an AIM symbology
    identifier (``]C1``, ``]d2``, ``]Q3``, ``]e0``, ``]J1``) or a leading group separator (FNC1,
    ASCII 29), then the elements, each variable-length one ended by a group separator. The
    product is the GTIN (01), whose check digit must hold; the unit is the batch/lot (10), else
    the serial (21). Expiry (17), best-before (15) and production (11) dates become ISO dates.
    See :func:`parse_gs1`.

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

__all__ = [
    "MAX_LENGTH", "WORK_ORDER_FIELDS", "Gs1Elements", "PayloadFormat", "ScannedUnit", "parse_gs1",
    "parse_payload",
]

PayloadFormat = Literal["json", "work_order_json", "work_order_csv", "legacy", "gs1"]

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
    "gs1": "GS1 element string",
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
    if kind == "gs1":
        return _gs1_unit(raw)
    _reject_control_characters(kind, raw)
    if kind in ("json", "work_order_json"):
        return _parse_json(raw)
    if kind == "work_order_csv":
        return _parse_csv(raw)
    if kind == "legacy":
        return _parse_legacy(raw)
    _fail(kind, "matches no known format (JSON object, work-order CSV, "
                "PRODUCT_BATCH_TIMESTAMP or GS1 element string)")


def _looks_like(raw: str) -> str:
    if raw.startswith(_GS) or raw[:3] in _AIM_GS1 or _HRI_START.match(raw):
        return "gs1"
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


# --- GS1 -------------------------------------------------------------------------------------

_GS = "\x1d"
# AIM symbology identifiers that announce GS1 data: GS1-128, GS1 DataMatrix, GS1 QR, GS1 DataBar,
# GS1 Composite/Aztec. A scanner set to send identifiers puts one before the data.
_AIM_GS1 = frozenset({"]C1", "]d2", "]Q3", "]e0", "]J1", "]z1"})
_HRI_START = re.compile(r"\((\d{2,4})\)")
# GS1 General Specifications, 3.2: the application identifiers a part or a lot label carries.
# AI -> (name, fixed length or None, maximum length, digits only).
_AIS: dict[str, tuple[str, int | None, int, bool]] = {
    "00": ("sscc", 18, 18, True),
    "01": ("gtin", 14, 14, True),
    "02": ("content_gtin", 14, 14, True),
    "10": ("batch", None, 20, False),
    "11": ("production_date", 6, 6, True),
    "12": ("due_date", 6, 6, True),
    "13": ("packaging_date", 6, 6, True),
    "15": ("best_before", 6, 6, True),
    "16": ("sell_by", 6, 6, True),
    "17": ("expiry", 6, 6, True),
    "20": ("variant", 2, 2, True),
    "21": ("serial", None, 20, False),
    "22": ("cpv", None, 20, False),
    "240": ("additional_id", None, 30, False),
    "241": ("customer_part_number", None, 30, False),
    "250": ("secondary_serial", None, 30, False),
    "30": ("count", None, 8, True),
    "37": ("count_of_items", None, 8, True),
    "400": ("order_number", None, 30, False),
    "410": ("ship_to_gln", 13, 13, True),
    "414": ("location_gln", 13, 13, True),
    "420": ("ship_to_postal_code", None, 20, False),
    "7003": ("expiry_time", 10, 10, True),
    "90": ("internal_90", None, 30, False),
    **{f"9{n}": (f"internal_9{n}", None, 90, False) for n in range(1, 10)},
    # Trade measures: four-digit AIs 31nn-36nn (the last digit places the decimal point).
    **{f"3{a}{b}{d}": (f"measure_3{a}{b}{d}", 6, 6, True)
       for a in range(1, 7) for b in range(10) for d in range(10)},
}
_DATE_AIS = frozenset({"11", "12", "13", "15", "16", "17"})
# GS1's 82-character set (General Specifications, figure 7.11-1): what an element value may hold.
_GS1_CHARS = frozenset(
    "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True, slots=True)
class Gs1Elements:
    """A parsed GS1 element string: ``elements`` maps each AI to its value in order, and the
    properties name the ones a unit is identified by (``None`` where absent)."""

    elements: dict[str, str]

    @property
    def gtin(self) -> str | None:
        return self.elements.get("01")

    @property
    def batch(self) -> str | None:
        return self.elements.get("10")

    @property
    def serial(self) -> str | None:
        return self.elements.get("21")

    @property
    def expiry(self) -> date | None:
        value = self.elements.get("17")
        return None if value is None else _gs1_date("17", value)

    @property
    def hri(self) -> str:
        """The printed (human-readable) spelling: ``(01)…(10)…``."""
        return "".join(f"({ai}){value}" for ai, value in self.elements.items())

    def fields(self) -> dict[str, Any]:
        """Every element by name (dates as ISO ``YYYY-MM-DD``), as a scan shows them."""
        out: dict[str, Any] = {}
        for ai, value in self.elements.items():
            name = _AIS[ai][0]
            out[name] = _gs1_date(ai, value).isoformat() if ai in _DATE_AIS else value
        return out


def parse_gs1(text: str, *, bare: bool = False) -> Gs1Elements:
    """Parse a GS1 element string in any spelling :mod:`this module <sidecar.qr.payload>` lists.

    ``bare`` is for text a decoder already knows to be GS1 (the symbol's leading FNC1 was read
    and dropped): elements without parentheses, variable-length ones ended by a group separator.
    Raises :class:`QrPayloadInvalid` naming the element and position at fault.
    """
    body = text
    if body[:3] in _AIM_GS1:
        body = body[3:]
    elif body.startswith(_GS):
        body = body[1:]
    elif _HRI_START.match(body):
        return _validated(_split_hri(body))
    elif not bare:
        _fail("gs1", "does not start with a symbology identifier, FNC1 or an (AI)")
    return _validated(_split_raw(body))


def _split_hri(text: str) -> list[tuple[str, str, int]]:
    parts: list[tuple[str, str, int]] = []
    matches = list(_HRI_START.finditer(text))
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        parts.append((match.group(1), text[match.end():end], match.start()))
    return parts


def _split_raw(text: str) -> list[tuple[str, str, int]]:
    parts: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        if text[pos] == _GS:  # a separator after a fixed-length element is allowed
            pos += 1
            continue
        ai = next((text[pos:pos + n] for n in (2, 3, 4) if text[pos:pos + n] in _AIS), None)
        if ai is None:
            _fail("gs1", f"unknown application identifier {text[pos:pos + 4]!r} at position "
                         f"{pos}", field=text[pos:pos + 4])
        fixed = _AIS[ai][1]
        start = pos + len(ai)
        if fixed is not None:
            end = start + fixed
        else:
            separator = text.find(_GS, start)
            end = len(text) if separator < 0 else separator
        parts.append((ai, text[start:end], pos))
        pos = end
    return parts


def _validated(parts: list[tuple[str, str, int]]) -> Gs1Elements:
    if not parts:
        _fail("gs1", "holds no elements")
    elements: dict[str, str] = {}
    for ai, value, position in parts:
        if ai not in _AIS:
            _fail("gs1", f"unknown application identifier ({ai}) at position {position}",
                  field=ai)
        name, fixed, longest, digits = _AIS[ai]
        where = f"({ai}) {name} at position {position}"
        if ai in elements:
            _fail("gs1", f"{where} appears twice", field=ai)
        if not value:
            _fail("gs1", f"{where} is empty", field=ai)
        if fixed is not None and len(value) != fixed:
            _fail("gs1", f"{where} must be {fixed} characters, got {len(value)}", field=ai)
        if len(value) > longest:
            _fail("gs1", f"{where} is longer than {longest} characters", field=ai)
        if digits and not (value.isascii() and value.isdigit()):
            _fail("gs1", f"{where} must be digits, got {value!r}", field=ai)
        bad = next((c for c in value if c not in _GS1_CHARS), None)
        if bad is not None:
            _fail("gs1", f"{where} contains {bad!r}, which GS1 does not allow", field=ai)
        if ai in ("01", "02") and not _gtin_check_ok(value):
            _fail("gs1", f"{where}: check digit {value[-1]} is wrong, expected "
                         f"{_gtin_check_digit(value[:-1])}", field=ai)
        if ai in _DATE_AIS:
            _gs1_date(ai, value)
        elements[ai] = value
    return Gs1Elements(elements)


def _gtin_check_digit(body: str) -> int:
    # GS1 mod-10: weights 3, 1, 3, … from the rightmost digit of the body.
    total = sum(int(c) * (3 if i % 2 == 0 else 1) for i, c in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def _gtin_check_ok(value: str) -> bool:
    return _gtin_check_digit(value[:-1]) == int(value[-1])


def _gs1_date(ai: str, value: str) -> date:
    """YYMMDD; DD 00 means the month's last day. The century follows GS1's rule: the year
    within 49 years before and 50 after the current one (General Specifications, 7.12)."""
    yy, month, day = int(value[:2]), int(value[2:4]), int(value[4:6])
    this_year = date.today().year
    year = this_year - this_year % 100 + yy
    if year - this_year > 50:
        year -= 100
    elif this_year - year > 49:
        year += 100
    try:
        if day == 0:
            following = date(year + month // 12, month % 12 + 1, 1)
            return date.fromordinal(following.toordinal() - 1)
        return date(year, month, day)
    except ValueError:
        _fail("gs1", f"({ai}) {_AIS[ai][0]} {value!r} is not a real date YYMMDD", field=ai)


def _gs1_unit(raw: str) -> ScannedUnit:
    parsed = parse_gs1(raw)
    gtin = parsed.gtin
    if gtin is None:
        _fail("gs1", "has no GTIN (01) to name the product", field="01")
    unit = parsed.batch or parsed.serial
    if unit is None:
        _fail("gs1", "has neither a batch/lot (10) nor a serial (21) to name the unit",
              field="10")
    return ScannedUnit(gtin, unit, parsed.serial, "gs1", parsed.fields(), raw)


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
