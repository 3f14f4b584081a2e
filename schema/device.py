"""The device database: the tablet's SQLite store.

The seed's Tauri tables keep every column they had (``users``, ``inspection_targets``,
``inspection_sessions``, ``inspection_images``, ``ai_inspection_results``,
``human_verification_results``, ``system_config``) and are extended, never trimmed: per-item
granularity on results, pipeline and model versions on AI results, ``version``/``updated_at`` for
optimistic locking. Beside them live the masters cached from the server, the ``outbox`` that
sync drains, ``sync_state``, the analysis job queue and its progress log.

Records made on the device carry UUID text ids (see ``schema.types.new_id``); masters and users
carry the server's ids.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from schema.formats.roles import role_check
from schema.formats.signatures import MEANINGS, SIGNED_RECORDS
from schema.formats.workflow import (
    HUMAN_RESULTS,
    ITEM_START,
    ITEM_STATES,
    SESSION_START,
    SESSION_STATES,
    SEVERITIES,
)
from schema.types import NOW, JSONType, UTCDateTime, defer_foreign_keys, new_id, utcnow


class DeviceTable(SQLModel, registry=registry()):
    """Base of the device tables: their own metadata, apart from the server's."""


metadata = DeviceTable.metadata


def _created() -> Any:
    return Field(
        default_factory=utcnow, sa_type=UTCDateTime, sa_column_kwargs={"server_default": NOW}
    )


def _updated() -> Any:
    return Field(
        default_factory=utcnow,
        sa_type=UTCDateTime,
        sa_column_kwargs={"server_default": NOW, "onupdate": utcnow},
    )


def _version() -> Any:
    return Field(default=1, sa_column_kwargs={"server_default": "1"})


# ---------------------------------------------------------------------------------------------
# The seed's Tauri tables, extended
# ---------------------------------------------------------------------------------------------


class User(DeviceTable, table=True):
    """Inspectors and admins who may log in on this tablet, offline included."""

    __tablename__ = "users"
    __table_args__ = (
        sa.CheckConstraint(role_check(), name="ck_users_role"),
        sa.CheckConstraint("failed_attempts >= 0", name="ck_users_failed_attempts"),
    )

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(sa_column_kwargs={"unique": True})
    email: str | None = Field(default=None, sa_column_kwargs={"unique": True})
    password_hash: str
    full_name: str | None = None
    role: str = Field(default="inspector", sa_column_kwargs={"server_default": "inspector"})
    created_at: datetime = _created()
    updated_at: datetime = _updated()
    # Server's id for users pulled from the server; NULL for a user made with `kensa user add`.
    server_id: str | None = Field(default=None, sa_column_kwargs={"unique": True})
    # The server registration (this tablet's device id there) the user was pulled from; NULL for
    # a local user. A pull through another registration never changes such a user: re-pointing
    # the tablet must not hand its logins to whoever answers at the new address.
    origin: str | None = None
    is_active: bool = Field(default=True, sa_column_kwargs={"server_default": sa.true()})
    failed_attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_login_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    version: int = _version()


class InspectionTarget(DeviceTable, table=True):
    """One scanned unit: the product and batch a QR code named, with the raw code."""

    __tablename__ = "inspection_targets"

    id: str = Field(default_factory=new_id, primary_key=True)
    product_id: str
    batch_id: str
    qr_code: str
    created_at: datetime = _created()
    updated_at: datetime = _updated()
    # Which master (and which of its versions) the unit was identified against.
    master_id: str | None = Field(default=None, foreign_key="inspection_targets_master.id")
    master_version: str | None = None
    serial: str | None = None
    payload_format: str | None = None
    version: int = _version()


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class InspectionSession(DeviceTable, table=True):
    __tablename__ = "inspection_sessions"
    __table_args__ = (
        sa.CheckConstraint(_in("status", SESSION_STATES), name="ck_sessions_status"),
        sa.CheckConstraint(
            f"result IS NULL OR {_in('result', HUMAN_RESULTS)}", name="ck_sessions_result"
        ),
        sa.Index("idx_inspection_sessions_status_completed", "status", "completed_at"),
        sa.Index("idx_inspection_sessions_user_started", "user_id", "started_at"),
        sa.Index("idx_inspection_sessions_started", "started_at"),
    )

    id: str = Field(default_factory=new_id, primary_key=True)
    target_id: str = Field(foreign_key="inspection_targets.id")
    user_id: int | None = Field(default=None, foreign_key="users.id")
    status: str = Field(default=SESSION_START, sa_column_kwargs={"server_default": SESSION_START})
    started_at: datetime = _created()
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Rolled up from the items when the session completes.
    result: str | None = None
    product_code: str | None = Field(default=None, index=True)
    updated_at: datetime = _updated()
    version: int = _version()


