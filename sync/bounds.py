"""What a value must be to be stored: the bounds both server APIs (and the CLI) check at the edge.

Plain functions and pydantic types, no FastAPI and no database session, so the rules are
table-tested and shared by the device-facing protocol (``sync.protocol``), the admin API and
``sync.server.masters`` (which the CLI uses).

- Text: no C0 control characters. PostgreSQL refuses NUL in ``text`` and ``jsonb`` outright, and
  the other controls are never meant in a name, a code or a version; tab and newline are allowed,
  carriage return only where several lines are legitimate (descriptions, notes).
- Integers: what the column holds — ``INTEGER`` is 32-bit on PostgreSQL, ``BIGINT`` (and
  SQLite's ``INTEGER``) 64-bit; a larger number is a 422, never a driver overflow.
- JSON documents (an operation's ``data``, an item's criteria, a pipeline definition): no NUL in
  any key or string, at most ``MAX_JSON_DEPTH`` levels, and at most a given encoded size.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import AfterValidator, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from schema.formats import signatures

INT32_MAX = 2**31 - 1
INT32_MIN = -(2**31)
INT64_MAX = 2**63 - 1

MAX_JSON_DEPTH = 32
# One operation's data, one item's criteria: far above what the tablet writes (a few KB).
MAX_DATA_BYTES = 256 * 1024
# A pipeline definition carries its steps and their parameters.
MAX_DEFINITION_BYTES = 1024 * 1024
# Unbounded text columns (descriptions) still get a bound at the edge.
MAX_TEXT_CHARS = 10_000
# argon2 hashes what it is given: a password longer than this is not a password.
MAX_PASSWORD_CHARS = 1024

# C0 controls less tab and newline (and carriage return, for single-line text).
_SINGLE_LINE_BAD = re.compile(r"[\x00-\x08\x0b-\x1f]")
_MULTI_LINE_BAD = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
# The same rules as JSON Schema patterns, so the OpenAPI documents say what is accepted.
SINGLE_LINE_PATTERN = r"^[^\x00-\x08\x0b-\x1f]*$"
MULTI_LINE_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f]*$"


def control_problem(value: str, *, multiline: bool = False) -> str | None:
    """Why ``value`` cannot be stored as text, or None."""
    found = (_MULTI_LINE_BAD if multiline else _SINGLE_LINE_BAD).search(value)
    if found is None:
        return None
    return f"control character U+{ord(found.group()):04X} at position {found.start()}"


@dataclass(frozen=True)
class NoControls:
    """Annotated metadata: refuse control characters, and say so in the JSON Schema.

    Put it after any ``Field(max_length=…)``: the length stays a string constraint, whose
    message says characters, and this check runs on the string that passed it.
    """

    multiline: bool = False

    def check(self, value: str) -> str:
        problem = control_problem(value, multiline=self.multiline)
        if problem:
            raise ValueError(f"text must not contain a {problem}")
        return value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        found = handler(schema)
        found["pattern"] = MULTI_LINE_PATTERN if self.multiline else SINGLE_LINE_PATTERN
        return found


SINGLE_LINE = NoControls()
MULTI_LINE = NoControls(multiline=True)
# Bounded where used: ``Annotated[str, Field(max_length=…), SINGLE_LINE]``.
SingleLine = Annotated[str, SINGLE_LINE]
MultiLine = Annotated[str, MULTI_LINE]


def json_problem(value: Any, *, max_bytes: int = MAX_DATA_BYTES,
                 max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why a JSON document cannot be stored, or None.

    Walked without recursion, so a hostile nesting costs no stack; the size is that of the
    compact encoding, the form PostgreSQL receives.
    """
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        node, depth, where = stack.pop()
        if isinstance(node, dict | list) and depth > max_depth:
            return f"nested deeper than {max_depth} levels at {where or 'the top'}"
        if isinstance(node, dict):
            for key, child in node.items():
                if not isinstance(key, str) or "\x00" in key:
                    return f"a key at {where or 'the top'} contains a NUL character"
                stack.append((child, depth + 1, f"{where}.{key}" if where else key))
        elif isinstance(node, list):
            stack.extend((child, depth + 1, f"{where}[{i}]") for i, child in enumerate(node))
        elif isinstance(node, str) and "\x00" in node:
            return f"the text at {where or 'the top'} contains a NUL character"
        elif isinstance(node, int) and not isinstance(node, bool) and abs(node) > INT64_MAX:
            return f"the number at {where or 'the top'} is out of range"
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    if size > max_bytes:
        return f"{size} bytes encoded, over the limit of {max_bytes}"
    return None


