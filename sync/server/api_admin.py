"""The masters admin API (``/admin/v1``): HTTP Basic as a user with the admin role.

Every change goes through ``sync.server.masters``, which bumps the change sequence devices pull
after; the CLI (``kensa-server target add`` …) does the same against the database directly.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from sqlmodel import Session, select
from starlette.requests import ClientDisconnect

from schema import server as s
from sync.bounds import (
    INT32_MAX,
    MAX_PASSWORD_CHARS,
    MAX_TEXT_CHARS,
    MULTI_LINE,
    SINGLE_LINE,
    JsonDefinition,
    JsonObject,
    control_problem,
)
from sync.errors import AuthError, TransportError
from sync.protocol import DeviceType
from sync.server import acks, masters, provenance
from sync.server.admin_auth import AdminRecord
from sync.server.files import stage_upload
from sync.server.processor import QUEUE
from sync.server.queue_policy import CONFLICT, DEAD_LETTER, REJECTED
from sync.server.state import ServerState, server_state

router = APIRouter(prefix="/admin/v1", tags=["admin"])
State = Annotated[ServerState, Depends(server_state)]
MAX_USERNAME = 150


def _basic(request: Request) -> tuple[str, str]:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        raise AuthError("admin API needs HTTP Basic credentials of an admin user")
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise AuthError("malformed Basic credentials") from exc
    username, _, password = decoded.partition(":")
    return username, password


def _record(state: ServerState, username: str) -> AdminRecord | None:
    """The user's row as it is now: role and state are never taken from a cache."""
    if not username or len(username) > MAX_USERNAME or control_problem(username):
        return None  # no such user can exist; still verified against the dummy hash
    with state.db.read() as session:
        user = session.exec(select(s.User).where(s.User.username == username)).first()
        if user is None:
            return None
        return AdminRecord(password_hash=user.password_hash, role=user.role,
                           is_active=user.is_active, deleted=user.deleted_at is not None)


def current_admin(request: Request, state: State) -> str:
    username, password = _basic(request)
    client = request.client.host if request.client else "unknown"
    state.admin_gate.check(username, password, client, _record(state, username))
    return username


Admin = Annotated[str, Depends(current_admin)]


@contextmanager
def _acting(state: ServerState, admin: str) -> Iterator[Session]:
    """A unit of work whose changes are by ``admin`` (``created_by`` / ``updated_by``, and the
    server's audit chain)."""
    from sync.server import audit

    with state.db.atomic() as session:
        audit.act_as(session, audit.admin_actor(session, admin))
        yield session

# Bodies are bounded as their columns (schema.server) hold them, and refuse control characters
# (sync.bounds): a value the database would refuse is a 422 here, never a 5xx there.
Code = Annotated[str, Field(min_length=1, max_length=100), SINGLE_LINE]
Name = Annotated[str, Field(min_length=1, max_length=255), SINGLE_LINE]
Version = Annotated[str, Field(min_length=1, max_length=50), SINGLE_LINE]
Kind = Annotated[str, Field(min_length=1, max_length=50), SINGLE_LINE]
Description = Annotated[str, Field(max_length=MAX_TEXT_CHARS), MULTI_LINE]
Username = Annotated[str, Field(min_length=1, max_length=MAX_USERNAME), SINGLE_LINE]
Password = Annotated[str, Field(max_length=MAX_PASSWORD_CHARS), SINGLE_LINE]
Role = Annotated[str, Field(min_length=1, max_length=20), SINGLE_LINE]
Email = Annotated[str, Field(max_length=255), SINGLE_LINE]
Order = Annotated[int, Field(gt=0, le=INT32_MAX)]
# A target, item, user or device named in the path: its code, name or id.
Ref = Annotated[str, Path(min_length=1, max_length=255), SINGLE_LINE]


class DeviceIn(BaseModel):
    name: Name
    device_type: DeviceType = "tablet"


class TargetIn(BaseModel):
    product_code: Code
    product_name: Name
    # The name in English, for the UI in English (absent: the name serves both languages).
    product_name_en: Name | None = None
    version: Version = "1"
    description: Description | None = None


class TargetPatch(BaseModel):
    product_code: Code | None = None
    product_name: Name | None = None
    product_name_en: Name | None = None
    version: Version | None = None
    description: Description | None = None


class ItemIn(BaseModel):
    item_code: Code
    item_name: Name
    item_name_en: Name | None = None
    inspection_type: Kind
    criteria: JsonObject
    order_sequence: Order
    required: bool = True
    ai_enabled: bool = False
    pipeline_id: Name | None = None
    auto_analyse: bool = True
    defect_types: list[Code] | None = Field(default=None, max_length=20)


class ItemPatch(BaseModel):
    item_code: Code | None = None
    item_name: Name | None = None
    item_name_en: Name | None = None
    inspection_type: Kind | None = None
    criteria: JsonObject | None = None
    order_sequence: Order | None = None
    required: bool | None = None
    ai_enabled: bool | None = None
    pipeline_id: Name | None = None
    auto_analyse: bool | None = None
    defect_types: list[Code] | None = Field(default=None, max_length=20)


class PipelineIn(BaseModel):
    definition: JsonDefinition
    description: Description | None = None


class UserIn(BaseModel):
    username: Username
    password: Password
    role: Role = "inspector"
    full_name: Name | None = None
    email: Email | None = None


class UserPatch(BaseModel):
    password: Password | None = None
    role: Role | None = None
    full_name: Name | None = None
    email: Email | None = None
    is_active: bool | None = None


