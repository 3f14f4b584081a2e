"""The tablet's door to the shared criteria (:mod:`schema.formats.criteria`).

The parser and the judgment are the ones the server runs when criteria are published; here their
errors become the sidecar's :class:`~sidecar.pipeline.errors.CriteriaInvalid` (a 400 at the API,
a clear message on the inspector's screen).
"""

from __future__ import annotations

from schema.formats import criteria as shared
from sidecar.pipeline.errors import from_formats

parse_criteria = from_formats(shared.parse_criteria)
judge = from_formats(shared.judge)