def _data(value: dict[str, Any]) -> dict[str, Any]:
    problem = json_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _definition(value: dict[str, Any]) -> dict[str, Any]:
    problem = json_problem(value, max_bytes=MAX_DEFINITION_BYTES)
    if problem:
        raise ValueError(problem)
    return value


# A JSON object that PostgreSQL's jsonb accepts and that is small enough to apply.
JsonObject = Annotated[dict[str, Any], AfterValidator(_data)]
JsonDefinition = Annotated[dict[str, Any], AfterValidator(_definition)]

# Integers as their columns hold them.
Int32 = Annotated[int, Field(ge=INT32_MIN, le=INT32_MAX)]
Int64 = Annotated[int, Field(ge=-INT64_MAX - 1, le=INT64_MAX)]


def _holds_text(kind: sa.types.TypeEngine[Any]) -> bool:
    # SQLModel's AutoString decorates String (and keeps the length on itself).
    while isinstance(kind, sa.TypeDecorator):
        kind = kind.impl_instance
    return isinstance(kind, sa.String)


def column_problem(column: sa.Column[Any], value: Any, *, controls: bool = True) -> str | None:
    """Why ``value`` does not fit ``column`` as the schema declares it, or None.

    Strings are held to the column's length (unbounded text to ``MAX_TEXT_CHARS``) and, with
    ``controls``, refused with control characters (bounded columns hold single-line names and
    codes, unbounded ones may hold several lines; without it only NUL, which PostgreSQL cannot
    store); integers to the column's width; JSON to ``json_problem``.
    """
    kind = column.type
    if value is None:
        return None
    if isinstance(value, str) and _holds_text(kind):
        length: int | None = getattr(kind, "length", None)
        limit = length or MAX_TEXT_CHARS
        if len(value) > limit:
            return f"{column.name} is {len(value)} characters long, over the limit of {limit}"
        if controls:
            problem = control_problem(value, multiline=length is None)
        else:
            problem = "NUL character" if "\x00" in value else None
        return f"{column.name} contains a {problem}" if problem else None
    if isinstance(value, int) and not isinstance(value, bool) and isinstance(kind, sa.Integer):
        low, high = ((-INT64_MAX - 1, INT64_MAX) if isinstance(kind, sa.BigInteger)
                     else (INT32_MIN, INT32_MAX))
        if not low <= value <= high:
            return f"{column.name} {value} is out of range ({low}..{high})"
        return None
    if isinstance(value, dict | list):
        problem = json_problem(value, max_bytes=MAX_DEFINITION_BYTES)
        return f"{column.name}: {problem}" if problem else None
    return None


def row_problem(table: sa.Table, values: dict[str, Any], *, controls: bool = True) -> str | None:
    """The first value of ``values`` (by column name) that does not fit ``table``, or None."""
    for name, value in values.items():
        column = table.columns.get(name)
        if column is not None:
            problem = column_problem(column, value, controls=controls)
            if problem:
                return problem
    return None


# --- an AI result's provenance ---------------------------------------------------------------

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Names and versions a program wrote: no control character at all, not even tab or newline.
_ANY_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A pipeline runs a handful of models and steps; these are far above any real one.
MAX_MODEL_HASHES = 64
MAX_STEP_TIMINGS = 256
MAX_STEP_NAME = 100
MAX_STEP_MS = 86_400_000.0  # a day, in milliseconds
MAX_PROCESSING_S = 86_400.0  # a whole job, in seconds: a day
_STEP_TEXT = ("node", "op", "stage")
_STEP_NUMBERS = ("start_ms", "ms")


def _number_problem(value: Any, low: float, high: float) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"is {type(value).__name__}, not a number"
    if not math.isfinite(value) or not low <= value <= high:
        return f"{value!r} is outside {low:g}..{high:g}"
    return None


