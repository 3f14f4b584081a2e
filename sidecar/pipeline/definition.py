"""The tablet's door to the shared pipeline-definition format (:mod:`schema.formats.pipeline`).

The structure is parsed by the code the server runs when a definition is published; here its
errors become the sidecar's :class:`~sidecar.pipeline.errors.DefinitionInvalid`. What needs the
op library's code or the models is :mod:`sidecar.pipeline.validate`.
"""

from __future__ import annotations

from schema.formats import pipeline as shared
from sidecar.pipeline.errors import from_formats

parse_definition = from_formats(shared.parse_definition)
