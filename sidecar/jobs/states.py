"""An AI job's states and the moves between them: the one table every status change in the queue
goes through (``sidecar.jobs.queue``).

``waiting → processing → completed``; a failure with retries left goes back to ``waiting``, the
last one ends ``failed``; a waiting or running job can be ``cancelled``; asking again for a failed
or cancelled analysis retries the same job. The device database's CHECK on
``analysis_jobs.status`` lists the same states (a test compares a migrated database's with
``JOB_STATES``).

Pure: no FastAPI, no database session. A move the table does not allow is a ``Conflict`` naming
the state it was attempted from.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

from sidecar.errors import Conflict

# In the order a job reaches them; the CHECK constraint lists them in this order.
JOB_STATES: tuple[str, ...] = ("waiting", "processing", "completed", "failed", "cancelled")
JOB_START = "waiting"

Move = Literal["claim", "finish", "fail", "requeue", "cancel", "retry"]
MOVES: tuple[Move, ...] = ("claim", "finish", "fail", "requeue", "cancel", "retry")

JOB_MOVES: Mapping[str, Mapping[Move, str]] = MappingProxyType(
    {
        "waiting": MappingProxyType({"claim": "processing", "cancel": "cancelled"}),
        # ``requeue``: a recoverable failure with retries left, or a crash that interrupted the run.
        "processing": MappingProxyType(
            {
                "finish": "completed",
                "fail": "failed",
                "requeue": "waiting",
                "cancel": "cancelled",
            }
        ),
        "completed": MappingProxyType({}),
        "failed": MappingProxyType({"retry": "waiting"}),
        "cancelled": MappingProxyType({"retry": "waiting"}),
    }
)


def job_may(current: str, move: Move) -> bool:
    return move in JOB_MOVES.get(current, {})


# How each move reads in a refusal: "only waiting jobs can be claimed".
_SAID: Mapping[Move, str] = MappingProxyType(
    {
        "claim": "be claimed",
        "finish": "finish",
        "fail": "fail",
        "requeue": "go back to the queue",
        "cancel": "be cancelled",
        "retry": "be retried",
    }
)


def job_move(current: str, move: Move) -> str:
    """The state ``move`` takes a job in ``current`` to; a ``Conflict`` naming the state if the
    table has no such move."""
    moves = JOB_MOVES.get(current)
    if moves is None:
        raise Conflict(
            f"unknown AI job state '{current}'", code="illegal_transition", state=current, move=move
        )
    target = moves.get(move)
    if target is None:
        allowed = " or ".join(s for s in JOB_STATES if move in JOB_MOVES[s])
        raise Conflict(
            f"the AI job is already {current}; only {allowed} jobs can {_SAID[move]}",
            code="illegal_transition",
            state=current,
            move=move,
        )
    return target
