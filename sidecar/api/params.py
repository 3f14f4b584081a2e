"""Path and query parameters held to the same rule as bodies, for every route at once.

Bodies are checked by their models (``schemas.Strict``); a path or query parameter is a plain
``str`` in each route's signature, and a route added later would not think of it. So one
app-wide dependency checks them all before any route runs: an id in a path matches the pattern
every record id on the tablet has (``schemas.ID_PATTERN``), and no parameter holds a control
character (``domain.bounds``). A refused one is a 422 naming it, like a bad body field.
"""

from __future__ import annotations

import re

from fastapi import Request
from fastapi.exceptions import RequestValidationError

from sidecar.api.schemas import ID_PATTERN
from sidecar.domain import bounds

MAX_PARAM_LENGTH = 4096
_ID = re.compile(ID_PATTERN)


def _problem(name: str, value: str, *, in_path: bool) -> str | None:
    if len(value) > MAX_PARAM_LENGTH:
        return f"is {len(value)} characters long; at most {MAX_PARAM_LENGTH} are accepted"
    problem = bounds.forbidden_character(value, multiline=False)
    if problem is not None:
        return problem
    if in_path and name.endswith("_id") and not _ID.fullmatch(value):
        return "is not an id (1-64 letters, digits, - and _, starting with a letter or digit)"
    return None


def check_params(request: Request) -> None:
    """Raise a validation error naming every path or query parameter that cannot be right."""
    errors: list[dict[str, object]] = []
    for name, value in request.path_params.items():
        problem = _problem(name, str(value), in_path=True)
        if problem is not None:
            errors.append({"loc": ("path", name), "msg": problem, "type": "value_error"})
    for name, value in request.query_params.multi_items():
        problem = _problem(name, value, in_path=False) or bounds.forbidden_character(
            name, multiline=False
        )
        if problem is not None:
            errors.append({"loc": ("query", name), "msg": problem, "type": "value_error"})
    if errors:
        raise RequestValidationError(errors)
