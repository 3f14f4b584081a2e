"""The device-facing sync API (``/sync/v1``); the protocol is described in ``sync.protocol``."""

from __future__ import annotations

import time
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.requests import ClientDisconnect

from schema.types import utcnow
from sync.bounds import INT64_MAX
from sync.errors import PayloadTooLarge, RateLimited, SyncError, TransportError
from sync.protocol import (
    API_PREFIX,
    DEVICE_TIME_HEADER,
    AuthResponse,
    ChangesPage,
    ConflictsPage,
    EnrollRequest,
    EnrollResponse,
    FileStored,
    MissingRequest,
    MissingResponse,
)
from sync.server import changes as change_log
from sync.server import enrollment
from sync.server.acks import acks, refused_op
from sync.server.auth import (
    DeviceIdentity,
    bearer,
    device_by_token,
    issue_access_token,
    verify_access_token,
)
from sync.server.files import (
    check_hash_name,
    known_hashes,
    readable_file,
    stage_upload,
    store_image,
)
from sync.server.processor import QUEUE
from sync.server.push import store_batch
from sync.server.state import ServerState, server_state

router = APIRouter(prefix=API_PREFIX, tags=["sync"])

State = Annotated[ServerState, Depends(server_state)]


async def current_device(request: Request, state: State) -> DeviceIdentity:
    token = bearer(request.headers.get("authorization"))
    claim = verify_access_token(state.secret(), token, int(time.time()))
    return await run_in_threadpool(state.device, claim)


Device = Annotated[DeviceIdentity, Depends(current_device)]


@router.get("/ping")
def ping() -> dict[str, object]:
    """The cheap reachability probe: no credentials, no database."""
    return {"ok": True, "time": utcnow().isoformat()}


@router.post("/auth")
def authenticate(request: Request, state: State) -> AuthResponse:
    token = bearer(request.headers.get("authorization"))
    with state.db.atomic() as session:
        device = device_by_token(session, token)
        device.last_seen_at = utcnow()
        session.add(device)
        ttl = state.settings.access_token_ttl_s
        access = issue_access_token(state.secret(), device.id, device.token_generation,
                                    int(time.time()) + ttl)
        return AuthResponse(
            access_token=access, expires_in=ttl, device_id=str(device.id),
            device_name=device.name, device_type=device.device_type,
            last_applied_seq=device.last_applied_seq,
        )


@router.post("/enroll")
def enroll(body: EnrollRequest, request: Request, state: State) -> EnrollResponse:
    """Trade a one-time enrollment code for the device token (once; see ``enrollment``).

    Only wrong, used or expired codes count against the caller's allowance: a tablet whose
    admin mistyped once is not locked out, a guesser is slowed to a few tries a minute.
    """
    client = request.client.host if request.client else "unknown"
    keys = ((state.enroll_limit, f"addr:{client}"), (state.enroll_limit_all, "all"))
    wait = max(bucket.wait_s(key) for bucket, key in keys)
    if wait > 0:
        raise RateLimited("too many wrong enrollment codes; try again later",
                          code="enrollment_throttled", retry_after=max(1.0, wait))
    try:
        with state.db.atomic() as session:
            done = enrollment.exchange(session, body.code)
            return EnrollResponse(
                device_token=done.token, device_id=str(done.device.id),
                device_name=done.device.name, device_type=done.device.device_type,
            )
    except SyncError as exc:
        if 400 <= exc.status_code < 500:
            for bucket, key in keys:
                bucket.take(key)
        raise


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"batch of {declared} bytes is over the limit of {limit}",
                              max_bytes=limit)
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"batch is over the limit of {limit} bytes",
                                      max_bytes=limit)
            parts.append(chunk)
    except ClientDisconnect as exc:
        raise TransportError("the device went away mid-request") from exc
    return b"".join(parts)


@router.post("/push")
async def push(request: Request, state: State, device: Device) -> JSONResponse:
    body = await _read_body(request, state.settings.max_batch_bytes)
    answer = await run_in_threadpool(
        store_batch, state.db, device, body, state.settings,
        request.headers.get(DEVICE_TIME_HEADER), gate=state.push_gate, lag=state.apply_lag,
    )
    return JSONResponse(answer.model_dump())


@router.get("/changes", response_model=ChangesPage)
def pull(
    state: State,
    device: Device,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    size = min(limit or state.settings.page_limit_default, state.settings.page_limit_max)
    with state.db.read() as session:
        body = change_log.page_json(session, cursor, size)
        mine = acks(session, device.id)
    # Serialised once, on the server's side; not validated again on the way out. The page is
    # a JSON object: this device's acknowledgements go in as its last member.
    body = f'{body[:-1]},"acks":{mine.model_dump_json()}}}'
    return Response(content=body, media_type="application/json")


@router.get("/conflicts")
def conflicts(
    state: State,
    device: Device,
    after: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> ConflictsPage:
    """This device's operations the queue processor refused for good — version conflicts,
    rejections, dead letters — in the order they were refused (``after``: the last ``id`` seen),
    each with its reason code and, for a conflict, the server's version of the record.
    """
    with state.db.read() as session:
        rows = session.execute(
            sa.select(QUEUE)
            .where(QUEUE.c.device_id == device.key, QUEUE.c.refusal_seq > after)
            .order_by(QUEUE.c.refusal_seq)
            .limit(limit)
        ).all()
        found = [refused_op(session, r) for r in rows]
    return ConflictsPage(conflicts=found, cursor=found[-1].id if found else after)


@router.post("/files/missing")
def missing(body: MissingRequest, state: State, device: Device) -> MissingResponse:
    hashes = [check_hash_name(h) for h in body.sha256]
    known = known_hashes(state.db, hashes)
    return MissingResponse(missing=[h for h in hashes if h not in known])


@router.put("/files/{sha256}", status_code=201)
async def upload(
    sha256: str, request: Request, response: Response, state: State, device: Device
) -> FileStored:
    name = check_hash_name(sha256)
    limit = state.settings.max_file_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"file of {declared} bytes is over the limit of {limit}",
                              max_bytes=limit)
    try:
        staged, size = await stage_upload(
            request.stream(), name, state.settings.staging_dir, limit
        )
    except ClientDisconnect as exc:
        raise TransportError("the device went away mid-upload") from exc
    stored = await run_in_threadpool(
        store_image, state.db, state.the_storage(), name, staged, size,
        device_id=device.id, mime_type=request.headers.get("content-type"),
        name=request.headers.get("x-kensa-file-name"),
    )
    if not stored.created:
        response.status_code = 200
    return stored


@router.get("/files/{sha256}")
def download(sha256: str, state: State, device: Device) -> StreamingResponse:
    name = check_hash_name(sha256)
    row = readable_file(state.db, name, device.id)
    chunks = state.the_storage().open(name)
    headers = {"X-Kensa-SHA256": name}
    if row.file_size:
        headers["Content-Length"] = str(row.file_size)
    return StreamingResponse(
        chunks, media_type=row.mime_type or "application/octet-stream", headers=headers
    )
