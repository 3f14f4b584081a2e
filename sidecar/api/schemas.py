"""Request and response bodies: ``XBase`` (shared fields), ``XCreate`` (in), ``XPublic`` (out)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from schema.formats.workflow import ITEM_STATES, SESSION_STATES
from sidecar.domain import bounds
from sidecar.domain.access import Action, Scope


def _line(value: str) -> str:
    return bounds.check_text(value, multiline=False)


# A single-line value (a name, a code, a version): no control character at all. Multi-line text
# (a note) may hold tab and line breaks; every str of every request body is held to that much
# by ``Strict`` below.
Line = Annotated[str, AfterValidator(_line)]
# What the sidecar makes (photos, AI results) is named by a UUID (``schema.types.new_id``).
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
DeviceId = Annotated[str, StringConstraints(pattern=UUID_PATTERN)]
# Masters are named by whoever made them: the server's UUIDs, a stand-alone tablet's codes.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
RecordId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
# The states an answer may name are the move table's: the OpenAPI document lists them, so the
# UI's generated types (and its words for each state) follow the table.
SessionState = Annotated[str, Field(json_schema_extra={"enum": list(SESSION_STATES)})]
ItemState = Annotated[str, Field(json_schema_extra={"enum": list(ITEM_STATES)})]


class CriteriaTextPublic(BaseModel):
    """An item's criteria in words, in each language the UI speaks (it shows its own)."""

    ja: str
    en: str


VerdictField = Literal["defect_types", "severity"]


class VerdictNeedsPublic(BaseModel):
    """What a verdict with each result must carry: the form asks for it before it posts, and the
    sidecar refuses a verdict without it (``sidecar.domain.workflow.VERDICT_NEEDS``)."""

    OK: list[VerdictField]
    NG: list[VerdictField]
    PENDING: list[VerdictField]


class Strict(BaseModel):
    # Unknown fields are an error, not silently dropped: a client bug shows at once. JSON has no
    # NaN or Infinity, but Python's parser reads them (and 1e999 as infinity): refuse them.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        # Whatever a body holds is stored here and pushed to PostgreSQL, which cannot hold a NUL
        # or a lone surrogate: one such character would stop the tablet's sync for good.
        bounds.check_strings(value)
        return value


J = TypeVar("J")


def finite_json(value: J) -> J:
    """``value`` unchanged if every number in it is finite; free-form JSON (``dict[str, Any]``)
    escapes ``allow_inf_nan``, and a NaN stored there could never be synced to the server."""
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError("numbers must be finite (no NaN or Infinity)")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value


# --- auth --------------------------------------------------------------------------------------


class HealthPublic(BaseModel):
    status: Literal["ok"]
    version: str
    # False only for a development store (KENSA_PLAINTEXT=1): the settings screen warns that a
    # lost tablet's records and photos would open without any key.
    encrypted: bool


class LoginCreate(Strict):
    username: Line = Field(min_length=1, max_length=150)
    # Compared as typed: spaces at either end are part of a password (`kensa user add` keeps them).
    password: Annotated[str, StringConstraints(strip_whitespace=False)] = Field(
        min_length=1, max_length=1024
    )


class UserPublic(BaseModel):
    id: int
    username: str
    full_name: str | None
    role: str
    # What this role may do (``domain.access.permissions``): action -> "own" (on the user's own
    # inspections) or "any"; an action not listed is not offered. Empty for an unknown role.
    permissions: dict[Action, Scope]


class LoginPublic(BaseModel):
    token: str
    expires_at: datetime
    user: UserPublic


# --- masters and scans -------------------------------------------------------------------------


class ItemMasterPublic(BaseModel):
    id: str
    item_code: str
    item_name: str
    # The name in English where the master has one; the UI in English falls back to the name.
    item_name_en: str | None = None
    inspection_type: str
    ai_enabled: bool
    pipeline_id: str | None
    criteria: dict[str, Any]
    criteria_text: CriteriaTextPublic
    order_sequence: int
    required: bool


class TargetMasterPublic(BaseModel):
    id: str
    product_code: str
    product_name: str
    product_name_en: str | None = None
    version: str
    description: str | None


