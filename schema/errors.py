"""Errors of the schema package: opening and migrating kensa's databases, and the formats both
ends read.

SchemaError
├── NotADatabase         the file is not SQLite, or is corrupt
├── ForeignDatabase      a database of another application, or of a newer kensa
├── DatabaseUnreachable  the server database cannot be reached
├── KeyRefused           an encrypted file that this key does not open (or no database at all)
├── KeyNeeded            (a NotADatabase) an encrypted file, and no key to open it with
├── NotEncrypted         a plaintext device file where an encrypted one is expected
└── FormatInvalid        a document both ends read (``schema.formats``) is malformed
    ├── CriteriaInvalid      an item's criteria: ``key`` names the criteria key
    └── DefinitionInvalid    a pipeline definition: ``node`` names the step, with its ``field``,
                             ``param``, ``input`` or ``selector``
"""

from __future__ import annotations

from typing import Any


class SchemaError(Exception):
    """Base of every error this package raises on purpose."""


class NotADatabase(SchemaError):
    pass


class ForeignDatabase(SchemaError):
    pass


class DatabaseUnreachable(SchemaError):
    pass


class KeyRefused(SchemaError):
    pass


class KeyNeeded(NotADatabase):
    pass


class NotEncrypted(SchemaError):
    pass


class FormatInvalid(SchemaError):
    """A document both ends must read alike (criteria, a pipeline definition) is malformed.

    ``code`` is the same on the tablet and the server; ``detail`` names where (the criteria
    ``key``; the pipeline ``node`` (step), ``field``, ``param``, ``input`` or ``selector``).
    """

    code = "format_invalid"

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail: dict[str, Any] = detail


class CriteriaInvalid(FormatInvalid):
    """Judgment criteria that are not well-formed (unknown type, missing key, bad regex...)."""

    code = "criteria_invalid"


class DefinitionInvalid(FormatInvalid):
    """A pipeline definition that cannot run: bad structure, unknown op, wiring, parameter types.

    ``reason`` is the message without the step's name, so a caller can re-raise it in its own
    tree and have the step named once.
    """

    code = "pipeline_definition_invalid"

    def __init__(self, reason: str, *, node: str | None = None, **detail: Any) -> None:
        super().__init__(f"step '{node}': {reason}" if node else reason, node=node, **detail)
        self.reason = reason
        self.node = node