class InspectionSessionItem(DeviceTable, table=True):
    """Where one item of one session stands; the state a killed app resumes from."""

    __tablename__ = "inspection_session_items"
    __table_args__ = (
        sa.UniqueConstraint("session_id", "item_id", name="uq_session_items_session_item"),
        sa.CheckConstraint(_in("status", ITEM_STATES), name="ck_session_items_status"),
        sa.CheckConstraint(
            f"result IS NULL OR {_in('result', HUMAN_RESULTS)}", name="ck_session_items_result"
        ),
        sa.CheckConstraint("order_sequence > 0", name="ck_session_items_order_sequence"),
        sa.CheckConstraint("attempts >= 0", name="ck_session_items_attempts"),
    )

    id: str = Field(default_factory=new_id, primary_key=True)
    session_id: str = Field(foreign_key="inspection_sessions.id", index=True)
    item_id: str = Field(foreign_key="inspection_items_master.id")
    item_code: str
    order_sequence: int
    required: bool = True
    status: str = Field(default=ITEM_START, sa_column_kwargs={"server_default": ITEM_START})
    result: str | None = None
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    created_at: datetime = _created()
    updated_at: datetime = _updated()
    version: int = _version()


class InspectionImage(DeviceTable, table=True):
    __tablename__ = "inspection_images"
    __table_args__ = (
        sa.CheckConstraint("file_size IS NULL OR file_size > 0", name="ck_images_file_size"),
        sa.CheckConstraint("length(sha256) = 64", name="ck_images_sha256"),
    )

    id: str = Field(default_factory=new_id, primary_key=True)
    session_id: str = Field(foreign_key="inspection_sessions.id", index=True)
    file_path: str
    image_type: str = Field(default="capture", sa_column_kwargs={"server_default": "capture"})
    file_size: int | None = None
    created_at: datetime = _created()
    item_id: str | None = Field(default=None, foreign_key="inspection_items_master.id")
    sha256: str = Field(index=True)
    mime_type: str | None = None
    width: int | None = None
    height: int | None = None
    thumbnail_path: str | None = None
    # Set once the server has confirmed it holds the bytes under this hash.
    uploaded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class AIInspectionResult(DeviceTable, table=True):
    __tablename__ = "ai_inspection_results"
    __table_args__ = (
        sa.CheckConstraint("confidence >= 0 AND confidence <= 1", name="ck_ai_results_confidence"),
        sa.CheckConstraint("processing_time >= 0", name="ck_ai_results_processing_time"),
        sa.CheckConstraint(
            "image_sha256 IS NULL OR length(image_sha256) = 64", name="ck_ai_results_image_sha256"
        ),
        sa.CheckConstraint(
            _in("overall_result", ("OK", "NG", "PENDING_REVIEW")), name="ck_ai_results_overall"
        ),
        # One result per image and pipeline version: a retried job never writes twice.
        sa.UniqueConstraint(
            "image_id", "pipeline_id", "pipeline_version", name="uq_ai_results_image_pipeline"
        ),
        sa.Index("idx_ai_results_confidence_time", "confidence", "created_at"),
    )

    id: str = Field(default_factory=new_id, primary_key=True)
    session_id: str = Field(foreign_key="inspection_sessions.id", index=True)
    pipeline_version: str | None = None
    overall_result: str
    # The model's own confidence, or None when it gave none (a measurement, a score with no
    # probability): never a number made up to fill the column.
    confidence: float | None = None
    processing_time: float
    detailed_results: str | None = None
    created_at: datetime = _created()
    item_id: str | None = Field(default=None, foreign_key="inspection_items_master.id")
    image_id: str | None = Field(default=None, foreign_key="inspection_images.id")
    pipeline_id: str | None = None
    model_sha256: str | None = None
    measurements: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    # decode / pre / infer / post / judge, in milliseconds
    timings: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    updated_at: datetime = _updated()
    version: int = _version()
    # Provenance, as the job runner measured it (NULL only on results older than revision 0005):
    # the SHA-256 of every model the pipeline ran, of the photo it was given, the engine
    # ("kensa/<v> onnxruntime/<v>"), the execution provider the ONNX Runtime sessions got, and
    # each step as the engine timed it ({node, op, stage, start_ms, ms}).
    model_hashes: list[str] | None = Field(default=None, sa_type=JSONType)
    image_sha256: str | None = None
    engine_version: str | None = None
    execution_provider: str | None = None
    step_timings: list[dict[str, Any]] | None = Field(default=None, sa_type=JSONType)


