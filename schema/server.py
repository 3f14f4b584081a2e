"""The server database: PostgreSQL in production, SQLite for a demo or a single small site.

The seed's server schema (``users``, ``pipelines``, ``pipeline_executions``, ``components``,
``component_executions``, ``files``, ``inspection_targets_master``, ``inspection_items_master``,
``tauri_sync_queue``) with its constraints and indexes, plus what the sync protocol needs:
``devices`` (credentials), ``change_log`` (the monotonic change sequence devices pull after),
``server_config``, and the tables that hold results applied from devices' queue rows.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from schema.formats.roles import role_check
from schema.formats.signatures import MEANINGS, SIGNED_RECORDS
from schema.formats.workflow import ITEM_STATES, SESSION_STATES
from schema.types import NOW, JSONType, UTCDateTime, defer_foreign_keys, utcnow


class ServerTable(SQLModel, registry=registry()):
    """Base of the server tables: their own metadata, apart from the device's."""


metadata = ServerTable.metadata

# BIGINT on PostgreSQL, INTEGER on SQLite (where only INTEGER PRIMARY KEY autoincrements).
BigInt = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _uuid_pk() -> Any:
    return Field(default_factory=uuid.uuid4, primary_key=True)


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


def _stamp() -> Any:
    return Field(default=None, sa_type=UTCDateTime)


def _by() -> Any:
    """Who created or last changed a row: a user of this server, or NULL when no user of its
    acted (the console, a device-only user, a record whose operation named nobody)."""
    return Field(default=None, foreign_key="users.id")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


# ---------------------------------------------------------------------------------------------
# People, devices, masters
# ---------------------------------------------------------------------------------------------


class User(ServerTable, table=True):
    __tablename__ = "users"
    __table_args__ = (sa.CheckConstraint(role_check(), name="ck_users_role"),)

    id: uuid.UUID = _uuid_pk()
    username: str = Field(max_length=150, sa_column_kwargs={"unique": True})
    email: str | None = Field(default=None, max_length=255, sa_column_kwargs={"unique": True})
    password_hash: str
    full_name: str | None = Field(default=None, max_length=255)
    role: str = Field(
        default="inspector", max_length=20, sa_column_kwargs={"server_default": "inspector"}
    )
    is_active: bool = Field(default=True, sa_column_kwargs={"server_default": sa.true()})
    created_at: datetime = _created()
    updated_at: datetime = _updated()
    deleted_at: datetime | None = _stamp()
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    created_by: uuid.UUID | None = _by()
    updated_by: uuid.UUID | None = _by()


class Device(ServerTable, table=True):
    """A registered tablet. Its token is shown once and stored only as a SHA-256 digest."""

    __tablename__ = "devices"
    __table_args__ = (
        sa.CheckConstraint(
            _in("device_type", ("mobile", "desktop", "tablet")), name="ck_devices_type"
        ),
        sa.CheckConstraint("last_applied_seq >= 0", name="ck_devices_last_applied_seq"),
    )

    id: uuid.UUID = _uuid_pk()
    name: str = Field(max_length=255, sa_column_kwargs={"unique": True})
    device_type: str = Field(
        default="tablet", max_length=50, sa_column_kwargs={"server_default": "tablet"}
    )
    token_hash: str = Field(max_length=64, sa_column_kwargs={"unique": True})
    app_version: str | None = Field(default=None, max_length=50)
    # Highest outbox sequence of this device that the server has stored.
    last_applied_seq: int = Field(
        default=0, sa_type=BigInt, sa_column_kwargs={"server_default": "0"}
    )
    created_at: datetime = _created()
    last_seen_at: datetime | None = _stamp()
    revoked_at: datetime | None = _stamp()
    # Bumped by every token rotation and revocation; an access token names the generation it
    # was issued under and is refused once the device has moved past it.
    token_generation: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class Pipeline(ServerTable, table=True):
    __tablename__ = "pipelines"
    __table_args__ = (
        sa.CheckConstraint("version > 0", name="ck_pipelines_version"),
        sa.Index("idx_pipelines_name", "name"),
    )

    id: uuid.UUID = _uuid_pk()
    name: str = Field(max_length=255)
    description: str | None = None
    definition: dict[str, Any] = Field(sa_type=JSONType)
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    created_at: datetime = _created()
    updated_at: datetime = _updated()
    created_by: uuid.UUID | None = Field(default=None, foreign_key="users.id")
    deleted_at: datetime | None = _stamp()
    updated_by: uuid.UUID | None = _by()


