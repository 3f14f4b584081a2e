"""Errors of the schema package: opening and migrating kensa's databases.

SchemaError
├── NotADatabase         the file is not SQLite, or is corrupt
├── ForeignDatabase      a database of another application, or of a newer kensa
└── DatabaseUnreachable  the server database cannot be reached
"""

from __future__ import annotations


class SchemaError(Exception):
    """Base of every error this package raises on purpose."""


class NotADatabase(SchemaError):
    pass


class ForeignDatabase(SchemaError):
    pass


class DatabaseUnreachable(SchemaError):
    pass
