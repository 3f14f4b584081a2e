"""The tablet's camera calibrations: a supervisor's calibration photo becomes a scale per camera,
which the job runner hands to the measuring pipeline steps.

A calibration is never edited: a new photo adds a new row, and the newest row of a camera is its
scale. Each is an entry in the audit trail with what was measured (method, reference, pixels).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from schema import device as d
from sidecar import audit

if TYPE_CHECKING:
    from sidecar.calibration import Scale

DEFAULT_CAMERA = "default"


def record(session: Session, camera_id: str, scale: Scale, notes: str | None = None
           ) -> d.Calibration:
    """A measured scale for ``camera_id``, in the caller's unit of work (the caller checked the
    role: ``Action.CALIBRATE``)."""
    row = d.Calibration(camera_id=camera_id, mm_per_px=scale.mm_per_px, notes=notes)
    session.add(row)
    session.flush()
    audit.record(session, entity="calibration", entity_id=row.id, action="insert",
                 detail={"camera_id": camera_id, **scale.describe()})
    return row


def history(session: Session, camera_id: str | None = None, limit: int = 50
            ) -> list[d.Calibration]:
    """Newest first."""
    query = select(d.Calibration)
    if camera_id is not None:
        query = query.where(d.Calibration.camera_id == camera_id)
    return list(session.exec(
        query.order_by(col(d.Calibration.created_at).desc(), col(d.Calibration.id).desc())
        .limit(limit)).all())


def in_use(session: Session) -> dict[str, dict[str, Any]]:
    """Each camera's newest calibration as a measuring step records it: the scale, and the row
    and time it came from."""
    newest: dict[str, d.Calibration] = {}
    for row in session.exec(select(d.Calibration).order_by(
            col(d.Calibration.created_at), col(d.Calibration.id))).all():
        newest[row.camera_id] = row  # later rows win
    return {camera: {"mm_per_px": row.mm_per_px, "calibration_id": row.id,
                     "calibrated_at": row.created_at.isoformat()}
            for camera, row in newest.items()}


def current(session: Session) -> dict[str, float]:
    """Each camera's newest scale (camera → mm per pixel): what measuring steps use."""
    scales: dict[str, float] = {}
    rows = session.exec(select(d.Calibration).order_by(
        col(d.Calibration.created_at), col(d.Calibration.id))).all()
    for row in rows:
        scales[row.camera_id] = row.mm_per_px  # later rows win
    return scales
