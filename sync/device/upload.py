"""Uploading inspection images, separately from the records, keyed by SHA-256.

Images not yet confirmed (``uploaded_at IS NULL``) are checked against the server in bulk first:
hashes it already holds are marked uploaded without sending a byte. The rest are streamed from
``<data_dir>/<file_path>`` in chunks, decrypted as they go (``sidecar.photo_crypto``: each 64 KiB
is authenticated before it is sent, and no photo is held whole); the server receives the photo
itself and checks its hash before it keeps anything. An upload cut off half-way leaves nothing on
either side and simply starts again from the first byte. ``uploaded_at`` is set only once the
server has confirmed the body. A photo that does not open (another tablet's key, damaged) is
reported like a missing one and not sent.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session

from schema.db import Database
from schema.types import utcnow
from sidecar import photo_crypto
from sidecar.errors import PhotoUnreadable
from sidecar.keys import DataKey
from sync.device.client import SyncClient
from sync.device.outbox_store import sqlite_time

log = logging.getLogger(__name__)

_PENDING = sa.text(
    "SELECT sha256, min(file_path), max(mime_type), max(coalesce(file_size, 0)) "
    "FROM inspection_images WHERE uploaded_at IS NULL "
    "GROUP BY sha256 ORDER BY min(created_at) LIMIT :limit"
)


@dataclass
class UploadResult:
    uploaded: int = 0
    skipped_known: int = 0
    bytes: int = 0
    missing_files: list[str] = field(default_factory=list)
    has_more: bool = False


@dataclass(frozen=True)
class PendingImage:
    sha256: str
    file_path: str
    mime_type: str | None
    size: int


def pending_images(session: Session, limit: int = 200) -> list[PendingImage]:
    rows = session.execute(_PENDING, {"limit": limit}).all()
    return [PendingImage(r[0], r[1], r[2], int(r[3] or 0)) for r in rows]


def pending_image_stats(session: Session) -> tuple[int, int]:
    row = session.execute(
        sa.text(
            "SELECT count(*), coalesce(sum(file_size), 0) FROM inspection_images "
            "WHERE uploaded_at IS NULL"
        )
    ).one()
    return int(row[0]), int(row[1])


def mark_uploaded(session: Session, hashes: list[str]) -> None:
    if not hashes:
        return
    session.execute(
        sa.text(
            "UPDATE inspection_images SET uploaded_at = :now "
            "WHERE uploaded_at IS NULL AND sha256 IN :hashes"
        ).bindparams(sa.bindparam("hashes", expanding=True)),
        {"now": sqlite_time(utcnow()), "hashes": hashes},
    )


class Uploader:
    def __init__(
        self,
        db: Database,
        data_dir: Path,
        *,
        listing: int = 200,
        parallel: int = 2,
        data_key: DataKey | None = None,
    ) -> None:
        self.db = db
        self.data_dir = data_dir
        self.data_key = data_key
        self.listing = listing
        # Two uploads at a time keep the link busy while the other side hashes and fsyncs.
        self.parallel = parallel
        # Hashes whose file is missing locally: reported, not retried in a tight loop.
        self.missing_files: set[str] = set()

    def upload(self, client: SyncClient, budget_s: float = 60.0) -> UploadResult:
        result = UploadResult()
        deadline = time.monotonic() + budget_s
        while True:
            with self.db.read() as session:
                listed = pending_images(session, self.listing + len(self.missing_files))
            batch = [p for p in listed if p.sha256 not in self.missing_files][: self.listing]
            if not batch:
                result.missing_files = sorted(self.missing_files)
                return result
            wanted = set(client.missing([p.sha256 for p in batch]))
            known = [p.sha256 for p in batch if p.sha256 not in wanted]
            with self.db.atomic() as session:
                mark_uploaded(session, known)
            result.skipped_known += len(known)
            todo = []
            for image in batch:
                if image.sha256 not in wanted:
                    continue
                path = (self.data_dir / image.file_path).resolve()
                if not path.is_relative_to(self.data_dir.resolve() / "images"):
                    # Only photos the sidecar stored are sent, whatever the row says.
                    log.error("image %s has a path outside images/; not uploading it",
                              image.sha256)
                    self.missing_files.add(image.sha256)
                    continue
                if not path.is_file():
                    log.error("image %s is missing at %s; cannot upload it", image.sha256, path)
                    self.missing_files.add(image.sha256)
                    continue
                try:
                    # Opened here: a photo under another key fails before a byte is sent.
                    reader = photo_crypto.open_photo(self.data_dir, image.file_path,
                                                     self.data_key)
                except PhotoUnreadable as exc:
                    log.error("image %s cannot be uploaded: %s", image.sha256, exc.message)
                    self.missing_files.add(image.sha256)
                    continue
                todo.append((image, reader))
            with ThreadPoolExecutor(self.parallel, thread_name_prefix="kensa-upload") as pool:
                running = [pool.submit(self._one, client, image, reader, deadline)
                           for image, reader in todo]
                # Every upload finishes or fails on its own; the first failure is raised
                # once all have stopped, so no confirmed upload goes unrecorded.
                errors = [f.exception() for f in running]
                for future in running:
                    if future.exception() is None and future.result() is not None:
                        result.uploaded += 1
                        result.bytes += future.result() or 0
                failure = next((e for e in errors if e is not None), None)
                if failure is not None:
                    raise failure
            if time.monotonic() > deadline:
                with self.db.read() as session:
                    result.has_more = bool(pending_images(session, 1))
                return result

    def _one(
        self,
        client: SyncClient,
        image: PendingImage,
        reader: photo_crypto.PhotoReader,
        deadline: float,
    ) -> int | None:
        if time.monotonic() > deadline:
            return None
        try:
            stored = client.upload(image.sha256, reader, mime_type=image.mime_type)
        except PhotoUnreadable as exc:
            # Damaged past its header: the server got a cut-off body and kept nothing.
            log.error("image %s cannot be uploaded: %s", image.sha256, exc.message)
            self.missing_files.add(image.sha256)
            return None
        with self.db.atomic() as session:
            mark_uploaded(session, [image.sha256])
        return stored.size
