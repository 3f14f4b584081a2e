"""Images to a real server process: streamed, checked by hash, known hashes skipped, an upload
cut off half-way restarted cleanly — and the same through an S3-compatible store (SeaweedFS).
The tablets' photos are encrypted at rest, as on a tablet: the server receives the photos
themselves, decrypted as they stream."""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from schema.db import Database, create_sqlite_engine
from schema.migrate import upgrade_device
from scripts.devkit.shift import Shift
from sidecar import photo_crypto
from sidecar.keys import DataKey
from sync.device.service import SyncService
from tests.support.faultproxy import FaultProxy
from tests.support.seaweed import running_seaweed, s3_client
from tests.support.sync_harness import ServerProcess, seed_site

if TYPE_CHECKING:
    from tests.support.sync_fixtures import Running

pytestmark = pytest.mark.postgres
pytest_plugins = ("tests.support.sync_fixtures",)
KEY, KEY2 = DataKey.generate(), DataKey.generate()  # tablets TAB-01 and TAB-02


@pytest.fixture
def make_device(tmp_path: Path) -> Iterator[object]:
    made: list[Database] = []

    def make(name: str) -> tuple[Database, Path]:
        home = tmp_path / name
        upgrade_device(home / "kensa.db")
        db = Database(create_sqlite_engine(home / "kensa.db"))
        made.append(db)
        return db, home

    yield make
    for db in made:
        db.dispose()


def record(db: Database, home: Path, inspections: int, size: tuple[int, int] = (96, 64),
           key: DataKey | None = KEY) -> None:
    """Inspections through the product's services, a photo of each of BRK-100's four items that
    takes one (its FUNCTION item takes none), stored encrypted under ``key``."""
    shift = Shift.on(db, home, image_size=size, data_key=key)
    for _ in range(inspections):
        shift.inspection()


def images(db: Database) -> list[tuple[str, str, object]]:
    with db.read() as session:
        return [tuple(r) for r in session.execute(sa.text(
            "SELECT sha256, file_path, uploaded_at FROM inspection_images"))]