class ScanTextCreate(Strict):
    text: str = Field(min_length=1, max_length=4096)


class CodePublic(BaseModel):
    text: str
    format: str


class UnitPublic(BaseModel):
    product_code: str
    batch_id: str
    serial: str | None
    format: str
    fields: dict[str, Any]
    raw: str


class ScanPublic(BaseModel):
    codes: list[CodePublic]
    unit: UnitPublic
    target: TargetMasterPublic
    items: list[ItemMasterPublic]


# --- sessions ----------------------------------------------------------------------------------


class SessionCreate(Strict):
    qr_code: str = Field(min_length=1, max_length=4096)


class ImagePublic(BaseModel):
    id: str
    item_id: str | None
    sha256: str
    file_size: int | None
    mime_type: str | None
    width: int | None
    height: int | None
    created_at: datetime


class AIResultBase(BaseModel):
    image_id: str | None = None
    pipeline_id: str | None = Field(default=None, max_length=64)
    pipeline_version: str | None = Field(default=None, max_length=50)
    model_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    overall_result: Literal["OK", "NG", "PENDING_REVIEW"]
    # The model's own confidence; null when it gave none (the UI shows "—", never a number).
    confidence: float | None = Field(ge=0, le=1)
    processing_time: float = Field(ge=0, le=3600)
    measurements: dict[str, Any] | None = None
    timings: dict[str, float] | None = None
    detailed_results: dict[str, Any] | None = None


class StepTiming(BaseModel):
    """One pipeline step as the engine timed it."""

    node: str
    op: str
    stage: str
    start_ms: float
    ms: float


class Provenance(BaseModel):
    """Where an AI result came from: the models (SHA-256 of each), the photo as the pipeline read
    it, the engine and the execution provider ONNX Runtime gave it, each step's time. Null on
    results recorded before kensa kept it."""

    model_hashes: list[str] | None = None
    image_sha256: str | None = None
    engine_version: str | None = None
    execution_provider: str | None = None
    step_timings: list[StepTiming] | None = None


JsonKey = Annotated[str, StringConstraints(max_length=bounds.MAX_KEY_LENGTH), AfterValidator(_line)]


class AIResultPublic(AIResultBase):
    id: str
    item_id: str | None
    created_at: datetime
    provenance: Provenance


class VerificationBase(BaseModel):
    final_result: Literal["OK", "NG", "PENDING"]
    notes: str | None = Field(default=None, max_length=2000)
    defect_types: list[str] | None = Field(default=None, max_length=20)
    severity: Literal["minor", "major", "critical"] | None = None
    verification_time: float = Field(default=0, ge=0, le=86400)
    ai_result_id: str | None = None


# The server keeps defect types as JSON: each a short single-line label.
DefectType = Annotated[Line, StringConstraints(max_length=100)]


class SignatureCreate(Strict):
    """The user's password entered again to sign an act, and what the signature means
    (``domain.signatures``: which acts need which)."""

    # Compared as typed, like a login's.
    password: Annotated[str, StringConstraints(strip_whitespace=False)] = Field(
        min_length=1, max_length=1024
    )
    meaning: Literal["approved", "overridden", "released", "discarded"]


# Why the user did it, in their words: the audit entries of the act carry it (``sidecar.audit``).
Reason = Annotated[str, StringConstraints(min_length=1, max_length=500)]


class SignedCreate(Strict):
    """The body of an act that may need a signature (complete, discard, cancel, restart)."""

    signature: SignatureCreate | None = None
    # Why (a discard's, above all): kept on the act's audit entries.
    reason: Reason | None = None


class SignaturePublic(BaseModel):
    """A signature as recorded: the signer as they were then, its meaning, what it signs."""

    id: str
    username: str
    full_name: str | None
    role: str
    meaning: Literal["approved", "overridden", "released", "discarded"]
    record_type: str
    record_id: str
    # schema.formats.audit.row_digest of the signed record as written with the signature
    record_digest: str
    signed_at: datetime


