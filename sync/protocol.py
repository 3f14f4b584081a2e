"""The wire format both ends share: request and answer bodies of the sync API, version 1.

Plain pydantic models, no FastAPI: the device's client and the server's endpoints validate with
the same definitions.

    GET  /sync/v1/ping                      reachability probe, no credentials
    POST /sync/v1/auth                      device token -> short-lived access token
    POST /sync/v1/push                      a batch of outbox rows -> applied_through_seq
    GET  /sync/v1/changes?cursor=&limit=    masters changed after a cursor, with tombstones, and
                                            this device's acknowledgements (``Acks``)
    GET  /sync/v1/conflicts?after=          this device's operations the server refused, why
    POST /sync/v1/files/missing             which of these hashes the server lacks
    PUT  /sync/v1/files/{sha256}            upload a body; stored only if it hashes to its name
    GET  /sync/v1/files/{sha256}            download a model file
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sync.bounds import INT32_MAX, INT64_MAX, SINGLE_LINE, Int32, JsonObject, row_problem

API_PREFIX = "/sync/v1"
DEVICE_TIME_HEADER = "X-Kensa-Device-Time"

DeviceType = Literal["mobile", "desktop", "tablet"]
Operation = Literal["INSERT", "UPDATE", "DELETE"]

# entity_type values a device may push (sidecar.outbox.ENTITY_TYPES)
PUSH_ENTITY_TYPES = (
    "inspection_target",
    "inspection_session",
    "inspection_session_item",
    "inspection_image",
    "ai_inspection_result",
    "human_verification_result",
    "signature",
    # An entry of the device's audit chain (schema.formats.audit); kept by sync.server.audit.
    "audit_entry",
)

# The server table each entity's data is applied to. Data keys that name its columns are held to
# them when the operation arrives, so a value the table cannot hold (a width past INTEGER, a
# status longer than its column) is refused as that operation rather than failing to apply later.
# Only NUL among the controls: scanned codes may legitimately carry separators such as GS.
# An audit entry is kept as the bytes that were hashed, whatever its fields hold (a field that does
# not fit its search column is left out of that column), so it has no table here.
PUSH_ENTITY_TABLES = {
    "inspection_target": "inspection_targets",
    "inspection_session": "inspection_sessions",
    "inspection_session_item": "inspection_session_items",
    "inspection_image": "inspection_images",
    "ai_inspection_result": "ai_inspection_results",
    "human_verification_result": "human_verification_results",
    "signature": "signatures",
}

# entity_type values the server sends on pull
MASTER_ENTITY_TYPES = ("user", "pipeline", "model", "target", "item")

# Used with fullmatch: with match, "$" would let a trailing newline through.
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def is_sha256(value: str) -> bool:
    return bool(SHA256_RE.fullmatch(value))


class PushOp(BaseModel):
    """One outbox row on the wire.

    Strict: numbers are numbers, times and ids are strings in their own formats — so what this
    accepts, PostgreSQL reads the same way when the server hands it the batch as JSON. Every
    number fits its ``tauri_sync_queue`` column, every text its length and has no control
    characters, and ``data`` is a JSON object jsonb can hold (``sync.bounds``): what fails here
    is refused as this one operation, which the device sets aside.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    seq: int = Field(gt=0, le=INT64_MAX)
    op_id: uuid.UUID
    entity_type: Annotated[str, Field(max_length=100), SINGLE_LINE]
    entity_id: uuid.UUID
    operation: Operation
    data: JsonObject
    priority: Int32 = 0
    retry_count: int = Field(default=0, ge=0, le=INT32_MAX)
    created_at: datetime | None = None
    # The queue's per-row columns; optional because the batch carries them once.
    device_id: Annotated[str, Field(min_length=1, max_length=255), SINGLE_LINE] | None = None
    device_type: DeviceType | None = None
    app_version: Annotated[str, Field(min_length=1, max_length=50), SINGLE_LINE] | None = None

    @field_validator("entity_type")
    @classmethod
    def _known_entity(cls, value: str) -> str:
        if value not in PUSH_ENTITY_TYPES:
            raise ValueError(f"unknown entity_type {value!r}")
        return value

    @model_validator(mode="after")
    def _data_fits_its_table(self) -> PushOp:
        name = PUSH_ENTITY_TABLES.get(self.entity_type)
        if name is None:
            return self
        # Here, not at import: the server's tables cost a tablet's start ~0.15 s and only the
        # server validates pushed rows against them.
        from schema import server as server_schema

        table = server_schema.metadata.tables[name]
        problem = row_problem(table, self.data, controls=False)
        if problem:
            raise ValueError(f"data.{problem}")
        return self


class PushRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device_id: Annotated[str, Field(min_length=1, max_length=255), SINGLE_LINE]
    device_type: DeviceType
    app_version: Annotated[str, Field(min_length=1, max_length=50), SINGLE_LINE]
    ops: list[dict[str, Any]] = Field(min_length=1)


class PushBatch(BaseModel):
    """A push request with its operations validated in one pass (the common, valid case)."""

    model_config = ConfigDict(extra="forbid")

    device_id: Annotated[str, Field(min_length=1, max_length=255), SINGLE_LINE]
    device_type: DeviceType
    app_version: Annotated[str, Field(min_length=1, max_length=50), SINGLE_LINE]
    ops: list[PushOp] = Field(min_length=1)


class Rejection(BaseModel):
    seq: int | None = None
    op_id: str | None = None
    reason: str


class PushResponse(BaseModel):
    # Every op of the batch up to (in the batch's order) and including this seq is stored.
    applied_through_seq: int
    stored: int
    duplicates: int
    last_applied_seq: int


class AuthResponse(BaseModel):
    access_token: str
    expires_in: int
    device_id: str
    device_name: str
    device_type: DeviceType
    last_applied_seq: int


class EnrollRequest(BaseModel):
    """A one-time enrollment code (``kensa-server device add NAME --qr``) to trade."""

    code: str = Field(min_length=1, max_length=40)


class EnrollResponse(BaseModel):
    """The device token, given once for a valid code; the code is spent."""

    device_token: str
    device_id: str
    device_name: str
    device_type: DeviceType


class Change(BaseModel):
    cursor: str
    entity_type: str
    entity_id: str
    op: Literal["UPSERT", "DELETE"]
    data: dict[str, Any] | None = None


class Acks(BaseModel):
    """Where the asking device's own operations stand on the server, read in one snapshot.

    ``applied_through_seq``: every operation of the device up to this sequence has left the
    queue — applied, or refused and listed by ``GET /sync/v1/conflicts``. ``received_through_seq``:
    the highest sequence the server stored. ``refused_through``: the device's newest refusal
    number; a device that has read its refusals through it knows which of the operations under
    the watermark ended otherwise."""

    applied_through_seq: int
    received_through_seq: int
    refused_through: int


class ChangesPage(BaseModel):
    changes: list[Change]
    cursor: str
    has_more: bool
    # On the last page of a full resync: every live id per entity type, so the device can
    # tombstone what it holds and the server no longer has.
    live: dict[str, list[str]] | None = None
    # The device's own acknowledgements; absent from a server that does not send them.
    acks: Acks | None = None


class RefusedOp(BaseModel):
    """An operation stored but never to be applied: a version conflict (the server kept its own
    record), a rejection (another device's record) or a dead letter (it could never apply, or
    what it needs never came). ``id`` is the device's refusal number, the conflicts cursor."""

    id: int
    seq: int
    op_id: str
    entity_type: str
    entity_id: str
    operation: str
    reason: str
    data: dict[str, Any]
    kind: Literal["conflict", "rejected", "dead_letter"] = "conflict"
    # What the UI words in its own language (``sync.conflicts.REASON_CODES``); ``reason`` is the
    # server's text for people reading logs, bounded.
    reason_code: str = "cannot_apply"
    # For a version conflict: the record as the server holds it now, to set beside the tablet's.
    server_data: dict[str, Any] | None = None


class ConflictsPage(BaseModel):
    conflicts: list[RefusedOp]
    cursor: int


class MissingRequest(BaseModel):
    sha256: list[Annotated[str, Field(max_length=64)]] = Field(max_length=10_000)


class MissingResponse(BaseModel):
    missing: list[str]


class FileStored(BaseModel):
    sha256: str
    size: int
    created: bool


class ErrorBody(BaseModel):
    code: str
    message: str
    detail: dict[str, Any] = Field(default_factory=dict)
