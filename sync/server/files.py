"""Receiving and serving file bodies (inspection images, model files), keyed by SHA-256.

An upload is streamed to a staging file while it is hashed — a 20 MB image is never held in
memory — and reaches the store only if it hashes to the name it was sent under. A body cut off
mid-way (the tablet lost Wi-Fi, a proxy reset) leaves nothing behind: its staging file is removed
and the device sends the whole body again. Storing a known hash again is a no-op.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select

from schema import server as s
from schema.db import Database
from sync.errors import HashMismatch, InvalidRequest, NotFound, PayloadTooLarge
from sync.protocol import FileStored, is_sha256
from sync.server import statements
from sync.server.storage import Storage

FILES: sa.Table = s.File.__table__  # type: ignore[attr-defined]


def check_hash_name(sha256: str) -> str:
    value = sha256.lower()
    if not is_sha256(value):
        raise InvalidRequest(f"{sha256!r} is not a SHA-256 hex digest")
    return value


def clear_staging(staging: Path) -> None:
    """Remove partial uploads a killed server left behind."""
    if not staging.is_dir():
        return
    for leftover in staging.glob("*.part"):
        with contextlib.suppress(OSError):
            leftover.unlink()


async def stage_upload(
    chunks: AsyncIterator[bytes], sha256: str, staging: Path, max_bytes: int
) -> tuple[Path, int]:
    """Stream a body to a staging file, checking its size and hash; returns (path, size)."""
    staging.mkdir(parents=True, exist_ok=True)
    path = staging / f"{sha256}.{uuid.uuid4().hex}.part"
    digest = hashlib.sha256()
    size = 0
    ok = False
    try:
        with path.open("wb") as fh:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge(
                        f"file is over the limit of {max_bytes} bytes", max_bytes=max_bytes
                    )
                digest.update(chunk)
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        if size == 0:
            raise InvalidRequest("empty body")
        actual = digest.hexdigest()
        if actual != sha256:
            raise HashMismatch(
                f"body hashes to {actual}, not {sha256}", expected=sha256, actual=actual
            )
        ok = True
        return path, size
    finally:
        if not ok:
            with contextlib.suppress(OSError):
                path.unlink()


def known_hashes(db: Database, hashes: list[str]) -> set[str]:
    if not hashes:
        return set()
    with db.read() as session:
        rows = session.exec(select(s.File.checksum).where(col(s.File.checksum).in_(hashes)))
        return {row for row in rows if row}


def store_image(
    db: Database,
    storage: Storage,
    sha256: str,
    staged: Path,
    size: int,
    *,
    device_id: uuid.UUID,
    mime_type: str | None,
    name: str | None,
) -> FileStored:
    """Move a verified body into the store and record it; the second copy of a hash is a no-op."""
    try:
        if sha256 in known_hashes(db, [sha256]) and storage.exists(sha256):
            return FileStored(sha256=sha256, size=size, created=False)
        storage_path = storage.put_file(sha256, staged)
    finally:
        with contextlib.suppress(OSError):
            staged.unlink()
    with db.atomic() as session:
        dialect = session.get_bind().dialect.name
        values: dict[str, Any] = {
            "id": uuid.uuid4(), "original_name": (name or "")[:500] or None,
            "mime_type": (mime_type or "")[:100] or None, "file_size": size,
            "storage_path": storage_path, "checksum": sha256, "kind": "image",
            "device_id": device_id, "metadata": {},
        }
        result = session.execute(statements.insert_ignore(dialect, FILES), values)
        created = result.first() is not None
    return FileStored(sha256=sha256, size=size, created=created)


def readable_file(db: Database, sha256: str, device_id: uuid.UUID) -> s.File:
    """A model, or an image this device uploaded itself; no device reads another's images."""
    with db.read() as session:
        row = session.exec(select(s.File).where(s.File.checksum == sha256)).first()
    if row is None or (row.kind != "model" and row.device_id != device_id):
        raise NotFound(f"no file {sha256}")
    return row
