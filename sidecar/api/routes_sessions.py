from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlmodel import Session, col, select

from schema import device as d
from schema.db import Database
from sidecar import audit, photo_crypto
from sidecar.api import signed, views
from sidecar.api.deps import (
    CurrentUser,
    DataKeyDep,
    DbDep,
    SessionAccess,
    SettingsDep,
    authorize,
)
from sidecar.api.schemas import (
    ImagePublic,
    InterruptedPublic,
    SessionCreate,
    SessionPublic,
    SignedCreate,
    VerificationCreate,
    VerificationPublic,
)
from sidecar.api.uploads import read_image
from sidecar.domain import access, signatures
from sidecar.domain.access import Action
from sidecar.domain.workflow import check_session_open
from sidecar.errors import NotFound, PhotoUnreadable
from sidecar.keys import DataKey
from sidecar.qr.payload import parse_payload
from sidecar.services import images, inspection, signing

# Every route with a {session_id} acts only for a user who may (deps.check_session_access).
router = APIRouter(prefix="/sessions", tags=["inspection"], dependencies=[SessionAccess])
image_router = APIRouter(prefix="/images", tags=["inspection"])


def _verifiers(session: Session, det: inspection.SessionDetail) -> dict[int, d.User]:
    ids = {v.user_id for i in det.items for v in i.verifications}
    if not ids:
        return {}
    users = session.exec(select(d.User).where(col(d.User.id).in_(ids))).all()
    return {u.id: u for u in users if u.id is not None}


def _detail(db: Database, session_id: str) -> SessionPublic:
    with db.read() as session:
        det = inspection.detail(session, session_id)
        public = views.session_detail(det, _verifiers(session, det))
        public.signatures = [signed.public(x) for x in signing.of_session(session, session_id)]
        return public


# Where a signature's password is counted toward the lockout (``api.signed``).
ClientSource = Annotated[str, Depends(signed.client_source)]


@router.post("", status_code=201)
def start(body: SessionCreate, db: DbDep, user: CurrentUser) -> SessionPublic:
    """Open an inspection of the unit a QR code names (camera, file or wedge scanner)."""
    unit = parse_payload(body.qr_code)
    with db.atomic() as session:
        row = inspection.start(session, unit, user)
    return _detail(db, row.id)


@router.get("/interrupted")
def interrupted(db: DbDep, user: CurrentUser) -> list[InterruptedPublic]:
    """Inspections that were left open (app closed, battery died), with per-item progress: an
    inspector's own, or everyone's for the supervisor."""
    with db.read() as session:
        return [
            views.interrupted(x)
            for x in inspection.interrupted(session)
            if access.may(user.role, user.id, x.session.user_id, Action.READ)
        ]


@router.get("/{session_id}")
def get(session_id: str, db: DbDep, _: CurrentUser) -> SessionPublic:
    return _detail(db, session_id)


@router.post("/{session_id}/items/{item_id}/images", status_code=201)
async def upload_image(
    session_id: str,
    item_id: str,
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    key: DataKeyDep,
    _: CurrentUser,
) -> ImagePublic:
    """Attach a photo (multipart field 'file' or the raw body, up to 20 MB) to an item."""
    data = await read_image(request)

    def store() -> ImagePublic:
        # Refuse before writing a file for an inspection that cannot take it.
        with db.read() as session:
            inspection.check_can_attach(session, session_id, item_id)
        stored = images.store(settings.data_dir, data, key=key)
        with db.atomic() as session:
            row = inspection.attach_image(session, session_id, item_id, stored)
        return views.image(row)

    return await asyncio.to_thread(store)


@router.post("/{session_id}/items/{item_id}/verification", status_code=201)
def verify(
    session_id: str,
    item_id: str,
    body: VerificationCreate,
    db: DbDep,
    user: CurrentUser,
    source: ClientSource,
) -> VerificationPublic:
    """A person's verdict on an item. Overriding the AI's verdict, or releasing an item judged NG
    as OK, needs the user's signature (``domain.signatures``)."""
    who = signed.signer(db, user, body.signature, source)
    with db.atomic() as session:
        audit.give_reason(session, body.reason)
        item = inspection.get_item(session, session_id, item_id)
        previous = item.result if item.status == "verified" else None
        row = inspection.verify(
            session,
            session_id,
            item_id,
            inspection.Verdict(**body.model_dump(exclude={"signature", "reason"})),
            user,
        )
        ai = session.get(d.AIInspectionResult, row.ai_result_id) if row.ai_result_id else None
        needed = signatures.for_verdict(
            row.final_result, ai.overall_result if ai else None, previous
        )
        signed.sign(session, who, needed, row, session_id)
    return views.verification(row, user)