class InspectionTargetMaster(ServerTable, table=True):
    __tablename__ = "inspection_targets_master"
    __table_args__ = (sa.Index("idx_inspection_targets_product_code", "product_code"),)

    id: uuid.UUID = _uuid_pk()
    product_code: str = Field(max_length=100, sa_column_kwargs={"unique": True})
    product_name: str = Field(max_length=255)
    # The name in English, for the UI in English; null: the (Japanese) name serves both.
    product_name_en: str | None = Field(default=None, max_length=255)
    version: str = Field(max_length=50)
    description: str | None = None
    created_at: datetime = _created()
    updated_at: datetime = _updated()
    created_by: uuid.UUID | None = Field(default=None, foreign_key="users.id")
    deleted_at: datetime | None = _stamp()
    updated_by: uuid.UUID | None = _by()


class InspectionItemMaster(ServerTable, table=True):
    __tablename__ = "inspection_items_master"
    __table_args__ = (
        sa.UniqueConstraint("target_id", "item_code", name="uq_items_target_item_code"),
        sa.CheckConstraint("order_sequence > 0", name="ck_items_order_sequence"),
        sa.CheckConstraint(
            _in("inspection_type", ("VISUAL", "DIMENSION", "FUNCTION", "TEXT")),
            name="ck_items_inspection_type",
        ),
        sa.Index("idx_inspection_items_target_sequence", "target_id", "order_sequence"),
        sa.Index("idx_inspection_items_pipeline", "pipeline_id"),
    )

    id: uuid.UUID = _uuid_pk()
    target_id: uuid.UUID = Field(foreign_key="inspection_targets_master.id")
    item_code: str = Field(max_length=100)
    item_name: str = Field(max_length=255)
    item_name_en: str | None = Field(default=None, max_length=255)
    inspection_type: str = Field(max_length=50)
    ai_enabled: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    pipeline_id: uuid.UUID | None = Field(default=None, foreign_key="pipelines.id")
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
    deleted_at: datetime | None = _stamp()
    created_by: uuid.UUID | None = _by()
    updated_by: uuid.UUID | None = _by()


class File(ServerTable, table=True):
    """Metadata of a stored object (inspection image or model), keyed by its SHA-256."""

    __tablename__ = "files"
    __table_args__ = (
        sa.CheckConstraint("file_size IS NULL OR file_size >= 0", name="ck_files_size"),
        sa.CheckConstraint(_in("kind", ("image", "model", "other")), name="ck_files_kind"),
        sa.Index("idx_files_storage_path", "storage_path"),
        sa.Index("idx_files_created_user", "created_by", "created_at"),
    )

    id: uuid.UUID = _uuid_pk()
    original_name: str | None = Field(default=None, max_length=500)
    mime_type: str | None = Field(default=None, max_length=100)
    file_size: int | None = Field(default=None, sa_type=BigInt)
    storage_path: str = Field(max_length=1000)
    checksum: str | None = Field(default=None, max_length=64, sa_column_kwargs={"unique": True})
    metadata_: dict[str, Any] | None = Field(
        default=None, sa_type=JSONType, sa_column_kwargs={"name": "metadata"}
    )
    created_at: datetime = _created()
    created_by: uuid.UUID | None = Field(default=None, foreign_key="users.id")
    kind: str = Field(default="image", max_length=20, sa_column_kwargs={"server_default": "image"})
    device_id: uuid.UUID | None = Field(default=None, foreign_key="devices.id")


class ChangeLog(ServerTable, table=True):
    """The server's monotonic change sequence: devices pull 'what changed after seq N'.

    Ordered by the server alone, so tablets' clocks never decide what a device receives.
    """

    __tablename__ = "change_log"
    __table_args__ = (
        sa.CheckConstraint(_in("operation", ("UPSERT", "DELETE")), name="ck_change_log_operation"),
        sa.Index("idx_change_log_entity", "entity_type", "entity_id"),
    )

    seq: int | None = Field(default=None, sa_type=BigInt, primary_key=True)
    entity_type: str = Field(max_length=50)
    entity_id: str = Field(max_length=64)
    operation: str = Field(max_length=10)
    changed_at: datetime = _created()


