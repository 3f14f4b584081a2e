"""The tablet's door to the shared pipeline-definition format (:mod:`schema.formats.pipeline`).

The structure is parsed by the code the server runs when a definition is published; here its
errors become the sidecar's :class:`~sidecar.pipeline.errors.DefinitionInvalid`. What needs the
op library's code or the models is :mod:`sidecar.pipeline.validate`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schema import errors as formats
from schema.formats import pipeline as shared
from schema.formats.pipeline import PipelineDefinition
from sidecar.pipeline.errors import definition_invalid


def parse_definition(data: Mapping[str, Any] | str | bytes) -> PipelineDefinition:
    """Parse a definition (JSON text or an already-decoded object); structural errors only."""
    try:
        return shared.parse_definition(data)
    except formats.DefinitionInvalid as exc:
        raise definition_invalid(exc) from exc
