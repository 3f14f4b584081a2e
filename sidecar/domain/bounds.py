"""What a value may hold to be stored on the tablet and then on the server, checked at the edge.

Everything the sidecar accepts is written to SQLite and later pushed to the server's PostgreSQL.
A value PostgreSQL refuses (a NUL in text, a lone UTF-16 surrogate, which no UTF-8 column can
hold) or one deeper than a JSON reader will go would be stored here and then refused there on
every push, for ever, with the inspector long gone. So the edge refuses it, once, with a reason:

- text: no control characters (Unicode category ``Cc``: C0, DEL, C1) and no surrogates; a
  multi-line note may hold tab, newline and carriage return, a single-line value (a name, a
  code, a version) none of them;
- free-form JSON (an AI result's ``measurements``, ``detailed_results``, ``timings``): the same
  rule for every key and string inside, at most ``MAX_JSON_DEPTH`` levels, ``MAX_JSON_KEYS``
  keys per object of at most ``MAX_KEY_LENGTH`` characters, and ``MAX_JSON_BYTES`` encoded.

Pure: no FastAPI, no database; the API's request models call it, and its tests are tables.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_JSON_DEPTH = 32
MAX_JSON_KEYS = 256
MAX_KEY_LENGTH = 128
# The three JSON fields of one AI result together stay well under what the server takes per
# operation (256 KB), with room for the rest of the row.
MAX_JSON_BYTES = 64 * 1024

_MULTILINE_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_LINE_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def forbidden_character(text: str, *, multiline: bool = True) -> str | None:
    """Why ``text`` cannot be stored (which character, where), or None when it can."""
    found = (_MULTILINE_FORBIDDEN if multiline else _LINE_FORBIDDEN).search(text)
    if found is None:
        return None
    char = found.group()
    kind = "a surrogate" if "\ud800" <= char <= "\udfff" else "a control character"
    return f"contains {kind} (U+{ord(char):04X}) at position {found.start()}"


def check_text(text: str, *, multiline: bool = True) -> str:
    """``text`` unchanged, or ValueError saying which character cannot be stored."""
    problem = forbidden_character(text, multiline=multiline)
    if problem is not None:
        raise ValueError(problem)
    return text


def _where(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def check_strings(value: Any) -> None:
    """ValueError naming the first string (a key or a value, at any depth) that cannot be stored.

    Strings inside lists and objects may be multi-line; keys may not. Iterative, so that a
    nesting deeper than Python's recursion limit is reported, not crashed on.
    """
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            problem = forbidden_character(item)
            if problem is not None:
                raise ValueError(f"{_where(path) or 'the text'} {problem}")
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str):
                    problem = forbidden_character(key, multiline=False)
                    if problem is not None:
                        raise ValueError(f"the key {key!r} at {_where(path) or 'top'} {problem}")
                stack.append((child, (*path, str(key))))
        elif isinstance(item, list | tuple):
            stack.extend((child, (*path, n)) for n, child in enumerate(item))


def check_json(value: Any) -> None:
    """ValueError when free-form JSON is nested too deep, has too many or too long keys, holds
    a string that cannot be stored, or is too big once encoded."""
    stack: list[tuple[Any, int, tuple[str | int, ...]]] = [(value, 1, ())]
    while stack:
        item, depth, path = stack.pop()
        if not isinstance(item, dict | list | tuple):
            continue
        if depth > MAX_JSON_DEPTH:
            raise ValueError(
                f"nested more than {MAX_JSON_DEPTH} levels deep (at {_where(path)})"
            )
        if isinstance(item, dict):
            if len(item) > MAX_JSON_KEYS:
                raise ValueError(
                    f"{_where(path) or 'the object'} has {len(item)} keys;"
                    f" at most {MAX_JSON_KEYS} are accepted"
                )
            for key, child in item.items():
                if len(str(key)) > MAX_KEY_LENGTH:
                    raise ValueError(
                        f"a key at {_where(path) or 'top'} is {len(str(key))} characters long;"
                        f" at most {MAX_KEY_LENGTH} are accepted"
                    )
                stack.append((child, depth + 1, (*path, str(key))))
        else:
            stack.extend((child, depth + 1, (*path, n)) for n, child in enumerate(item))
    check_strings(value)
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
    if size > MAX_JSON_BYTES:
        raise ValueError(
            f"is {size} bytes encoded; at most {MAX_JSON_BYTES} are accepted"
        )