class ServerConfig(ServerTable, table=True):
    __tablename__ = "server_config"

    key: str = Field(primary_key=True, max_length=100)
    value: str
    updated_at: datetime = _updated()


# ---------------------------------------------------------------------------------------------
# Pipelines as they ran (from devices' AI results)
# ---------------------------------------------------------------------------------------------


class PipelineExecution(ServerTable, table=True):
    __tablename__ = "pipeline_executions"
    __table_args__ = (
        sa.CheckConstraint(
            _in("status", ("pending", "running", "completed", "failed")),
            name="ck_pipeline_exec_status",
        ),
        sa.Index("idx_pipeline_executions_status_created", "status", "created_at"),
    )

    id: uuid.UUID = _uuid_pk()
    pipeline_id: uuid.UUID | None = Field(default=None, foreign_key="pipelines.id")
    status: str = Field(max_length=50)
    input_data: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    output_data: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    error_message: str | None = None
    started_at: datetime | None = _stamp()
    completed_at: datetime | None = _stamp()
    created_by: uuid.UUID | None = Field(default=None, foreign_key="users.id")
    created_at: datetime = _created()
    device_id: uuid.UUID | None = Field(default=None, foreign_key="devices.id")
    pipeline_version: int | None = None
    ai_result_id: uuid.UUID | None = Field(default=None, sa_column_kwargs={"unique": True})


class Component(ServerTable, table=True):
    __tablename__ = "components"
    __table_args__ = (sa.UniqueConstraint("name", "version", name="uq_components_name_version"),)

    id: uuid.UUID = _uuid_pk()
    name: str = Field(max_length=255)
    description: str | None = None
    docker_image: str = Field(max_length=500)
    version: str = Field(max_length=50)
    input_schema: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    output_schema: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    resource_requirements: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    created_at: datetime = _created()
    updated_at: datetime = _updated()


class ComponentExecution(ServerTable, table=True):
    __tablename__ = "component_executions"
    __table_args__ = (
        sa.CheckConstraint(
            "execution_time_ms IS NULL OR execution_time_ms >= 0", name="ck_component_exec_time"
        ),
        sa.Index("idx_component_executions_execution_time", "execution_id", "started_at"),
    )

    id: uuid.UUID = _uuid_pk()
    execution_id: uuid.UUID = Field(foreign_key="pipeline_executions.id")
    component_id: uuid.UUID | None = Field(default=None, foreign_key="components.id")
    status: str = Field(max_length=50)
    input_data: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    output_data: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    execution_time_ms: int | None = None
    resource_usage: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    started_at: datetime | None = _stamp()
    completed_at: datetime | None = _stamp()
    step_name: str | None = Field(default=None, max_length=255)


# ---------------------------------------------------------------------------------------------
# The sync queue
# ---------------------------------------------------------------------------------------------