def _out(row: Any) -> dict[str, Any]:
    data = row.model_dump(mode="json")
    data.pop("password_hash", None)
    data.pop("token_hash", None)
    return dict(data)


@router.post("/devices", status_code=201)
def add_device(body: DeviceIn, state: State, admin: Admin) -> dict[str, Any]:
    with _acting(state, admin) as session:
        device, token = masters.add_device(session, body.name, body.device_type)
        return {**_out(device), "token": token}


@router.post("/devices/{name}/token")
def rotate_device_token(name: Ref, state: State, admin: Admin) -> dict[str, Any]:
    """A new device token, shown once; the old one and its access tokens stop working."""
    with _acting(state, admin) as session:
        token = masters.rotate_device_token(session, name)
        return {**_out(masters.find_device(session, name)), "token": token}


@router.post("/devices/{name}/enrollment", status_code=201)
def enrollment_code(name: Ref, state: State, admin: Admin) -> dict[str, Any]:
    """A one-time enrollment code for the device, shown once, with the QR text when the
    server knows its public address (``public_url``)."""
    from sync.enrollment_code import qr_text
    from sync.server import enrollment

    with _acting(state, admin) as session:
        issued = enrollment.issue(session, masters.find_device(session, name),
                                  state.settings.enrollment_ttl_s)
    url = state.settings.public_url
    return {"device_name": issued.device_name, "code": issued.code,
            "expires_at": issued.expires_at.isoformat(),
            "qr_text": qr_text(url, issued.code) if url else None}


@router.post("/devices/{name}/revoke", status_code=204)
def revoke_device(name: Ref, state: State, admin: Admin) -> None:
    """Stop a device from syncing, at its next request."""
    with _acting(state, admin) as session:
        masters.revoke_device(session, name)


@router.get("/devices")
def list_devices(state: State, _: Admin) -> list[dict[str, Any]]:
    with state.db.read() as session:
        return [_out(d) for d in session.exec(select(s.Device).order_by(s.Device.name))]


@router.post("/targets", status_code=201)
def add_target(body: TargetIn, state: State, admin: Admin) -> dict[str, Any]:
    with _acting(state, admin) as session:
        return _out(masters.add_target(session, **body.model_dump()))


@router.patch("/targets/{ref}")
def update_target(ref: Ref, body: TargetPatch, state: State, admin: Admin) -> dict[str, Any]:
    with _acting(state, admin) as session:
        return _out(masters.update_target(session, ref, **body.model_dump(exclude_none=True)))


@router.delete("/targets/{ref}", status_code=204)
def delete_target(ref: Ref, state: State, admin: Admin) -> None:
    with _acting(state, admin) as session:
        masters.delete_target(session, ref)


@router.post("/targets/{ref}/items", status_code=201)
def add_item(ref: Ref, body: ItemIn, state: State, admin: Admin) -> dict[str, Any]:
    with _acting(state, admin) as session:
        return _out(masters.add_item(session, ref, **body.model_dump()))


@router.patch("/targets/{ref}/items/{item}")
def update_item(ref: Ref, item: Ref, body: ItemPatch, state: State, admin: Admin) -> dict[str, Any]:
    with _acting(state, admin) as session:
        fields = body.model_dump(exclude_none=True)
        return _out(masters.update_item(session, ref, item, **fields))


@router.delete("/targets/{ref}/items/{item}", status_code=204)
def delete_item(ref: Ref, item: Ref, state: State, admin: Admin) -> None:
    with _acting(state, admin) as session:
        masters.delete_item(session, ref, item)


@router.put("/pipelines")
def put_pipeline(body: PipelineIn, state: State, admin: Admin) -> dict[str, Any]:
    with _acting(state, admin) as session:
        return _out(masters.put_pipeline(session, body.definition, body.description))


@router.post("/users", status_code=201)
def add_user(body: UserIn, state: State, admin: Admin) -> dict[str, Any]:
    with _acting(state, admin) as session:
        return _out(masters.add_user(session, **body.model_dump()))


@router.patch("/users/{ref}")
def update_user(ref: Ref, body: UserPatch, state: State, admin: Admin) -> dict[str, Any]:
    with _acting(state, admin) as session:
        return _out(masters.update_user(session, ref, **body.model_dump()))


@router.delete("/users/{ref}", status_code=204)
def delete_user(ref: Ref, state: State, admin: Admin) -> None:
    with _acting(state, admin) as session:
        masters.delete_user(session, ref)


@router.put("/models/{sha256}", status_code=201)
async def put_model(sha256: str, request: Request, state: State, admin: Admin) -> dict[str, Any]:
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
            with _acting(state, admin) as session:
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


@router.get("/conflicts")
def version_conflicts(
    state: State,
    _: Admin,
    device: Annotated[str | None, Query(max_length=255)] = None,
    open_only: Annotated[bool, Query(alias="open")] = True,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Version conflicts, newest first: the tablet's operation and the server's record side by
    side (``tablet``, ``server``), the reason code, and whether a supervisor has resolved it on
    the tablet (the choice arrives as a later operation on the record, ``resolved_by_op``)."""
    with state.db.read() as session:
        return acks.conflicts_for_admin(session, device=device, open_only=open_only, limit=limit)


@router.get("/ai-results/unknown-models")
def unknown_model_results(
    state: State, _: Admin, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[dict[str, Any]]:
    """AI results made by models this server never published (``sync.server.provenance``),
    newest first: which device, inspection and item, and which model hashes it does not know."""
    with state.db.read() as session:
        return [r.as_json() for r in provenance.flagged_results(session, limit=limit)]
