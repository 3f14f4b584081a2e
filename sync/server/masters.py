"""Masters administration: targets, items and their criteria, pipelines, users, model files,
and devices. Used by the CLI and the admin HTTP API alike.

Each change writes its ``change_log`` entry in the caller's transaction (``record_change``), so
a master and the sequence number devices will pull it by commit together; and its entry in the
server's audit chain (``sync.server.audit.record``: who, what, the fields changed, the row's
digest), with ``created_by`` / ``updated_by`` set to whoever the unit of work acts as
(``audit.act_as``: the admin of the admin API; by default the console). Deletes are soft
(``deleted_at``): results already on the server refer to the masters they were made against.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import tempfile
import uuid
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from schema import server as s
from schema.errors import CriteriaInvalid, DefinitionInvalid
from schema.formats.criteria import parse_criteria
from schema.formats.defects import DefectTypesInvalid, parse_defect_types
from schema.formats.pipeline import validate_definition
from schema.formats.roles import ROLES
from schema.types import utcnow
from sync.bounds import (
    INT32_MAX,
    MAX_DEFINITION_BYTES,
    MAX_PASSWORD_CHARS,
    control_problem,
    json_problem,
    row_problem,
)
from sync.errors import Conflict, DocumentInvalid, InvalidRequest, NotFound
from sync.server import audit
from sync.server.auth import hash_token, new_device_token
from sync.server.changes import record_change
from sync.server.storage import Storage

INSPECTION_TYPES = ("VISUAL", "DIMENSION", "FUNCTION", "TEXT")


def _flush(session: Session, what: str) -> None:
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"{what} conflicts with an existing record: {exc.orig}") from exc


def _fits(model: type[Any], **values: Any) -> None:
    """Refuse a value its column cannot hold, before the database does (the CLI's edge; the
    admin API's bodies are bounded the same way, so there it is a second look)."""
    problem = row_problem(model.__table__, values)
    if problem:
        raise InvalidRequest(problem)


# The longest name a lookup can match (product codes, usernames, device names, UUIDs).
MAX_REF_CHARS = 255


def _ref(ref: str, what: str) -> str:
    problem = control_problem(ref)
    if problem or len(ref) > MAX_REF_CHARS:
        raise InvalidRequest(f"{what} reference {ref[:40]!r}: "
                             f"{problem or f'over {MAX_REF_CHARS} characters'}")
    return ref


def _uuid(value: str | uuid.UUID, what: str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise InvalidRequest(f"{what} {value!r} is not a UUID") from exc


# --- targets ---------------------------------------------------------------------------------


def find_target(session: Session, ref: str) -> s.InspectionTargetMaster:
    """A target by product code or id."""
    _ref(ref, "target")
    row = session.exec(
        select(s.InspectionTargetMaster).where(s.InspectionTargetMaster.product_code == ref)
    ).first()
    if row is None:
        try:
            row = session.get(s.InspectionTargetMaster, uuid.UUID(ref))
        except ValueError:
            row = None
    if row is None:
        raise NotFound(f"no inspection target {ref!r}")
    return row


def add_target(
    session: Session,
    product_code: str,
    product_name: str,
    version: str = "1",
    description: str | None = None,
    product_name_en: str | None = None,
) -> s.InspectionTargetMaster:
    _fits(s.InspectionTargetMaster, product_code=product_code, product_name=product_name,
          product_name_en=product_name_en, version=version, description=description)
    row = session.exec(
        select(s.InspectionTargetMaster).where(
            s.InspectionTargetMaster.product_code == product_code
        )
    ).first()
    if row is not None and row.deleted_at is None:
        raise Conflict(f"target {product_code} already exists")
    if row is None:
        row = s.InspectionTargetMaster(
            product_code=product_code, product_name=product_name,
            product_name_en=product_name_en, version=version, description=description,
        )
    else:
        # Re-adding a deleted product revives its row: the code stays unique, history intact.
        row.product_name, row.version, row.description = product_name, version, description
        row.product_name_en = product_name_en
        row.deleted_at = None
        row.updated_at = utcnow()
    audit.stamp(session, row, created=True)
    session.add(row)
    _flush(session, f"target {product_code}")
    record_change(session, "target", str(row.id), "UPSERT")
    audit.record(session, "target", str(row.id), "insert")
    return row


def update_target(session: Session, ref: str, **fields: Any) -> s.InspectionTargetMaster:
    row = find_target(session, ref)
    before = audit.snapshot(session, "target", str(row.id))
    allowed = {"product_code", "product_name", "product_name_en", "version", "description"}
    _fits(s.InspectionTargetMaster, **fields)
    _apply_fields(row, fields, allowed)
    row.updated_at = utcnow()
    audit.stamp(session, row, created=False)
    session.add(row)
    _flush(session, f"target {row.product_code}")
    record_change(session, "target", str(row.id), "UPSERT")
    audit.record(session, "target", str(row.id), "update", before=before)
    return row


def delete_target(session: Session, ref: str) -> None:
    row = find_target(session, ref)
    row.deleted_at = utcnow()
    audit.stamp(session, row, created=False)
    session.add(row)
    record_change(session, "target", str(row.id), "DELETE")
    audit.record(session, "target", str(row.id), "delete")
    for item in session.exec(
        select(s.InspectionItemMaster).where(
            s.InspectionItemMaster.target_id == row.id,
            col(s.InspectionItemMaster.deleted_at).is_(None),
        )
    ):
        item.deleted_at = utcnow()
        audit.stamp(session, item, created=False)
        session.add(item)
        record_change(session, "item", str(item.id), "DELETE")
        audit.record(session, "item", str(item.id), "delete")


def _apply_fields(row: Any, fields: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(fields) - allowed
    if unknown:
        raise InvalidRequest(f"cannot set {', '.join(sorted(unknown))}")
    for key, value in fields.items():
        if value is not None:
            setattr(row, key, value)


# --- items and criteria ----------------------------------------------------------------------


def validate_criteria(criteria: dict[str, Any]) -> dict[str, Any]:
    """Refuse criteria the tablet could not judge by, with the tablet's own parser: a tablet
    that pulled them would otherwise fail every judgment of the item."""
    try:
        parse_criteria(criteria)
    except CriteriaInvalid as exc:
        raise DocumentInvalid(f"criteria: {exc.message}", code=exc.code, field="criteria",
                              **exc.detail) from exc
    return criteria


def validate_defect_types(value: object) -> list[str] | None:
    """Refuse defect types a tablet has no words for (``schema.formats.defects``)."""
    try:
        return parse_defect_types(value)
    except DefectTypesInvalid as exc:
        raise DocumentInvalid(f"defect_types: {exc.message}", code="defect_types_invalid",
                              field="defect_types") from exc


def find_item(session: Session, target_ref: str | None, ref: str) -> s.InspectionItemMaster:
    _ref(ref, "item")
    row: s.InspectionItemMaster | None = None
    if target_ref is not None:
        target = find_target(session, target_ref)
        row = session.exec(
            select(s.InspectionItemMaster).where(
                s.InspectionItemMaster.target_id == target.id,
                s.InspectionItemMaster.item_code == ref,
            )
        ).first()
    if row is None:
        try:
            row = session.get(s.InspectionItemMaster, uuid.UUID(ref))
        except ValueError:
            row = None
    if row is None:
        raise NotFound(f"no inspection item {ref!r}")
    return row


def add_item(
    session: Session,
    target_ref: str,
    *,
    item_code: str,
    item_name: str,
    inspection_type: str,
    criteria: dict[str, Any],
    order_sequence: int,
    required: bool = True,
    ai_enabled: bool = False,
    pipeline_id: str | None = None,
    auto_analyse: bool = True,
    defect_types: list[str] | None = None,
    item_name_en: str | None = None,
) -> s.InspectionItemMaster:
    _fits(s.InspectionItemMaster, item_code=item_code, item_name=item_name,
          item_name_en=item_name_en,
          inspection_type=inspection_type, criteria=criteria, order_sequence=order_sequence)
    target = find_target(session, target_ref)
    if inspection_type not in INSPECTION_TYPES:
        raise InvalidRequest(f"inspection_type must be one of {', '.join(INSPECTION_TYPES)}")
    pipeline = find_pipeline(session, pipeline_id).id if pipeline_id else None
    fields: dict[str, Any] = {
        "item_name": item_name, "item_name_en": item_name_en, "inspection_type": inspection_type,
        "criteria": validate_criteria(criteria), "order_sequence": order_sequence,
        "required": required, "ai_enabled": ai_enabled and pipeline is not None,
        "pipeline_id": pipeline, "auto_analyse": auto_analyse,
        "defect_types": validate_defect_types(defect_types),
    }
    row = session.exec(
        select(s.InspectionItemMaster).where(
            s.InspectionItemMaster.target_id == target.id,
            s.InspectionItemMaster.item_code == item_code,
        )
    ).first()
    if row is not None and row.deleted_at is None:
        raise Conflict(f"item {item_code} of {target.product_code} already exists")
    if row is None:
        row = s.InspectionItemMaster(target_id=target.id, item_code=item_code, **fields)
    else:
        for key, value in fields.items():
            setattr(row, key, value)
        row.deleted_at = None
        row.updated_at = utcnow()
    audit.stamp(session, row, created=True)
    session.add(row)
    _flush(session, f"item {item_code} of {target.product_code}")
    record_change(session, "item", str(row.id), "UPSERT")
    audit.record(session, "item", str(row.id), "insert")
    return row


def update_item(
    session: Session, target_ref: str | None, ref: str, **fields: Any
) -> s.InspectionItemMaster:
    _fits(s.InspectionItemMaster, **fields)
    row = find_item(session, target_ref, ref)
    before = audit.snapshot(session, "item", str(row.id))
    if "criteria" in fields and fields["criteria"] is not None:
        validate_criteria(fields["criteria"])
    if fields.get("defect_types") is not None:
        fields["defect_types"] = validate_defect_types(fields["defect_types"])
    if fields.get("inspection_type") not in (None, *INSPECTION_TYPES):
        raise InvalidRequest(f"inspection_type must be one of {', '.join(INSPECTION_TYPES)}")
    if fields.get("pipeline_id") is not None:
        fields["pipeline_id"] = find_pipeline(session, str(fields["pipeline_id"])).id
    allowed = {"item_code", "item_name", "item_name_en", "inspection_type", "criteria",
               "order_sequence",
               "required", "ai_enabled", "pipeline_id", "auto_analyse", "defect_types"}
    _apply_fields(row, fields, allowed)
    row.updated_at = utcnow()
    audit.stamp(session, row, created=False)
    session.add(row)
    _flush(session, f"item {row.item_code}")
    record_change(session, "item", str(row.id), "UPSERT")
    audit.record(session, "item", str(row.id), "update", before=before)
    return row


def delete_item(session: Session, target_ref: str | None, ref: str) -> None:
    row = find_item(session, target_ref, ref)
    row.deleted_at = utcnow()
    audit.stamp(session, row, created=False)
    session.add(row)
    record_change(session, "item", str(row.id), "DELETE")
    audit.record(session, "item", str(row.id), "delete")


# --- pipelines -------------------------------------------------------------------------------


def find_pipeline(session: Session, ref: str) -> s.Pipeline:
    """A pipeline by UUID, by the text id of its definition, or by name (newest)."""
    _ref(ref, "pipeline")
    row = session.get(s.Pipeline, pipeline_uuid({"id": ref}))
    if row is None:
        row = session.exec(
            select(s.Pipeline)
            .where(s.Pipeline.name == ref, col(s.Pipeline.deleted_at).is_(None))
            .order_by(col(s.Pipeline.version).desc())
        ).first()
    if row is None:
        raise NotFound(f"no pipeline {ref!r}")
    return row


# Pipelines named by a text id in their definition ("brk100-v-scratch") get a stable UUID from it,
# so every server seeded from the same files gives items the same pipeline ids.
PIPELINE_NAMESPACE = uuid.UUID("6b656e73-612d-7069-7065-6c696e650000")


def pipeline_uuid(definition: dict[str, Any]) -> uuid.UUID | None:
    text = definition.get("id")
    if not isinstance(text, str) or not text:
        return None
    try:
        return uuid.UUID(text)
    except ValueError:
        return uuid.uuid5(PIPELINE_NAMESPACE, text)


def put_pipeline(
    session: Session, definition: dict[str, Any], description: str | None = None
) -> s.Pipeline:
    """Create a pipeline, or publish a new version of the one with the same name.

    The definition is checked by the code the tablet loads it with (every check that needs no
    model file): one the tablets would refuse is a 422 naming the step and field, not stored.
    """
    try:
        checked = validate_definition(definition)
    except DefinitionInvalid as exc:
        raise DocumentInvalid(f"pipeline definition: {exc.message}", code=exc.code,
                              **exc.detail) from exc
    name = checked.definition.name
    if checked.definition.version > INT32_MAX:
        raise InvalidRequest(f"a pipeline definition's version must be an integer "
                             f"from 1 to {INT32_MAX}")
    problem = json_problem(definition, max_bytes=MAX_DEFINITION_BYTES)
    if problem:
        raise InvalidRequest(f"pipeline definition: {problem}")
    _fits(s.Pipeline, name=name, description=description)
    key = pipeline_uuid(definition)
    row = session.get(s.Pipeline, key) if key else None
    if row is None:
        row = session.exec(
            select(s.Pipeline).where(
                s.Pipeline.name == name, col(s.Pipeline.deleted_at).is_(None)
            )
        ).first()
    before = None if row is None else audit.snapshot(session, "pipeline", str(row.id))
    if row is None:
        version = int(definition.get("version") or 1)
        row = s.Pipeline(name=name, description=description, definition=definition,
                         version=max(1, version))
        if key:
            row.id = key
    elif row.deleted_at is not None:
        row.deleted_at = None
        row.definition = definition
        row.version += 1
        row.updated_at = utcnow()
    else:
        if row.definition == definition and description in (None, row.description):
            return row
        row.version = max(row.version + 1, int(definition.get("version") or 0))
        row.definition = definition
        if description is not None:
            row.description = description
        row.updated_at = utcnow()
    audit.stamp(session, row, created=before is None)
    session.add(row)
    _flush(session, f"pipeline {name}")
    record_change(session, "pipeline", str(row.id), "UPSERT")
    audit.record(session, "pipeline", str(row.id), "insert" if before is None else "update",
                 before=before)
    return row


def delete_pipeline(session: Session, ref: str) -> None:
    row = find_pipeline(session, ref)
    row.deleted_at = utcnow()
    audit.stamp(session, row, created=False)
    session.add(row)
    record_change(session, "pipeline", str(row.id), "DELETE")
    audit.record(session, "pipeline", str(row.id), "delete")


# --- users -----------------------------------------------------------------------------------

_hasher = PasswordHasher()


def find_user(session: Session, ref: str) -> s.User:
    _ref(ref, "user")
    row = session.exec(select(s.User).where(s.User.username == ref)).first()
    if row is None:
        try:
            row = session.get(s.User, uuid.UUID(ref))
        except ValueError:
            row = None
    if row is None:
        raise NotFound(f"no user {ref!r}")
    return row


def add_user(
    session: Session,
    username: str,
    password: str,
    *,
    role: str = "inspector",
    full_name: str | None = None,
    email: str | None = None,
) -> s.User:
    if role not in ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(ROLES)}")
    _check_password(password)
    _fits(s.User, username=username, role=role, full_name=full_name, email=email)
    row = s.User(username=username, password_hash=_hasher.hash(password), role=role,
                 full_name=full_name, email=email)
    audit.stamp(session, row, created=True)
    session.add(row)
    _flush(session, f"user {username}")
    record_change(session, "user", str(row.id), "UPSERT")
    audit.record(session, "user", str(row.id), "insert")
    return row


def update_user(
    session: Session,
    ref: str,
    *,
    password: str | None = None,
    role: str | None = None,
    full_name: str | None = None,
    email: str | None = None,
    is_active: bool | None = None,
) -> s.User:
    row = find_user(session, ref)
    before = audit.snapshot(session, "user", str(row.id))
    if role is not None and role not in ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(ROLES)}")
    _fits(s.User, role=role, full_name=full_name, email=email)
    if password is not None:
        _check_password(password)
        row.password_hash = _hasher.hash(password)
    _apply_fields(row, {"role": role, "full_name": full_name, "email": email,
                        "is_active": is_active}, {"role", "full_name", "email", "is_active"})
    row.version += 1
    row.updated_at = utcnow()
    audit.stamp(session, row, created=False)
    session.add(row)
    _flush(session, f"user {row.username}")
    record_change(session, "user", str(row.id), "UPSERT")
    audit.record(session, "user", str(row.id), "update", before=before)
    return row


def delete_user(session: Session, ref: str) -> None:
    row = find_user(session, ref)
    row.deleted_at = utcnow()
    row.is_active = False
    audit.stamp(session, row, created=False)
    session.add(row)
    record_change(session, "user", str(row.id), "DELETE")
    audit.record(session, "user", str(row.id), "delete")


def _check_password(password: str) -> None:
    if len(password) < 4:
        raise InvalidRequest("a password needs at least 4 characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise InvalidRequest(f"a password has at most {MAX_PASSWORD_CHARS} characters")


def verify_password(user: s.User, password: str) -> bool:
    return password_matches(user.password_hash, password)


def password_matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except Exception:  # argon2 raises several types for a mismatch or a foreign hash
        return False


@functools.cache
def dummy_password_hash() -> str:
    """A hash no password is known for: what an unknown user's password is checked against."""
    return _hasher.hash(secrets.token_urlsafe(16))


# --- model files -----------------------------------------------------------------------------


def add_model(
    session: Session, storage: Storage, path: Path, name: str | None = None
) -> s.File:
    """Store a model file under its hash (through a staging copy) and publish it."""
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(delete=False, prefix="kensa-model-") as staged:
        with path.open("rb") as src:
            while chunk := src.read(1 << 20):
                digest.update(chunk)
                staged.write(chunk)
        staged_path = Path(staged.name)
    sha = digest.hexdigest()
    try:
        return publish_model(session, storage, sha, staged_path, name or path.name)
    finally:
        staged_path.unlink(missing_ok=True)


def publish_model(
    session: Session, storage: Storage, sha: str, staged: Path, name: str
) -> s.File:
    _fits(s.File, original_name=name)
    size = staged.stat().st_size
    if size == 0:
        raise InvalidRequest("a model file cannot be empty")
    row = session.exec(select(s.File).where(s.File.checksum == sha)).first()
    if row is not None and row.kind != "model":
        raise Conflict(f"{sha} is already stored as a {row.kind}")
    if not storage.exists(sha):
        storage_path = storage.put_file(sha, staged)
    else:
        storage_path = row.storage_path if row else sha
    before = None if row is None else audit.snapshot(session, "model", sha)
    if row is None:
        row = s.File(original_name=name, mime_type="application/octet-stream", file_size=size,
                     storage_path=storage_path, checksum=sha, kind="model", metadata_={})
        audit.stamp(session, row, created=True)
    else:
        row.original_name = name
        row.metadata_ = {}
    session.add(row)
    _flush(session, f"model {sha}")
    record_change(session, "model", sha, "UPSERT")
    audit.record(session, "model", sha, "insert" if before is None else "update", before=before)
    return row


def delete_model(session: Session, sha: str) -> None:
    row = session.exec(select(s.File).where(s.File.checksum == sha, s.File.kind == "model")).first()
    if row is None:
        raise NotFound(f"no model {sha}")
    row.metadata_ = {"deleted_at": utcnow().isoformat()}
    session.add(row)
    record_change(session, "model", sha, "DELETE")
    audit.record(session, "model", sha, "delete")


# --- devices ---------------------------------------------------------------------------------


def add_device(session: Session, name: str, device_type: str = "tablet") -> tuple[s.Device, str]:
    """Register a device; returns it with its token, which is shown once and stored hashed."""
    if device_type not in ("mobile", "desktop", "tablet"):
        raise InvalidRequest("device type must be mobile, desktop or tablet")
    _fits(s.Device, name=name)
    token = new_device_token()
    device = s.Device(name=name, device_type=device_type, token_hash=hash_token(token))
    session.add(device)
    _flush(session, f"device {name}")
    audit.record(session, "device", str(device.id), "insert")
    return device, token


def find_device(session: Session, name: str) -> s.Device:
    _ref(name, "device")
    device = session.exec(select(s.Device).where(s.Device.name == name)).first()
    if device is None:
        raise NotFound(f"no device {name!r}")
    return device


def rotate_device_token(session: Session, name: str) -> str:
    """A new device token; the old one, and every access token issued for it, stop working."""
    device = find_device(session, name)
    token = new_device_token()
    device.token_hash = hash_token(token)
    device.revoked_at = None
    # Access tokens carry the generation they were issued under; this ends the old ones.
    device.token_generation += 1
    session.add(device)
    audit.record(session, "device", str(device.id), "token")
    return token


def revoke_device(session: Session, name: str) -> None:
    device = find_device(session, name)
    device.revoked_at = utcnow()
    device.token_generation += 1
    session.add(device)
    audit.record(session, "device", str(device.id), "revoke")

