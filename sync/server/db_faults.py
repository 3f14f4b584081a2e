"""Which database errors are the request's fault and which are the database's.

Pure: looks only at the exception (its SQLSTATE, else its class); table-tested.

A *permanent* error comes from the values or the constraints (SQLSTATE class 22, data exception:
a NUL in text, a string longer than its column, a number out of range; class 23, integrity; 54,
a program limit such as a too-large value): the same request fails the same way however often it
is sent, so it is answered as the request's error (a rejected operation, 409 or 422), never as
"try again". A *transient* one is the database's state (08 connection, 40001 serialization
failure, 40P01 deadlock, 53 resources, 55P03 lock not available, 57014 cancelled, 57P0x
shutdown, 58 I/O): the same request may succeed later, so it is 503 with Retry-After. Anything
else (a bug of ours, e.g. 42 syntax) is *unknown*, and answered like a transient one so that
nothing is set aside for good because of the server's own fault.
"""

from __future__ import annotations

import enum

from sqlalchemy import exc as sa_exc


class Fault(enum.Enum):
    PERMANENT = "permanent"
    TRANSIENT = "transient"
    UNKNOWN = "unknown"


_PERMANENT_CLASSES = ("22", "23", "54")
_TRANSIENT_CLASSES = ("08", "53", "58")
_TRANSIENT_CODES = ("40001", "40P01", "55P03", "57014", "57P01", "57P02", "57P03", "57P04",
                    "57P05")

FOREIGN_KEY_VIOLATION = "23503"


def classify_sqlstate(sqlstate: str | None) -> Fault:
    if not sqlstate or len(sqlstate) != 5:
        return Fault.UNKNOWN
    if sqlstate in _TRANSIENT_CODES or sqlstate[:2] in _TRANSIENT_CLASSES:
        return Fault.TRANSIENT
    if sqlstate[:2] in _PERMANENT_CLASSES:
        return Fault.PERMANENT
    return Fault.UNKNOWN


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a driver error (psycopg), wrapped by SQLAlchemy or not."""
    orig = getattr(exc, "orig", None) or exc
    state = getattr(orig, "sqlstate", None)
    return state if isinstance(state, str) else None


def classify(exc: BaseException) -> Fault:
    fault = classify_sqlstate(sqlstate(exc))
    if fault is not Fault.UNKNOWN:
        return fault
    # No SQLSTATE (SQLite, or a driver error raised before reaching the server): the class
    # SQLAlchemy mapped it to is the best evidence left.
    if isinstance(exc, sa_exc.IntegrityError | sa_exc.DataError):
        return Fault.PERMANENT
    if isinstance(exc, sa_exc.OperationalError | sa_exc.DisconnectionError):
        return Fault.TRANSIENT
    return Fault.UNKNOWN


def integrity_error(exc: BaseException) -> bool:
    state = sqlstate(exc)
    return state.startswith("23") if state else isinstance(exc, sa_exc.IntegrityError)


def describe(exc: BaseException) -> str:
    """One line for a log or a device: the driver's message and its SQLSTATE."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    first = lines[0] if lines else type(orig).__name__
    state = sqlstate(exc)
    return f"{first} (SQLSTATE {state})" if state else first
