from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError

from schema.db import Database
from sidecar.api import views
from sidecar.api.deps import CurrentUser, DbDep
from sidecar.api.schemas import CodePublic, ScanPublic, ScanTextCreate
from sidecar.api.uploads import read_image
from sidecar.domain import image_size
from sidecar.errors import QrDecodeFailed, QrPayloadInvalid
from sidecar.qr.camera import CameraStreams
from sidecar.qr.payload import ScannedUnit, parse_payload
from sidecar.services import inspection

if TYPE_CHECKING:
    from sidecar.qr.decode import Code, Roi

router = APIRouter(prefix="/scan", tags=["scan"])

STREAM_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
ROI_MAX = 20000
"""The largest coordinate or size of an aiming box: far beyond any camera frame."""

_STREAM = re.compile(STREAM_PATTERN)
ROI_PATTERN = r"^([0-9]{1,5}),([0-9]{1,5}),([0-9]{1,5}),([0-9]{1,5})$"
_ROI = re.compile(ROI_PATTERN)
_NOTHING_READ = (
    "no code (QR, Data Matrix or Code 128) could be read from the image; hold the label "
    "flat and closer"
)


def _invalid(name: str, problem: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("query", name), "msg": problem, "type": "value_error"}])


def _stream(value: str | None) -> str | None:
    if value is not None and not _STREAM.fullmatch(value):
        raise _invalid("stream", "is not a stream id (1-64 letters, digits, - and _)")
    return value


def _roi(value: str | None) -> Roi | None:
    if value is None:
        return None
    match = _ROI.fullmatch(value)
    numbers = [int(n) for n in match.groups()] if match else []
    if not numbers or max(numbers) > ROI_MAX or numbers[2] == 0 or numbers[3] == 0:
        raise _invalid(
            "roi",
            f"is not an aiming box: x,y,width,height in frame pixels, four integers from 0 to "
            f"{ROI_MAX}, width and height at least 1",
        )
    x, y, width, height = numbers
    return x, y, width, height


def _parseable_first(codes: list[Code]) -> list[Code]:
    # A frame showing a product label beside another code: the label is the one wanted, as in a
    # single photo, where the first code that parses wins.
    def parses(code: Code) -> bool:
        try:
            parse_payload(code.text)
        except QrPayloadInvalid:
            return False
        return True

    return sorted(codes, key=lambda code: not parses(code))


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
async def scan_image(
    request: Request,
    db: DbDep,
    user: CurrentUser,
    stream: Annotated[str | None, Query(
        description="Camera mode: an id the camera view picks each time it opens (1-64 letters, "
        "digits, - and _), sent with each of its frames. A code read with most of its error "
        "correction spent, a Code 128 or a ZBar read is answered only once another recent "
        "frame of the same stream reads it too; until then the answer is `qr_decode_failed`. "
        "A stream is forgotten after 60 s without a frame.",
        max_length=64,
        # In the document only: the route's own check names the rule in its answer.
        json_schema_extra={"pattern": STREAM_PATTERN},
    )] = None,
    roi: Annotated[str | None, Query(
        description="The aiming box `x,y,width,height` in the frame's pixels (integers from 0 "
        "to 20000): only this part of the image is searched. A box wholly outside the frame "
        "answers `image_invalid`.",
        max_length=32,
        json_schema_extra={"pattern": ROI_PATTERN},
    )] = None,
) -> ScanPublic:
    """Read a code (QR, Data Matrix, Code 128) from a photo or camera frame and resolve it to a
    product and its items.

    Without `stream` the image is a photo on its own: the first code in it that parses as a
    product label is resolved. With `stream` it is one frame of a camera view, and the answer
    waits until the frames agree (see `stream`)."""
    from sidecar.qr.decode import decode_image

    stream_id = _stream(stream)
    box = _roi(roi)
    data = await read_image(request)
    # A photo from the camera or a file is PNG, JPEG, WebP, BMP or TIFF, each with its size in
    # its header: check it before anything decodes the pixels.
    image_size.check(data)
    codes = await asyncio.to_thread(decode_image, data, box)
    if stream_id is not None:
        codes = _parseable_first(codes)
        streams: CameraStreams = request.app.state.camera_streams
        decided = streams.feed((user.id, stream_id), codes)
        if decided is None:
            if codes:
                raise QrDecodeFailed(
                    "a code was read once but looked damaged; hold the label still until a "
                    "second frame reads the same",
                    stream=stream_id,
                )
            raise QrDecodeFailed(_NOTHING_READ, stream=stream_id)
        # The decided code first: it is the one resolved, the rest of the frame is context.
        codes = [decided, *(c for c in codes if c != decided)]
    if not codes:
        raise QrDecodeFailed(_NOTHING_READ)
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