def test_images_are_uploaded_once_and_known_hashes_skipped(
    make_device: object, site_server: Running
) -> None:
    db, home = make_device("tab01")  # type: ignore[operator]
    sync = SyncService(db, home, "0.1.0", data_key=KEY)
    sync.connect(site_server.url, site_server.site.tokens["TAB-01"])
    sync.run_once()
    record(db, home, 2)
    report = sync.run_once()
    assert report.ok and report.uploaded == 8
    uploaded = images(db)
    assert all(at is not None for _, _, at in uploaded)
    for sha, path, _ in uploaded:
        assert photo_crypto.is_encrypted(home / path)
        body = (site_server.files / sha[:2] / sha).read_bytes()
        assert hashlib.sha256(body).hexdigest() == sha
        assert body.startswith(b"\xff\xd8\xff")  # the photo itself, not what the tablet keeps

    # Another tablet holding one of the same pictures: nothing is sent for it.
    db2, home2 = make_device("tab02")  # type: ignore[operator]
    sync2 = SyncService(db2, home2, "0.1.0", data_key=KEY2)
    sync2.connect(site_server.url, site_server.site.tokens["TAB-02"])
    sync2.run_once()
    record(db2, home2, 1, key=KEY2)
    sha, path, _ = uploaded[0]
    with db2.atomic() as session:
        first = session.execute(sa.text("SELECT id, file_path FROM inspection_images")).first()
        assert first is not None
        (home2 / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(home / path, home2 / path)
        session.execute(sa.text("UPDATE inspection_images SET sha256 = :s, file_path = :p "
                                "WHERE id = :i"), {"s": sha, "p": path, "i": first[0]})
    result = sync2.uploader.upload(sync2.client())
    assert result.skipped_known == 1 and result.uploaded == 3
    assert sync2.status().pending_images == 0


def test_a_photo_row_pointing_outside_images_is_never_read(
    make_device: object, site_server: Running, tmp_path: Path
) -> None:
    db, home = make_device("tab01")  # type: ignore[operator]
    sync = SyncService(db, home, "0.1.0", data_key=KEY)
    sync.connect(site_server.url, site_server.site.tokens["TAB-01"])
    sync.run_once()
    record(db, home, 1)
    secret = tmp_path / "secret.txt"
    secret.write_text("not a photo")
    with db.atomic() as session:
        rows = session.execute(sa.text("SELECT id FROM inspection_images")).all()
        for row, path in zip(rows, ["../secret.txt", str(secret), "kensa.db"], strict=False):
            session.execute(sa.text("UPDATE inspection_images SET file_path = :p WHERE id = :i"),
                            {"p": path, "i": row[0]})
    result = sync.uploader.upload(sync.client())
    assert len(result.missing_files) == min(3, len(rows))
    stored = {p.name for p in site_server.files.rglob("*") if p.is_file()}
    assert hashlib.sha256(b"not a photo").hexdigest() not in stored


def test_a_damaged_or_foreign_photo_is_not_sent_and_the_others_are(
    make_device: object, site_server: Running
) -> None:
    db, home = make_device("tab01")  # type: ignore[operator]
    sync = SyncService(db, home, "0.1.0", data_key=KEY)
    sync.connect(site_server.url, site_server.site.tokens["TAB-01"])
    sync.run_once()
    record(db, home, 1, size=(1200, 900))  # several segments per photo
    (damaged, damaged_path, _), (foreign, foreign_path, _), *rest = images(db)
    blob = bytearray((home / damaged_path).read_bytes())
    blob[len(blob) // 2] ^= 0x40  # deep inside: the upload has begun when it is found
    (home / damaged_path).write_bytes(bytes(blob))
    other = photo_crypto.read(home, foreign_path, KEY)
    photo_crypto.write(home, foreign_path, other, DataKey.generate())  # another tablet's key
    report = sync.run_once()
    assert report.ok and report.uploaded == len(rest) == 2
    assert set(sync.uploader.missing_files) == {damaged, foreign}
    held = {p.name for p in site_server.files.rglob("*") if p.is_file()}
    assert damaged not in held and foreign not in held
    assert {sha for sha, _, _ in rest} <= held
    # The server drops the cut-off body when it sees the connection go, in its own time.
    deadline = time.monotonic() + 10
    while list((site_server.server.data_dir / "staging").glob("*.part")):
        assert time.monotonic() < deadline, "the server kept a cut-off upload"
        time.sleep(0.05)


def test_an_interrupted_upload_restarts_cleanly(
    make_device: object, site_server: Running
) -> None:
    db, home = make_device("tab01")  # type: ignore[operator]
    with FaultProxy(site_server.server.port, seed=5, enabled=False) as proxy:
        sync = SyncService(db, home, "0.1.0", data_key=KEY)
        sync.connect(proxy.url, site_server.site.tokens["TAB-01"])
        assert sync.run_once().ok
        record(db, home, 1, size=(1200, 900))  # pictures of about a megabyte and more
        pending = [p for p in images(db)]
        assert min((home / p).stat().st_size for _, p, _ in pending) > 500_000
        sync.pusher.push(sync.client(), sync.client().authenticate().device_id)
        proxy.weights = {"reset": 1.0}  # every connection is cut a few kilobytes in
        proxy.enabled = True
        proxy.cut_all()
        for _ in range(3):
            report = sync.run_once()
            assert not report.ok and report.error_kind in ("connection_lost", "offline")
        assert all(at is None for _, _, at in images(db))
        proxy.enabled = False
        report = sync.run_once()
    assert report.ok and report.uploaded == 4
    for sha, _, at in images(db):
        assert at is not None
        body = (site_server.files / sha[:2] / sha).read_bytes()
        assert hashlib.sha256(body).hexdigest() == sha
    assert not list((site_server.server.data_dir / "staging").glob("*.part"))


@pytest.mark.slow
def test_images_and_models_through_an_s3_store(
    pg_url: str, tmp_path: Path, make_device: object
) -> None:
    with running_seaweed() as endpoint:
        storage = (f"s3://kensa-test?endpoint={endpoint}&region=us-east-1"
                   "&access_key=kensa&secret_key=kensa-secret")
        site = seed_site(pg_url, storage, model_bytes=2_000_000)
        with ServerProcess(pg_url, tmp_path / "server", storage=storage) as server:
            db, home = make_device("tab01")  # type: ignore[operator]
            sync = SyncService(db, home, "0.1.0", data_key=KEY)
            sync.connect(server.url, site.tokens["TAB-01"])
            assert sync.run_once().ok
            model = home / "models" / f"{site.model_sha}.onnx"
            assert hashlib.sha256(model.read_bytes()).hexdigest() == site.model_sha
            record(db, home, 1, size=(640, 480))
            report = sync.run_once()
            assert report.ok and report.uploaded == 4
        s3 = s3_client(endpoint)
        for sha, _, at in images(db):
            assert at is not None
            obj = s3.get_object(Bucket="kensa-test", Key=f"{sha[:2]}/{sha}")  # type: ignore[attr-defined]
            assert hashlib.sha256(obj["Body"].read()).hexdigest() == sha
