"""The masters admin API (``/admin/v1``): HTTP Basic as a user with the admin role.

Every change goes through ``sync.server.masters``, which bumps the change sequence devices pull
after; the CLI (``kensa server target add`` …) does the same against the database directly.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from sqlmodel import select
from starlette.requests import ClientDisconnect

from schema import server as s
from sync.errors import AuthError, Forbidden, TransportError
from sync.server import masters
from sync.server.files import stage_upload
from sync.server.processor import QUEUE
from sync.server.queue_policy import CONFLICT, DEAD_LETTER, REJECTED
from sync.server.state import ServerState, server_state

router = APIRouter(prefix="/admin/v1", tags=["admin"])
State = Annotated[ServerState, Depends(server_state)]

# argon2 is deliberately slow; a verified (user, password) is trusted for this long.
_ADMIN_CACHE_S = 60.0
_admin_cache: dict[str, float] = {}


def _basic(request: Request) -> tuple[str, str]:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        raise AuthError("admin API needs HTTP Basic credentials of an admin user")
    try:
        username, _, password = base64.b64decode(value).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise AuthError("malformed Basic credentials") from exc
    return username, password


def current_admin(request: Request, state: State) -> str:
    username, password = _basic(request)
    key = hashlib.sha256(f"{username}\0{password}".encode()).hexdigest()
    if _admin_cache.get(key, 0.0) > time.monotonic():
        return username
    with state.db.read() as session:
        user = session.exec(select(s.User).where(s.User.username == username)).first()
        if user is None or user.deleted_at is not None or not user.is_active:
            raise AuthError("unknown user or wrong password")
        if not masters.verify_password(user, password):
            raise AuthError("unknown user or wrong password")
        if user.role != "admin":
            raise Forbidden("the admin API needs the admin role")
    _admin_cache[key] = time.monotonic() + _ADMIN_CACHE_S
    return username


Admin = Annotated[str, Depends(current_admin)]


class DeviceIn(BaseModel):
    name: str = Field(min_length=1, max_length=255)
    device_type: str = "tablet"


class TargetIn(BaseModel):
    product_code: str = Field(min_length=1, max_length=100)
    product_name: str = Field(min_length=1, max_length=255)
    version: str = "1"
    description: str | None = None


class TargetPatch(BaseModel):
    product_code: str | None = None
    product_name: str | None = None
    version: str | None = None
    description: str | None = None


class ItemIn(BaseModel):
    item_code: str = Field(min_length=1, max_length=100)
    item_name: str = Field(min_length=1, max_length=255)
    inspection_type: str
    criteria: dict[str, Any]
    order_sequence: int = Field(gt=0)
    required: bool = True
    ai_enabled: bool = False
    pipeline_id: str | None = None


class ItemPatch(BaseModel):
    item_code: str | None = None
    item_name: str | None = None
    inspection_type: str | None = None
    criteria: dict[str, Any] | None = None
    order_sequence: int | None = Field(default=None, gt=0)
    required: bool | None = None
    ai_enabled: bool | None = None
    pipeline_id: str | None = None


class PipelineIn(BaseModel):
    definition: dict[str, Any]
    description: str | None = None


class UserIn(BaseModel):
    username: str = Field(min_length=1, max_length=150)
    password: str
    role: str = "inspector"
    full_name: str | None = None
    email: str | None = None


class UserPatch(BaseModel):
    password: str | None = None
    role: str | None = None
    full_name: str | None = None
    email: str | None = None
    is_active: bool | None = None


def _out(row: Any) -> dict[str, Any]:
    data = row.model_dump(mode="json")
    data.pop("password_hash", None)
    data.pop("token_hash", None)
    return dict(data)


@router.post("/devices", status_code=201)
def add_device(body: DeviceIn, state: State, _: Admin) -> dict[str, Any]:
    with state.db.atomic() as session:
        device, token = masters.add_device(session, body.name, body.device_type)
        return {**_out(device), "token": token}


@router.get("/devices")
def list_devices(state: State, _: Admin) -> list[dict[str, Any]]:
    with state.db.read() as session:
        return [_out(d) for d in session.exec(select(s.Device).order_by(s.Device.name))]


@router.post("/targets", status_code=201)
def add_target(body: TargetIn, state: State, _: Admin) -> dict[str, Any]:
    with state.db.atomic() as session:
        return _out(masters.add_target(session, **body.model_dump()))


@router.patch("/targets/{ref}")
def update_target(ref: str, body: TargetPatch, state: State, _: Admin) -> dict[str, Any]:
    with state.db.atomic() as session:
        return _out(masters.update_target(session, ref, **body.model_dump(exclude_none=True)))


@router.delete("/targets/{ref}", status_code=204)
def delete_target(ref: str, state: State, _: Admin) -> None:
    with state.db.atomic() as session:
        masters.delete_target(session, ref)


@router.post("/targets/{ref}/items", status_code=201)
def add_item(ref: str, body: ItemIn, state: State, _: Admin) -> dict[str, Any]:
    with state.db.atomic() as session:
        return _out(masters.add_item(session, ref, **body.model_dump()))


@router.patch("/targets/{ref}/items/{item}")
def update_item(ref: str, item: str, body: ItemPatch, state: State, _: Admin) -> dict[str, Any]:
    with state.db.atomic() as session:
        fields = body.model_dump(exclude_none=True)
        return _out(masters.update_item(session, ref, item, **fields))


@router.delete("/targets/{ref}/items/{item}", status_code=204)
def delete_item(ref: str, item: str, state: State, _: Admin) -> None:
    with state.db.atomic() as session:
        masters.delete_item(session, ref, item)


@router.put("/pipelines")
def put_pipeline(body: PipelineIn, state: State, _: Admin) -> dict[str, Any]:
    with state.db.atomic() as session:
        return _out(masters.put_pipeline(session, body.definition, body.description))


@router.post("/users", status_code=201)
def add_user(body: UserIn, state: State, _: Admin) -> dict[str, Any]:
    with state.db.atomic() as session:
        return _out(masters.add_user(session, **body.model_dump()))


@router.patch("/users/{ref}")
def update_user(ref: str, body: UserPatch, state: State, _: Admin) -> dict[str, Any]:
    with state.db.atomic() as session:
        return _out(masters.update_user(session, ref, **body.model_dump()))


@router.delete("/users/{ref}", status_code=204)
def delete_user(ref: str, state: State, _: Admin) -> None:
    with state.db.atomic() as session:
        masters.delete_user(session, ref)


@router.put("/models/{sha256}", status_code=201)
async def put_model(sha256: str, request: Request, state: State, _: Admin) -> dict[str, Any]:
    """Upload a model file under its hash; ``X-Kensa-File-Name`` names it."""
    from sync.server.files import check_hash_name

    name = check_hash_name(sha256)
    try:
        staged, _size = await stage_upload(
            request.stream(), name, state.settings.staging_dir, state.settings.max_file_bytes
        )
    except ClientDisconnect as exc:
        raise TransportError("the client went away mid-upload") from exc

    def publish() -> dict[str, Any]:
        try:
            with state.db.atomic() as session:
                row = masters.publish_model(
                    session, state.the_storage(), name, staged,
                    request.headers.get("x-kensa-file-name") or f"{name}.onnx",
                )
                return _out(row)
        finally:
            staged.unlink(missing_ok=True)

    return await run_in_threadpool(publish)


@router.get("/queue")
def queue_stats(state: State, _: Admin) -> dict[str, Any]:
    """Per device: rows stored, waiting, failing (waiting after a failed attempt), and the rows
    that left the queue unapplied: conflicts, rejected (another device's record) and dead
    letters."""
    with state.db.read() as session:
        rows = session.execute(
            sa.select(
                QUEUE.c.device_id,
                sa.func.count(),
                sa.func.count().filter(QUEUE.c.processed_at.is_(None)),
                sa.func.count().filter(
                    QUEUE.c.processed_at.is_(None), QUEUE.c.last_error.is_not(None)
                ),
                sa.func.max(QUEUE.c.seq),
                sa.func.count().filter(QUEUE.c.refusal == CONFLICT),
                sa.func.count().filter(QUEUE.c.refusal == REJECTED),
                sa.func.count().filter(QUEUE.c.refusal == DEAD_LETTER),
            ).group_by(QUEUE.c.device_id)
        ).all()
    return {
        "devices": [
            {"device_id": r[0], "rows": r[1], "pending": r[2], "failing": r[3], "max_seq": r[4],
             "conflicts": r[5], "rejected": r[6], "dead_letters": r[7]}
            for r in rows
        ]
    }