def provenance_problem(data: Mapping[str, Any]) -> str | None:
    """Why an AI result's provenance and confidence (keys of ``ai_inspection_result`` data)
    cannot be stored, or None. Each key may be absent or null (results made before kensa kept
    provenance); present, it must be what a tablet's job runner writes: the model hashes a list
    of distinct lower-case hex SHA-256, the photo's one such hash, the confidence a probability,
    the job's seconds at most a day, the steps a list of ``{node, op, stage, start_ms, ms}``."""
    hashes = data.get("model_hashes")
    if hashes is not None:
        if not isinstance(hashes, list):
            return "model_hashes is not a list"
        if len(hashes) > MAX_MODEL_HASHES:
            return f"model_hashes has {len(hashes)} entries, over the limit of {MAX_MODEL_HASHES}"
        for i, h in enumerate(hashes):
            if not isinstance(h, str) or not _SHA256.fullmatch(h):
                return f"model_hashes[{i}] is not a SHA-256 in lower-case hex"
        if len(set(hashes)) != len(hashes):
            return "model_hashes names a model twice"
    image = data.get("image_sha256")
    if image is not None and (not isinstance(image, str) or not _SHA256.fullmatch(image)):
        return "image_sha256 is not a SHA-256 in lower-case hex"
    confidence = data.get("confidence")
    if confidence is not None:
        problem = _number_problem(confidence, 0.0, 1.0)
        if problem:
            return f"confidence {problem}"
    # The job's measured seconds: the server dates the pipeline execution's start by it.
    seconds = data.get("processing_time")
    if seconds is not None:
        problem = _number_problem(seconds, 0.0, MAX_PROCESSING_S)
        if problem:
            return f"processing_time {problem}"
    for key in ("engine_version", "execution_provider"):
        text = data.get(key)
        if text is not None:
            if not isinstance(text, str):
                return f"{key} is not text"
            if _ANY_CONTROL.search(text):
                return f"{key} contains a control character"
    steps = data.get("step_timings")
    if steps is not None:
        if not isinstance(steps, list):
            return "step_timings is not a list"
        if len(steps) > MAX_STEP_TIMINGS:
            return f"step_timings has {len(steps)} entries, over the limit of {MAX_STEP_TIMINGS}"
        for i, step in enumerate(steps):
            problem = _step_problem(step)
            if problem:
                return f"step_timings[{i}] {problem}"
    return None


def _step_problem(step: Any) -> str | None:
    if not isinstance(step, dict):
        return "is not an object"
    extra = set(step) - {*_STEP_TEXT, *_STEP_NUMBERS}
    if extra:
        return f"has unknown keys {', '.join(sorted(extra))}"
    for key in _STEP_TEXT:
        text = step.get(key)
        if not isinstance(text, str) or not text:
            return f"needs {key} as text"
        if len(text) > MAX_STEP_NAME:
            return f"{key} is {len(text)} characters long, over the limit of {MAX_STEP_NAME}"
        if _ANY_CONTROL.search(text):
            return f"{key} contains a control character"
    for key in _STEP_NUMBERS:
        problem = _number_problem(step.get(key), 0.0, MAX_STEP_MS)
        if problem:
            return f"{key} {problem}"
    return None


# --- a signature ------------------------------------------------------------------------------


def signature_problem(operation: str, data: Mapping[str, Any]) -> str | None:
    """Why a pushed signature cannot be kept, or None: one is only ever made (never changed or
    removed), with a meaning and a signed record type of ``schema.formats.signatures`` and the
    signed record's digest as 64 lower-case hex digits."""
    if operation != "INSERT":
        return f"a signature is never changed or removed ({operation})"
    checks = (
        ("meaning", signatures.MEANINGS),
        ("record_type", signatures.SIGNED_RECORDS),
    )
    for name, allowed in checks:
        value = data.get(name)
        if value not in allowed:
            return f"{name} {value!r} is not one of {', '.join(allowed)}"
    digest = data.get("record_digest")
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        return "record_digest is not a SHA-256 in lower-case hex"
    return None
