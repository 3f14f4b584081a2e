"""Camera calibrations: a supervisor photographs a reference of known size, the tablet measures
its scale, and the bore and other measuring steps use it from the next photo on.

    GET  /calibrations                  each camera's current scale, and the calibrations made
    POST /calibrations?camera_id=…&method=checkerboard&size_mm=5&columns=7&rows=5
                                        the calibration photo (multipart ``file`` or the raw
                                        body): measured, stored, answered with the scale
    POST /calibrations?camera_id=…&method=ring&size_mm=12

Taking one is ``calibrate`` (a supervisor's); a photo with no usable reference is a 422
``calibration_invalid`` that says what to change, and stores nothing.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from sidecar.api.deps import CurrentUser, DbDep
from sidecar.api.uploads import read_image
from sidecar.services import calibration

router = APIRouter(prefix="/calibrations", tags=["calibration"])

CameraId = Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class CalibrationPublic(BaseModel):
    id: str
    camera_id: str
    mm_per_px: float
    notes: str | None
    created_at: datetime


class CalibrationsPublic(BaseModel):
    # camera → mm per pixel: what measuring steps use now.
    current: dict[str, float]
    recent: list[CalibrationPublic]


class CalibrationTaken(CalibrationPublic):
    method: Literal["checkerboard", "ring"]
    reference_mm: float
    reference_px: float
    spread: float


def _public(row: object) -> CalibrationPublic:
    return CalibrationPublic.model_validate(row, from_attributes=True)


@router.get("")
def calibrations(db: DbDep, _: CurrentUser) -> CalibrationsPublic:
    with db.read() as session:
        return CalibrationsPublic(current=calibration.current(session),
                                  recent=[_public(r) for r in calibration.history(session)])


@router.post("", status_code=201)
async def take(
    request: Request,
    db: DbDep,
    _: CurrentUser,
    method: Annotated[Literal["checkerboard", "ring"], Query()],
    size_mm: Annotated[float, Query(gt=0, le=1000)],
    camera_id: CameraId = calibration.DEFAULT_CAMERA,
    columns: Annotated[int | None, Query(ge=2, le=64)] = None,
    rows: Annotated[int | None, Query(ge=2, le=64)] = None,
) -> CalibrationTaken:
    """Measure a calibration photo: a checkerboard (``size_mm`` the square's side, ``columns``
    × ``rows`` its inner corners) or a ring (``size_mm`` its inner diameter)."""
    # OpenCV loads with the first calibration photo, not with the sidecar: it is a tenth of
    # the start (scripts/bench start).
    from sidecar import calibration as cal

    data = await read_image(request)

    def measure_and_record() -> CalibrationTaken:
        scale = cal.from_photo(data, method, size_mm, columns=columns, rows=rows)
        notes = (f"{method} {size_mm:g} mm" + (f", {columns}×{rows} corners" if columns else "")
                 + f": {scale.reference_px:.2f} px")
        with db.atomic() as session:
            row = calibration.record(session, camera_id, scale, notes)
            public = _public(row)
        return CalibrationTaken(**public.model_dump(), method=method,
                                reference_mm=scale.reference_mm,
                                reference_px=scale.reference_px, spread=scale.spread)

    # OpenCV's search of a whole photo and the durable write run off the event loop: the status
    # bar's event stream and the other requests are not held for them.
    return await asyncio.to_thread(measure_and_record)
