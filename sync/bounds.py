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
import re
from dataclasses import dataclass
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import AfterValidator, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

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