@router.post("/{session_id}/items/{item_id}/skip")
def skip(session_id: str, item_id: str, db: DbDep, _: CurrentUser) -> SessionPublic:
    with db.atomic() as session:
        inspection.skip(session, session_id, item_id)
    return _detail(db, session_id)


@router.post("/{session_id}/items/{item_id}/retry")
def retry(session_id: str, item_id: str, db: DbDep, _: CurrentUser) -> SessionPublic:
    with db.atomic() as session:
        inspection.retry(session, session_id, item_id)
    return _detail(db, session_id)


@router.post("/{session_id}/complete")
def complete(
    session_id: str,
    db: DbDep,
    user: CurrentUser,
    source: ClientSource,
    body: SignedCreate | None = None,
) -> SessionPublic:
    """Finish the inspection; one whose result is NG needs the user's signature (approved)."""
    who = signed.signer(db, user, body.signature if body else None, source)
    with db.atomic() as session:
        audit.give_reason(session, body.reason if body else None)
        row = inspection.complete(session, session_id)
        signed.sign(session, who, signatures.for_completion(row.result), row, session_id)
    return _detail(db, session_id)


@router.post("/{session_id}/resume")
def resume(session_id: str, db: DbDep, _: CurrentUser) -> SessionPublic:
    """Carry on with an interrupted inspection where it stopped."""
    with db.read() as session:
        row = inspection.get_session(session, session_id)
        check_session_open(row.status)
    return _detail(db, session_id)


@router.post("/{session_id}/restart", status_code=201)
def restart(
    session_id: str,
    db: DbDep,
    user: CurrentUser,
    source: ClientSource,
    body: SignedCreate | None = None,
) -> SessionPublic:
    """Cancel an interrupted inspection and start the same unit again from its first item. The
    old one is discarded: that needs the user's signature (discarded)."""
    who = signed.signer(db, user, body.signature if body else None, source)
    with db.atomic() as session:
        audit.give_reason(session, body.reason if body else None)
        row = inspection.restart(session, session_id, user)
        old = inspection.get_session(session, session_id)
        signed.sign(session, who, signatures.for_discard(), old, session_id)
    return _detail(db, row.id)


@router.post("/{session_id}/discard")
def discard(
    session_id: str,
    db: DbDep,
    user: CurrentUser,
    source: ClientSource,
    body: SignedCreate | None = None,
) -> SessionPublic:
    """End the inspection unfinished; needs the user's signature (discarded)."""
    who = signed.signer(db, user, body.signature if body else None, source)
    with db.atomic() as session:
        audit.give_reason(session, body.reason if body else None)
        row = inspection.cancel(session, session_id)
        signed.sign(session, who, signatures.for_discard(), row, session_id)
    return _detail(db, session_id)


@router.post("/{session_id}/cancel")
def cancel(
    session_id: str,
    db: DbDep,
    user: CurrentUser,
    source: ClientSource,
    body: SignedCreate | None = None,
) -> SessionPublic:
    return discard(session_id, db, user, source, body)


def _image_file(
    db: Database, data_dir: Path, key: DataKey | None, user: d.User, image_id: str,
    thumbnail: bool,
) -> Response:
    with db.read() as session:
        row = session.get(d.InspectionImage, image_id)
        try:
            if row is not None:
                authorize(session, user, row.session_id, Action.READ)
        except NotFound:
            row = None  # another's photo reads as a missing one, like their inspection
    if row is None:
        raise NotFound(f"no image with id {image_id}")
    relative = row.thumbnail_path if thumbnail and row.thumbnail_path else row.file_path
    try:
        # Whole and verified before the first byte goes out: a damaged file is an error, never
        # a half picture.
        body = photo_crypto.read(data_dir, relative, key)
    except PhotoUnreadable as exc:
        if exc.detail.get("reason") == "missing":
            # The record is there and its file is not: a 404 of its own, so the screen can say
            # which of the two is missing.
            raise NotFound(f"the file of image {image_id} is missing on this tablet",
                           code="photo_missing", reason="missing") from exc
        raise
    media = "image/jpeg" if thumbnail else (row.mime_type or "application/octet-stream")
    # Photos are immutable (content-addressed): the browser may keep them for the session.
    return Response(body, media_type=media, headers={"Cache-Control": "private, max-age=3600"})


@image_router.get("/{image_id}")
def image_file(
    image_id: str, db: DbDep, settings: SettingsDep, key: DataKeyDep, user: CurrentUser
) -> Response:
    return _image_file(db, settings.data_dir, key, user, image_id, thumbnail=False)


@image_router.get("/{image_id}/thumbnail")
def image_thumbnail(
    image_id: str, db: DbDep, settings: SettingsDep, key: DataKeyDep, user: CurrentUser
) -> Response:
    return _image_file(db, settings.data_dir, key, user, image_id, thumbnail=True)