class VerificationCreate(Strict):
    final_result: Literal["OK", "NG", "PENDING"]
    notes: str | None = Field(default=None, max_length=2000)
    defect_types: list[DefectType] | None = Field(default=None, max_length=20)
    severity: Literal["minor", "major", "critical"] | None = None
    verification_time: float = Field(default=0, ge=0, le=86400)
    ai_result_id: DeviceId | None = None
    # Needed to override the AI's verdict or release an NG item as OK (``domain.signatures``).
    signature: SignatureCreate | None = None
    # Why the verdict differs from the AI's, or why an NG item is released: on its audit entries.
    reason: Reason | None = None


class VerificationPublic(VerificationBase):
    id: str
    item_id: str | None
    username: str | None
    # Who gave the verdict as people call them (full name, else username).
    display_name: str | None
    overrode_ai: bool
    created_at: datetime


class SessionItemPublic(BaseModel):
    item_id: str
    item_code: str
    item_name: str
    item_name_en: str | None = None
    inspection_type: str
    order_sequence: int
    required: bool
    ai_enabled: bool
    # The UI queues the pipeline as soon as a photo is attached (an AI item whose master says so).
    auto_analyse: bool
    # The defect types an NG verdict on this item may name, in the catalogue's order.
    defect_types: list[str]
    pipeline_id: str | None
    criteria: dict[str, Any]
    criteria_text: CriteriaTextPublic
    status: ItemState
    # Verified, or skipped: nothing more to do on it (the move table's finished states).
    done: bool
    # Whether ``POST .../skip`` and ``POST .../retry`` would be accepted now: the UI offers
    # exactly these.
    can_skip: bool
    can_retry: bool
    verdict_needs: VerdictNeedsPublic
    result: str | None
    attempts: int
    images: list[ImagePublic]
    ai_results: list[AIResultPublic]
    verifications: list[VerificationPublic]


class SessionPublic(BaseModel):
    id: str
    status: SessionState
    # In an end state: nothing in it can change any more.
    closed: bool
    # What ``POST .../complete`` would say now: open, and no item left that keeps it open.
    can_complete: bool
    missing_items: list[str]
    result: str | None
    product_code: str | None
    product_name: str | None
    product_name_en: str | None = None
    target_version: str | None
    batch_id: str
    serial: str | None
    qr_code: str
    username: str | None
    # The inspector as people call them (full name, else username).
    display_name: str | None
    started_at: datetime
    completed_at: datetime | None
    version: int
    items: list[SessionItemPublic]
    # Every signature given in this inspection, oldest first.
    signatures: list[SignaturePublic] = Field(default_factory=list)


class ItemProgressPublic(BaseModel):
    item_code: str
    status: ItemState
    done: bool
    required: bool


class InterruptedPublic(BaseModel):
    id: str
    status: SessionState
    product_code: str | None
    batch_id: str
    # The unit's serial, when its label names one: a scan of the same unit can offer this one.
    serial: str | None = None
    username: str | None
    # The owner's name as shown to people (full name, else username); null when nobody owns it.
    display_name: str | None
    started_at: datetime
    last_activity: datetime
    progress: float
    # Photos taken in it so far: what a discard would lose.
    photos: int
    items: list[ItemProgressPublic]


# --- history -----------------------------------------------------------------------------------


class HistoryRowPublic(BaseModel):
    id: str
    status: SessionState
    result: str | None
    product_code: str | None
    batch_id: str
    username: str | None
    # The inspector as people call them (full name, else username).
    display_name: str | None
    started_at: datetime
    completed_at: datetime | None
    # Where its records stand: only on this tablet, received by the server, applied there, or
    # set aside for a person (``sync.device.acks``).
    sync_state: Literal["local", "received", "applied", "attention"] = "local"


class HistoryPublic(BaseModel):
    rows: list[HistoryRowPublic]
    total: int
    page: int
    page_size: int


class StatsBucketPublic(BaseModel):
    period: str
    total: int
    ok: int
    ng: int
    pending: int


class StatsPublic(BaseModel):
    period: Literal["day", "week", "month"]
    buckets: list[StatsBucketPublic]


class ErrorBody(BaseModel):
    code: str
    message: str
    detail: dict[str, Any] | list[Any] | None = None


class ErrorPublic(BaseModel):
    error: ErrorBody
