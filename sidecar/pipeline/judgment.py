"""The tablet's door to the shared criteria (:mod:`schema.formats.criteria`).

The parser and the judgment are the ones the server runs when criteria are published; here their
errors become the sidecar's :class:`~sidecar.pipeline.errors.CriteriaInvalid` (a 400 at the API,
a clear message on the inspector's screen).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schema import errors as formats
from schema.formats import criteria as shared
from schema.formats.criteria import Criteria, Judgment
from sidecar.pipeline.errors import criteria_invalid


def parse_criteria(raw: Mapping[str, Any] | str | bytes | Criteria) -> Criteria:
    """Validate an item's criteria JSON; ``CriteriaInvalid`` says which key is wrong and why."""
    try:
        return shared.parse_criteria(raw)
    except formats.CriteriaInvalid as exc:
        raise criteria_invalid(exc) from exc


def judge(
    criteria: Mapping[str, Any] | str | bytes | Criteria,
    measurements: Mapping[str, Any],
    context: Mapping[str, Any] | None = None,
    units: Mapping[str, str] | None = None,
) -> Judgment:
    """The verdict for one item. Raises only ``CriteriaInvalid`` (bad criteria, a unit that
    cannot be converted)."""
    try:
        return shared.judge(criteria, measurements, context, units)
    except formats.CriteriaInvalid as exc:
        raise criteria_invalid(exc) from exc