class HumanVerificationResult(DeviceTable, table=True):
    __tablename__ = "human_verification_results"
    __table_args__ = (
        sa.CheckConstraint(_in("final_result", HUMAN_RESULTS), name="ck_human_results_final"),
        sa.CheckConstraint("verification_time >= 0", name="ck_human_results_time"),
        sa.CheckConstraint(
            f"severity IS NULL OR {_in('severity', SEVERITIES)}",
            name="ck_human_results_severity",
        ),
        sa.Index("idx_human_results_final_date", "final_result", "created_at"),
    )

    id: str = Field(default_factory=new_id, primary_key=True)
    session_id: str = Field(foreign_key="inspection_sessions.id", index=True)
    user_id: int = Field(foreign_key="users.id")
    final_result: str
    notes: str | None = None
    verification_time: float
    created_at: datetime = _created()
    item_id: str | None = Field(default=None, foreign_key="inspection_items_master.id")
    ai_result_id: str | None = Field(default=None, foreign_key="ai_inspection_results.id")
    defect_types: list[str] | None = Field(default=None, sa_type=JSONType)
    severity: str | None = None
    # True when the inspector's result differs from the AI's.
    overrode_ai: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    updated_at: datetime = _updated()
    version: int = _version()


class Signature(DeviceTable, table=True):
    """An electronic signature (21 CFR 11.50, 11.70, 11.200): the signer entered their password
    again for one act; who they were then (name and role as printed), what the signature means,
    and the record it signs with that record's digest as written in the same transaction
    (``schema.formats.signatures``). Written once, never changed."""

    __tablename__ = "signatures"
    __table_args__ = (
        sa.CheckConstraint(_in("meaning", MEANINGS), name="ck_signatures_meaning"),
        sa.CheckConstraint(_in("record_type", SIGNED_RECORDS), name="ck_signatures_record_type"),
        sa.CheckConstraint("length(record_digest) = 64", name="ck_signatures_record_digest"),
    )

    id: str = Field(default_factory=new_id, primary_key=True)
    session_id: str = Field(foreign_key="inspection_sessions.id", index=True)
    user_id: int = Field(foreign_key="users.id")
    username: str
    full_name: str | None = None
    role: str
    meaning: str
    record_type: str
    record_id: str
    record_digest: str
    signed_at: datetime = _created()


class SystemConfig(DeviceTable, table=True):
    __tablename__ = "system_config"

    key: str = Field(primary_key=True)
    value: str
    updated_at: datetime = _updated()


