"""The roles a user may have, as both ends store them.

The server's users carry one of these to every tablet they are pulled to; both databases' CHECK
constraints are built from this tuple (a test compares a migrated database's with it), the
server's user commands refuse any other, and what each role may do on a tablet is the sidecar's
matrix (``sidecar.domain.access``), which holds the same names.

- ``inspector``: inspects parts; the seed system's ``operator``.
- ``supervisor``: oversees a shift on the floor.
- ``admin``: the site's administrator; the seed system's ``admin``.
"""

from __future__ import annotations

from typing import Final

ROLES: Final[tuple[str, ...]] = ("inspector", "supervisor", "admin")
DEFAULT_ROLE: Final = "inspector"


def role_check(column: str = "role") -> str:
    """The CHECK constraint's expression that holds ``column`` to ``ROLES``."""
    return f"{column} IN ({', '.join(repr(r) for r in ROLES)})"