class TauriSyncQueue(ServerTable, table=True):
    """Rows pushed by devices, deduplicated by operation id, applied by the queue processor."""

    __tablename__ = "tauri_sync_queue"
    __table_args__ = (
        sa.CheckConstraint(
            _in("operation", ("INSERT", "UPDATE", "DELETE")), name="ck_sync_queue_operation"
        ),
        sa.CheckConstraint(
            _in("device_type", ("mobile", "desktop", "tablet")), name="ck_sync_queue_device_type"
        ),
        sa.CheckConstraint("retry_count >= 0", name="ck_sync_queue_retry_count"),
        sa.CheckConstraint("seq > 0", name="ck_sync_queue_seq"),
        sa.CheckConstraint("apply_attempts >= 0", name="ck_sync_queue_apply_attempts"),
        sa.CheckConstraint(
            _in("refusal", ("conflict", "rejected", "dead_letter")), name="ck_sync_queue_refusal"
        ),
        sa.UniqueConstraint("device_id", "seq", name="uq_sync_queue_device_seq"),
        sa.Index(
            "idx_tauri_sync_queue_device_priority",
            "device_id",
            "device_type",
            "priority",
            "created_at",
        ),
        sa.Index(
            "idx_tauri_sync_queue_unprocessed",
            "processed_at",
            postgresql_where=sa.text("processed_at IS NULL"),
            sqlite_where=sa.text("processed_at IS NULL"),
        ),
        # A device pulls its refusals after a cursor in this per-device order.
        sa.Index("uq_sync_queue_device_refusal", "device_id", "refusal_seq", unique=True),
        # A device's applied watermark is its lowest sequence still pending: one probe here
        # rather than a walk over every row it ever sent.
        sa.Index(
            "idx_tauri_sync_queue_device_pending",
            "device_id",
            "seq",
            postgresql_where=sa.text("processed_at IS NULL"),
            sqlite_where=sa.text("processed_at IS NULL"),
        ),
        # A processor's claim: each device's pending rows in the order they are applied, so a
        # batch reads its rows off the index instead of sorting every pending row of a device.
        sa.Index(
            "idx_tauri_sync_queue_device_due",
            "device_id",
            sa.text("priority DESC"),
            "created_at",
            "id",
            postgresql_where=sa.text("processed_at IS NULL"),
            sqlite_where=sa.text("processed_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    device_id: str = Field(max_length=255)
    device_type: str = Field(max_length=50)
    app_version: str = Field(max_length=50)
    entity_type: str = Field(max_length=100)
    entity_id: uuid.UUID
    operation: str = Field(max_length=20)
    data: dict[str, Any] = Field(sa_type=JSONType)
    priority: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    retry_count: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    last_retry_at: datetime | None = _stamp()
    created_at: datetime = _created()
    processed_at: datetime | None = _stamp()
    op_id: uuid.UUID = Field(sa_column_kwargs={"unique": True})
    seq: int = Field(sa_type=BigInt)
    # When the device wrote the row, by its own clock: kept for display, never used for order.
    device_created_at: datetime | None = _stamp()
    last_error: str | None = None
    # The server's own count of attempts to apply the row that did not apply (``retry_count``
    # is the device's), and when the next may start (``sync.server.queue_policy``).
    apply_attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    next_attempt_at: datetime | None = _stamp()
    # Set when the row left the queue without being applied: conflict, rejected, dead_letter;
    # ``last_error`` then holds the reason, and ``refusal_seq`` orders the device's refusals.
    refusal: str | None = Field(default=None, max_length=20)
    refusal_seq: int | None = Field(default=None, sa_type=BigInt)


# ---------------------------------------------------------------------------------------------
# Results applied from devices
# ---------------------------------------------------------------------------------------------


class InspectionTarget(ServerTable, table=True):
    __tablename__ = "inspection_targets"

    id: uuid.UUID = Field(primary_key=True)
    device_id: uuid.UUID = Field(foreign_key="devices.id", index=True)
    product_id: str = Field(max_length=100)
    batch_id: str = Field(max_length=255)
    qr_code: str
    serial: str | None = Field(default=None, max_length=255)
    master_id: uuid.UUID | None = Field(default=None, foreign_key="inspection_targets_master.id")
    master_version: str | None = Field(default=None, max_length=50)
    created_at: datetime = _created()
    received_at: datetime = _created()
    created_by: uuid.UUID | None = _by()
    updated_by: uuid.UUID | None = _by()


class InspectionSession(ServerTable, table=True):
    __tablename__ = "inspection_sessions"
    __table_args__ = (
        # The move table's states (schema.formats.workflow), as on the tablet.
        sa.CheckConstraint(_in("status", SESSION_STATES), name="ck_sessions_status"),
        sa.Index("idx_inspection_sessions_status_completed", "status", "completed_at"),
        sa.Index("idx_inspection_sessions_device_started", "device_id", "started_at"),
    )

    id: uuid.UUID = Field(primary_key=True)
    device_id: uuid.UUID = Field(foreign_key="devices.id")
    target_id: uuid.UUID = Field(foreign_key="inspection_targets.id")
    user_id: uuid.UUID | None = Field(default=None, foreign_key="users.id")
    username: str | None = Field(default=None, max_length=150)
    product_code: str | None = Field(default=None, max_length=100)
    status: str = Field(max_length=50)
    result: str | None = Field(default=None, max_length=20)
    started_at: datetime | None = _stamp()
    completed_at: datetime | None = _stamp()
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    received_at: datetime = _created()
    updated_at: datetime = _updated()
    created_by: uuid.UUID | None = _by()
    updated_by: uuid.UUID | None = _by()


class InspectionSessionItem(ServerTable, table=True):
    __tablename__ = "inspection_session_items"
    __table_args__ = (
        sa.CheckConstraint(_in("status", ITEM_STATES), name="ck_session_items_status"),
    )

    id: uuid.UUID = Field(primary_key=True)
    session_id: uuid.UUID = Field(foreign_key="inspection_sessions.id", index=True)
    item_id: uuid.UUID | None = Field(default=None, foreign_key="inspection_items_master.id")
    item_code: str = Field(max_length=100)
    order_sequence: int
    required: bool = True
    status: str = Field(max_length=50)
    result: str | None = Field(default=None, max_length=20)
    attempts: int = 0
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    updated_at: datetime = _updated()
    created_by: uuid.UUID | None = _by()
    updated_by: uuid.UUID | None = _by()


class InspectionImage(ServerTable, table=True):
    __tablename__ = "inspection_images"

    id: uuid.UUID = Field(primary_key=True)
    session_id: uuid.UUID = Field(foreign_key="inspection_sessions.id", index=True)
    item_id: uuid.UUID | None = Field(default=None, foreign_key="inspection_items_master.id")
    sha256: str = Field(max_length=64, index=True)
    image_type: str = Field(default="capture", max_length=50)
    file_size: int | None = Field(default=None, sa_type=BigInt)
    mime_type: str | None = Field(default=None, max_length=100)
    width: int | None = None
    height: int | None = None
    created_at: datetime | None = _stamp()
    received_at: datetime = _created()
    created_by: uuid.UUID | None = _by()
    updated_by: uuid.UUID | None = _by()


class AIInspectionResult(ServerTable, table=True):
    __tablename__ = "ai_inspection_results"
    __table_args__ = (sa.Index("idx_ai_results_confidence_time", "confidence", "created_at"),)

    id: uuid.UUID = Field(primary_key=True)
    # A result is never edited in place: a correction is a new row that names the one it
    # corrects (unique: each version is corrected at most once, so the versions are one line).
    supersedes: uuid.UUID | None = Field(
        default=None, foreign_key="ai_inspection_results.id", sa_column_kwargs={"unique": True}
    )
    created_by: uuid.UUID | None = _by()
    updated_by: uuid.UUID | None = _by()
    session_id: uuid.UUID = Field(foreign_key="inspection_sessions.id", index=True)
    item_id: uuid.UUID | None = Field(default=None, foreign_key="inspection_items_master.id")
    image_id: uuid.UUID | None = Field(default=None, foreign_key="inspection_images.id")
    pipeline_id: uuid.UUID | None = Field(default=None, foreign_key="pipelines.id")
    pipeline_version: str | None = Field(default=None, max_length=50)
    model_sha256: str | None = Field(default=None, max_length=64)
    overall_result: str = Field(max_length=20)
    # The model's own confidence, or None when it gave none.
    confidence: float | None = None
    processing_time: float
    detailed_results: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    measurements: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    timings: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    created_at: datetime | None = _stamp()
    received_at: datetime = _created()
    # Provenance as the tablet's job runner recorded it (see the device table).
    model_hashes: list[str] | None = Field(default=None, sa_type=JSONType)
    image_sha256: str | None = Field(default=None, max_length=64)
    engine_version: str | None = Field(default=None, max_length=100)
    execution_provider: str | None = Field(default=None, max_length=100)
    step_timings: list[dict[str, Any]] | None = Field(default=None, sa_type=JSONType)
    # Whether every model hash names a model file this server published, checked when the
    # result is applied; ``unknown_models`` lists those that do not (None: nothing to check).
    models_known: bool | None = None
    unknown_models: list[str] | None = Field(default=None, sa_type=JSONType)


class HumanVerificationResult(ServerTable, table=True):
    __tablename__ = "human_verification_results"
    __table_args__ = (sa.Index("idx_human_results_final_date", "final_result", "created_at"),)

    id: uuid.UUID = Field(primary_key=True)
    supersedes: uuid.UUID | None = Field(
        default=None, foreign_key="human_verification_results.id",
        sa_column_kwargs={"unique": True},
    )
    created_by: uuid.UUID | None = _by()
    updated_by: uuid.UUID | None = _by()
    session_id: uuid.UUID = Field(foreign_key="inspection_sessions.id", index=True)
    item_id: uuid.UUID | None = Field(default=None, foreign_key="inspection_items_master.id")
    ai_result_id: uuid.UUID | None = Field(default=None, foreign_key="ai_inspection_results.id")
    user_id: uuid.UUID | None = Field(default=None, foreign_key="users.id")
    username: str | None = Field(default=None, max_length=150)
    final_result: str = Field(max_length=20)
    notes: str | None = None
    defect_types: list[str] | None = Field(default=None, sa_type=JSONType)
    severity: str | None = Field(default=None, max_length=20)
    overrode_ai: bool = False
    verification_time: float
    created_at: datetime | None = _stamp()
    received_at: datetime = _created()


# ---------------------------------------------------------------------------------------------
# The audit trail (schema.formats.audit): every device's chain as it arrived, and the server's
# ---------------------------------------------------------------------------------------------

# The chain of the server's own actions (masters, users, devices), beside the devices' chains,
# which are named by the device's id.
SERVER_CHAIN = "server"


class AuditEntry(ServerTable, table=True):
    """One entry of a chain, stored once per (chain, seq) as it arrived: ``canonical`` holds the
    RFC 8785 bytes that were hashed (every field but ``hash``), so verifying recomputes the hash
    over what arrived. The other columns are read from those bytes for searching; the bytes are
    the record."""

    __tablename__ = "audit_log"
    __table_args__ = (
        sa.UniqueConstraint("chain", "seq", name="uq_audit_log_chain_seq"),
        sa.CheckConstraint("seq > 0", name="ck_audit_log_seq"),
        sa.Index("idx_audit_log_entity", "entity", "entity_id"),
    )

    id: int | None = Field(default=None, sa_type=BigInt, primary_key=True)
    chain: str = Field(max_length=64)
    device_id: uuid.UUID | None = Field(default=None, foreign_key="devices.id")
    seq: int = Field(sa_type=BigInt)
    entry_id: str | None = Field(default=None, max_length=64)
    at: str | None = Field(default=None, max_length=40)
    username: str | None = Field(default=None, max_length=150)
    entity: str | None = Field(default=None, max_length=100)
    entity_id: str | None = Field(default=None, max_length=64)
    action: str | None = Field(default=None, max_length=50)
    row_digest: str | None = Field(default=None, max_length=64)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)
    canonical: bytes = Field(sa_type=sa.LargeBinary)
    received_at: datetime = _created()


class AuditChain(ServerTable, table=True):
    """The verdict on one chain, kept as its entries arrive: verified through ``last_seq``
    (whose hash is ``last_hash``), or broken at ``broken_seq`` for ``broken_reason``."""

    __tablename__ = "audit_chains"
    __table_args__ = (
        sa.CheckConstraint("status IN ('ok', 'broken')", name="ck_audit_chains_status"),
        sa.CheckConstraint("last_seq >= 0", name="ck_audit_chains_last_seq"),
    )

    chain: str = Field(primary_key=True, max_length=64)
    device_id: uuid.UUID | None = Field(default=None, foreign_key="devices.id")
    last_seq: int = Field(default=0, sa_type=BigInt, sa_column_kwargs={"server_default": "0"})
    last_hash: str = Field(default="0" * 64, max_length=64)
    status: str = Field(default="ok", max_length=10, sa_column_kwargs={"server_default": "ok"})
    broken_seq: int | None = Field(default=None, sa_type=BigInt)
    broken_reason: str | None = None
    updated_at: datetime = _updated()


class Signature(ServerTable, table=True):
    """A tablet user's electronic signature, as the tablet recorded it (``signatures`` on the
    device): the signer then, the meaning, the record signed and its digest there. The server
    keeps it as evidence; it cannot check the password, which was entered on the tablet."""

    __tablename__ = "signatures"
    __table_args__ = (
        sa.CheckConstraint(_in("meaning", MEANINGS), name="ck_signatures_meaning"),
        sa.CheckConstraint(_in("record_type", SIGNED_RECORDS), name="ck_signatures_record_type"),
    )

    id: uuid.UUID = Field(primary_key=True)
    session_id: uuid.UUID = Field(foreign_key="inspection_sessions.id", index=True)
    user_id: uuid.UUID | None = Field(default=None, foreign_key="users.id")
    username: str | None = Field(default=None, max_length=150)
    full_name: str | None = Field(default=None, max_length=255)
    role: str = Field(max_length=50)
    meaning: str = Field(max_length=20)
    record_type: str = Field(max_length=50)
    record_id: uuid.UUID
    record_digest: str = Field(max_length=64)
    signed_at: datetime | None = _stamp()
    received_at: datetime = _created()


defer_foreign_keys(metadata)
