"""AI results checked against the server's model registry.

A tablet's AI result names the SHA-256 of every model its pipeline ran (``model_hashes``). The
models a server stands behind are those it published (``files`` rows of kind ``model``, which
devices pull): a result whose hashes are not all among them was made by a model that did not
come from this server — a file put on the tablet by hand, a model from another site — and is
flagged when it is applied (``models_known`` false, the hashes in ``unknown_models``), so that
the admin API (``GET /admin/v1/ai-results/unknown-models``) and ``kensa-server results
unknown-models`` can list it. A model published and later withdrawn still counts as known: it
was this server's when the tablet ran it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from schema import server as s

_FILES: sa.Table = s.File.__table__  # type: ignore[attr-defined]
_RESULTS: sa.Table = s.AIInspectionResult.__table__  # type: ignore[attr-defined]
_SESSIONS: sa.Table = s.InspectionSession.__table__  # type: ignore[attr-defined]
_DEVICES: sa.Table = s.Device.__table__  # type: ignore[attr-defined]


def unknown_models(session: Session, hashes: list[str]) -> list[str]:
    """The hashes among ``hashes`` that name no model file this server published, sorted."""
    wanted = sorted(set(hashes))
    if not wanted:
        return []
    known = set(
        session.execute(
            sa.select(_FILES.c.checksum).where(
                _FILES.c.kind == "model", _FILES.c.checksum.in_(wanted)
            )
        ).scalars()
    )
    return [h for h in wanted if h not in known]


def model_check(session: Session, values: Mapping[str, Any]) -> dict[str, Any]:
    """The flags an AI result is stored with: ``models_known`` and ``unknown_models``. A result
    with no model hashes (made before tablets recorded them) stays unchecked (None); one whose
    pipeline ran no model (a measurement) is known."""
    hashes = values.get("model_hashes")
    if hashes is None:
        return {"models_known": None, "unknown_models": None}
    unknown = unknown_models(session, [str(h) for h in hashes])
    return {"models_known": not unknown, "unknown_models": unknown or None}


@dataclass(frozen=True)
class Flagged:
    """An AI result made by models this server did not publish."""

    id: str
    device: str | None
    session_id: str
    item_id: str | None
    pipeline_id: str | None
    pipeline_version: str | None
    overall_result: str
    unknown_models: list[str]
    model_hashes: list[str]
    engine_version: str | None
    execution_provider: str | None
    created_at: datetime | None
    received_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            **{k: v for k, v in self.__dict__.items() if not isinstance(v, datetime)},
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "received_at": self.received_at.isoformat(),
        }


def flagged_results(session: Session, *, limit: int = 100) -> list[Flagged]:
    """The newest results (by arrival) whose models the server does not know, with the device
    that made them."""
    rows = session.execute(
        sa.select(
            _RESULTS.c.id, _DEVICES.c.name, _RESULTS.c.session_id, _RESULTS.c.item_id,
            _RESULTS.c.pipeline_id, _RESULTS.c.pipeline_version, _RESULTS.c.overall_result,
            _RESULTS.c.unknown_models, _RESULTS.c.model_hashes, _RESULTS.c.engine_version,
            _RESULTS.c.execution_provider, _RESULTS.c.created_at, _RESULTS.c.received_at,
        )
        .select_from(
            _RESULTS.join(_SESSIONS, _RESULTS.c.session_id == _SESSIONS.c.id).outerjoin(
                _DEVICES, _SESSIONS.c.device_id == _DEVICES.c.id
            )
        )
        .where(_RESULTS.c.models_known.is_(False))
        .order_by(_RESULTS.c.received_at.desc(), _RESULTS.c.id)
        .limit(limit)
    ).all()
    return [
        Flagged(
            id=str(r[0]), device=r[1], session_id=str(r[2]),
            item_id=str(r[3]) if r[3] else None, pipeline_id=str(r[4]) if r[4] else None,
            pipeline_version=r[5], overall_result=r[6], unknown_models=list(r[7] or []),
            model_hashes=list(r[8] or []), engine_version=r[9], execution_provider=r[10],
            created_at=r[11], received_at=r[12],
        )
        for r in rows
    ]
