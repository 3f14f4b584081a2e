"""Errors of the pipeline engine and of judgment, as branches of the sidecar's tree.

Every message names what was wrong and where (the step, the model, the criteria key), because these
surface on an inspector's screen or in an admin's log far from the definition that caused them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from schema import errors as formats
from sidecar.errors import InvalidInput, PipelineError


class DefinitionInvalid(PipelineError):
    """A pipeline definition that cannot run: bad structure, unknown op, wiring, types or shapes."""

    code = "pipeline_definition_invalid"

    def __init__(self, message: str, *, node: str | None = None, **detail: Any) -> None:
        text = f"step '{node}': {message}" if node else message
        super().__init__(text, node=node, **detail)
        self.node = node


class ModelUnavailable(PipelineError):
    """A model that the definition references is not in the model store."""

    code = "model_unavailable"


class ModelCorrupt(PipelineError):
    """A model file whose bytes do not hash to its name, or that ONNX Runtime cannot load."""

    code = "model_corrupt"


class ModelIncompatible(PipelineError):
    """A model file this ONNX Runtime will not run as exported (its opset or IR version)."""

    code = "model_incompatible"


class NodeFailed(PipelineError):
    """A step raised while running on a particular image."""

    code = "pipeline_step_failed"


class CriteriaInvalid(InvalidInput):
    """Judgment criteria that are not well-formed (unknown type, missing key, bad regex...)."""

    code = "criteria_invalid"


def criteria_invalid(exc: formats.CriteriaInvalid) -> CriteriaInvalid:
    """The shared format's error in the sidecar's tree: same code, message and detail."""
    return CriteriaInvalid(exc.message, **exc.detail)


def definition_invalid(exc: formats.DefinitionInvalid) -> DefinitionInvalid:
    """The shared format's error in the sidecar's tree: same code, message and detail."""
    return DefinitionInvalid(exc.reason, **exc.detail)


P = ParamSpec("P")
R = TypeVar("R")


def from_formats(fn: Callable[P, R]) -> Callable[P, R]:
    """A function of ``schema.formats`` that raises the sidecar's errors instead of the shared
    ones, so the API answers them like every other error of the tablet."""

    @functools.wraps(fn)
    def door(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except formats.CriteriaInvalid as exc:
            raise criteria_invalid(exc) from exc
        except formats.DefinitionInvalid as exc:
            raise definition_invalid(exc) from exc

    return door