class LoginSource(DeviceTable, table=True):
    """Login outcomes per user and per client (the UI's ``X-Kensa-Client`` id, or ``unknown``).

    A lock binds one user at one client, so whoever guesses from elsewhere cannot lock an
    inspector out of their own tablet; a client that has logged a user in before is trusted
    for that user (see ``sidecar.domain.lockout``).
    """

    __tablename__ = "login_sources"
    __table_args__ = (
        sa.CheckConstraint("failed_attempts >= 0", name="ck_login_sources_failed_attempts"),
    )

    user_id: int = Field(foreign_key="users.id", primary_key=True, ondelete="CASCADE")
    source: str = Field(primary_key=True, max_length=64)
    failed_attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_failed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_success_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


# ---------------------------------------------------------------------------------------------
# Masters cached from the server (server-owned; the server's ids)
# ---------------------------------------------------------------------------------------------


class Pipeline(DeviceTable, table=True):
    __tablename__ = "pipelines"
    __table_args__ = (sa.CheckConstraint("version > 0", name="ck_pipelines_version"),)

    id: str = Field(primary_key=True)
    name: str
    description: str | None = None
    definition: dict[str, Any] = Field(sa_type=JSONType)
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    created_at: datetime = _created()
    updated_at: datetime = _updated()
    # A server-side delete arrives as a tombstone; the row stays because history refers to it.
    deleted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class InspectionTargetMaster(DeviceTable, table=True):
    __tablename__ = "inspection_targets_master"

    id: str = Field(primary_key=True)
    product_code: str = Field(sa_column_kwargs={"unique": True})
    product_name: str
    # The name in English, for the UI in English; null: the (Japanese) name serves both.
    product_name_en: str | None = None
    version: str
    description: str | None = None
    created_at: datetime = _created()
    updated_at: datetime = _updated()
    # A server-side delete arrives as a tombstone; the row stays because history refers to it.
    deleted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class InspectionItemMaster(DeviceTable, table=True):
    __tablename__ = "inspection_items_master"
    __table_args__ = (
        sa.UniqueConstraint("target_id", "item_code", name="uq_items_target_item_code"),
        sa.CheckConstraint("order_sequence > 0", name="ck_items_order_sequence"),
        sa.CheckConstraint(
            _in("inspection_type", ("VISUAL", "DIMENSION", "FUNCTION", "TEXT")),
            name="ck_items_inspection_type",
        ),
        sa.Index("idx_inspection_items_target_sequence", "target_id", "order_sequence"),
    )

    id: str = Field(primary_key=True)
    target_id: str = Field(foreign_key="inspection_targets_master.id")
    item_code: str
    item_name: str
    item_name_en: str | None = None
    inspection_type: str
    ai_enabled: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    pipeline_id: str | None = Field(default=None, foreign_key="pipelines.id")
    criteria: dict[str, Any] = Field(sa_type=JSONType)
    order_sequence: int
    required: bool = Field(default=True, sa_column_kwargs={"server_default": sa.true()})
    # Queue the item's pipeline as soon as a photo is attached (AI items; the inspector still
    # confirms the verdict).
    auto_analyse: bool = Field(default=True, sa_column_kwargs={"server_default": sa.true()})
    # The defect types that can occur on this item (``schema.formats.defects``); null: all.
    defect_types: list[str] | None = Field(default=None, sa_type=JSONType)
    created_at: datetime = _created()
    updated_at: datetime = _updated()
    # A server-side delete arrives as a tombstone; the row stays because history refers to it.
    deleted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ModelFile(DeviceTable, table=True):
    """An ONNX model pulled from the server, stored in the data directory under its hash."""

    __tablename__ = "model_files"
    __table_args__ = (
        sa.CheckConstraint("length(sha256) = 64", name="ck_model_files_sha256"),
        sa.CheckConstraint("size > 0", name="ck_model_files_size"),
    )

    sha256: str = Field(primary_key=True)
    name: str
    size: int
    file_path: str
    created_at: datetime = _created()


class Calibration(DeviceTable, table=True):
    """Pixel-to-millimetre scale of a camera setup, for DIMENSION items."""

    __tablename__ = "calibrations"
    __table_args__ = (sa.CheckConstraint("mm_per_px > 0", name="ck_calibrations_scale"),)

    id: str = Field(default_factory=new_id, primary_key=True)
    camera_id: str = Field(index=True)
    mm_per_px: float
    notes: str | None = None
    created_at: datetime = _created()


