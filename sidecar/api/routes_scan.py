from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from schema.db import Database
from sidecar.api import views
from sidecar.api.deps import CurrentUser, DbDep
from sidecar.api.schemas import CodePublic, ScanPublic, ScanTextCreate
from sidecar.api.uploads import read_image
from sidecar.domain import image_size
from sidecar.errors import QrDecodeFailed, QrPayloadInvalid
from sidecar.qr.payload import ScannedUnit, parse_payload
from sidecar.services import inspection

router = APIRouter(prefix="/scan", tags=["scan"])


def _resolve(db: Database, unit: ScannedUnit, codes: list[CodePublic]) -> ScanPublic:
    with db.read() as session:
        master = inspection.find_master(session, unit.product_code)
        items = inspection.master_items(session, master.id)
    return ScanPublic(
        codes=codes,
        unit=views.unit(unit),
        target=views.target_master(master),
        items=[views.item_master(i) for i in items],
    )


@router.post("")
async def scan_image(request: Request, db: DbDep, _: CurrentUser) -> ScanPublic:
    """Read a code (QR, Data Matrix, Code 128) from a photo or camera frame and resolve it to a
    product and its items."""
    from sidecar.qr.decode import decode_image

    data = await read_image(request)
    # A photo from the camera or a file is PNG, JPEG, WebP, BMP or TIFF, each with its size in
    # its header: check it before anything decodes the pixels.
    image_size.check(data)
    codes = await asyncio.to_thread(decode_image, data)
    if not codes:
        raise QrDecodeFailed(
            "no code (QR, Data Matrix or Code 128) could be read from the image; hold the label "
            "flat and closer",
        )
    # Several codes in one frame: the first that parses as a product label wins.
    problems: list[str] = []
    for code in codes:
        try:
            unit = parse_payload(code.text)
        except QrPayloadInvalid as exc:
            problems.append(exc.message)
            continue
        public = [CodePublic(text=c.text, format=c.format) for c in codes]
        return await asyncio.to_thread(_resolve, db, unit, public)
    raise QrPayloadInvalid(problems[0], codes=[c.text for c in codes])


@router.post("/text")
def scan_text(body: ScanTextCreate, db: DbDep, _: CurrentUser) -> ScanPublic:
    """A code typed or sent by a USB keyboard-wedge scanner."""
    unit = parse_payload(body.text)
    return _resolve(db, unit, [CodePublic(text=unit.raw, format="TEXT")])