# ---------------------------------------------------------------------------------------------
# Sync
# ---------------------------------------------------------------------------------------------

OPERATIONS = ("INSERT", "UPDATE", "DELETE")


class Outbox(DeviceTable, table=True):
    """The device's copy of the server queue's columns, waiting to be pushed.

    ``seq`` is AUTOINCREMENT so a sequence number is never reused, even after the rows below it
    were pushed and deleted: the server relies on it to name what it has applied.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        sa.CheckConstraint(_in("operation", OPERATIONS), name="ck_outbox_operation"),
        sa.CheckConstraint("retry_count >= 0", name="ck_outbox_retry_count"),
        sa.Index("idx_outbox_push_order", "priority", "seq"),
        {"sqlite_autoincrement": True},
    )

    seq: int | None = Field(default=None, primary_key=True)
    op_id: str = Field(default_factory=new_id, sa_column_kwargs={"unique": True})
    entity_type: str
    entity_id: str
    operation: str
    data: dict[str, Any] = Field(sa_type=JSONType)
    priority: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    retry_count: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    last_retry_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = _created()
    # An operation the server refused for good is set aside with its reason, not retried.
    set_aside_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    set_aside_reason: str | None = None


class SyncState(DeviceTable, table=True):
    """One row per sync stream (push, pull, upload): cursor and last outcome."""

    __tablename__ = "sync_state"

    name: str = Field(primary_key=True)
    cursor: str | None = None
    last_success_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = None
    last_error_kind: str | None = None
    updated_at: datetime = _updated()


class InspectionSync(DeviceTable, table=True):
    """How far each inspection's operations got: the highest outbox ``seq`` of its own the server
    has received (stored in its queue). Written when the pushed rows leave the outbox, in the same
    transaction; whether they are applied too is the server's applied watermark (``sync_state``
    ``acks``) against this number. An inspection with operations still in the outbox, or with no
    row here, is still only on this tablet."""

    __tablename__ = "inspection_sync"

    session_id: str = Field(primary_key=True)
    received_through_seq: int


# What became of an operation the server stored but did not apply.
REFUSAL_KINDS = ("conflict", "rejected", "dead_letter")
RESOLUTIONS = ("keep_tablet", "keep_server")


class SyncRefusal(DeviceTable, table=True):
    """An operation of this tablet that the server stored and will never apply, with the server's
    reason (a code the UI words, and the server's text) and, for a version conflict, the server's
    version of the record, so a supervisor can compare both and choose without a connection.
    The operation itself stays in ``outbox`` set aside until it is resolved."""

    __tablename__ = "sync_refusals"
    __table_args__ = (
        sa.CheckConstraint(_in("kind", REFUSAL_KINDS), name="ck_sync_refusals_kind"),
        sa.CheckConstraint(
            f"resolution IS NULL OR {_in('resolution', RESOLUTIONS)}",
            name="ck_sync_refusals_resolution",
        ),
    )

    op_id: str = Field(primary_key=True)
    seq: int
    entity_type: str
    entity_id: str = Field(index=True)
    operation: str
    kind: str
    reason_code: str
    reason: str
    data: dict[str, Any] = Field(sa_type=JSONType)
    server_data: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    refused_at: datetime = _created()
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolution: str | None = None
    resolved_by: str | None = None


# ---------------------------------------------------------------------------------------------
# Audit trail
# ---------------------------------------------------------------------------------------------


class AuditLog(DeviceTable, table=True):
    """The tablet's append-only audit trail: one hash-chained entry per change and per security
    event (``schema.formats.audit`` defines the fields, the hash and the chain). ``seq`` is the
    per-device sequence: the next entry takes the last one's plus one inside the writer's
    transaction, so the chain has no gaps. Triggers refuse UPDATE and DELETE
    (``AUDIT_LOG_TRIGGERS``)."""

    __tablename__ = "audit_log"
    __table_args__ = (
        sa.CheckConstraint("seq > 0", name="ck_audit_log_seq"),
        sa.CheckConstraint(
            "length(hash) = 64 AND length(prev_hash) = 64", name="ck_audit_log_hash"
        ),
        sa.Index("idx_audit_log_entity", "entity", "entity_id", "seq"),
    )

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    id: str = Field(sa_column_kwargs={"unique": True})
    # UTC as text, exactly as hashed: YYYY-MM-DDTHH:MM:SS.ffffffZ.
    at: str
    # Who, as they were then; no foreign key: the entry outlives the user row.
    user_id: int | None = None
    user_server_id: str | None = None
    username: str | None = None
    role: str | None = None
    entity: str
    entity_id: str | None = None
    action: str
    changes: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    reason: str | None = None
    detail: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    row_digest: str | None = None
    prev_hash: str
    hash: str


AUDIT_LOG_TRIGGERS: tuple[str, ...] = (
    "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: entries are never changed'); END",
    "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: entries are never deleted'); END",
)

for _ddl in AUDIT_LOG_TRIGGERS:
    sa.event.listen(
        AuditLog.__table__,  # type: ignore[attr-defined]
        "after_create",
        sa.DDL(_ddl),  # type: ignore[no-untyped-call]
    )


# ---------------------------------------------------------------------------------------------
# AI jobs (the seed's analysis_queue and progress_logs)
# ---------------------------------------------------------------------------------------------

JOB_STATUSES = ("waiting", "processing", "completed", "failed", "cancelled")
JOB_PRIORITIES = ("low", "normal", "high", "urgent")


class AnalysisJob(DeviceTable, table=True):
    __tablename__ = "analysis_jobs"
    __table_args__ = (
        sa.CheckConstraint(_in("status", JOB_STATUSES), name="ck_jobs_status"),
        sa.CheckConstraint(_in("priority", JOB_PRIORITIES), name="ck_jobs_priority"),
        sa.CheckConstraint("position > 0", name="ck_jobs_position"),
        sa.CheckConstraint("retry_count >= 0 AND max_retries >= 0", name="ck_jobs_retries"),
        # Idempotency: one job per image and pipeline version.
        sa.UniqueConstraint(
            "image_id", "pipeline_id", "pipeline_version", name="uq_jobs_image_pipeline"
        ),
        sa.Index("idx_analysis_jobs_status_position", "status", "position"),
    )

    id: str = Field(default_factory=new_id, primary_key=True)
    image_id: str = Field(foreign_key="inspection_images.id")
    session_id: str | None = Field(default=None, foreign_key="inspection_sessions.id")
    item_id: str | None = Field(default=None, foreign_key="inspection_items_master.id")
    user_id: int | None = Field(default=None, foreign_key="users.id")
    pipeline_id: str
    pipeline_version: int
    position: int
    status: str = Field(default="waiting", sa_column_kwargs={"server_default": "waiting"})
    priority: str = Field(default="normal", sa_column_kwargs={"server_default": "normal"})
    queued_at: datetime = _created()
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    error_message: str | None = None
    error_recoverable: bool | None = None
    suggested_action: str | None = None
    retry_count: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    max_retries: int = Field(default=3, sa_column_kwargs={"server_default": "3"})
    result_id: str | None = Field(default=None, foreign_key="ai_inspection_results.id")
    model_name: str | None = None


class ProgressLog(DeviceTable, table=True):
    __tablename__ = "progress_logs"
    __table_args__ = (
        sa.CheckConstraint(
            "progress_percentage >= 0 AND progress_percentage <= 100", name="ck_progress_range"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="analysis_jobs.id", index=True, ondelete="CASCADE")
    progress_percentage: float
    current_stage: str
    stage_description: str | None = None
    timestamp: datetime = _created()
    estimated_completion: datetime | None = Field(default=None, sa_type=UTCDateTime)


defer_foreign_keys(metadata)
