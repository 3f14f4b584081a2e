"""Photos encrypted at rest (``sidecar.photo_crypto``): real files in a fresh data directory,
real kills of a process in the middle of a key rotation."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from schema.db import Database
from sidecar import photo_crypto
from sidecar.errors import PhotoUnreadable
from sidecar.keys import DataKey
from sidecar.services import images, inspection
from tests.support.seed import PASSWORD, QR_JSON, photo_jpeg, seed_device
from tests.support.sidecar import SidecarProcess
from tests.test_outbox import seed_masters, start

REPO = Path(__file__).resolve().parents[1]
OLD, NEW = DataKey.generate(), DataKey.generate()
SIGNATURES = (b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xdb", b"JFIF", b"\x89PNG\r\n\x1a\n", b"IEND")


def png(seed: int = 0) -> bytes:
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    ok, encoded = cv2.imencode(".png", rng.integers(0, 255, (300, 400, 3), dtype=np.uint8))
    assert ok
    return encoded.tobytes()


def stored_files(data_dir: Path) -> list[Path]:
    return sorted(
        p for folder in photo_crypto.PHOTO_DIRS for p in (data_dir / folder).rglob("*")
        if p.is_file()
    )


def opens_with(data_dir: Path, relative: str, key: DataKey) -> bool:
    try:
        photo_crypto.read(data_dir, relative, key)
    except PhotoUnreadable:
        return False
    return True


def assert_nothing_readable(blob: bytes, plain: bytes) -> None:
    for signature in SIGNATURES:
        assert signature not in blob, signature
    # No stretch of the photo itself either (32 bytes from ten places in it).
    for start_at in range(0, len(plain) - 32, max(1, len(plain) // 10)):
        assert plain[start_at : start_at + 32] not in blob


@pytest.mark.parametrize("make", [lambda: photo_jpeg(1), lambda: png(2)], ids=["jpeg", "png"])
def test_round_trip_and_nothing_of_the_photo_on_disk(tmp_path: Path, make: object) -> None:
    assert callable(make)
    plain: bytes = make()
    stored = images.store(tmp_path, plain, key=OLD)
    assert stored.sha256 == hashlib.sha256(plain).hexdigest()  # the address is the photo's
    assert photo_crypto.read(tmp_path, stored.relative_path, OLD) == plain
    thumb = photo_crypto.read(tmp_path, stored.thumbnail_path, OLD)
    assert thumb.startswith(b"\xff\xd8\xff") and thumb.rstrip(b"\x00").endswith(b"\xff\xd9")
    files = stored_files(tmp_path)
    assert [f.relative_to(tmp_path).as_posix() for f in files] == sorted(
        [stored.relative_path, stored.thumbnail_path]
    )
    for f in files:
        blob = f.read_bytes()
        assert blob.startswith(photo_crypto.MAGIC)
        assert_nothing_readable(blob, plain)
        assert_nothing_readable(blob, thumb)
    # The reader's size is the photo's, known before a byte is decrypted (Content-Length).
    reader = photo_crypto.open_photo(tmp_path, stored.relative_path, OLD)
    assert reader.size == len(plain) == stored.size
    assert all(len(c) <= photo_crypto.SEGMENT for c in reader.chunks())


def test_the_same_photo_is_stored_once_and_a_new_one_beside_it(tmp_path: Path) -> None:
    first = images.store(tmp_path, photo_jpeg(3), key=OLD)
    before = {p: p.stat().st_mtime_ns for p in stored_files(tmp_path)}
    again = images.store(tmp_path, photo_jpeg(3), key=OLD)
    assert again == first
    assert {p: p.stat().st_mtime_ns for p in stored_files(tmp_path)} == before
    other = images.store(tmp_path, photo_jpeg(4), key=OLD)
    assert other.sha256 != first.sha256 and len(stored_files(tmp_path)) == 4


def test_each_file_has_its_own_key(tmp_path: Path) -> None:
    a = images.store(tmp_path, photo_jpeg(5), key=OLD)
    b = images.store(tmp_path, photo_jpeg(6), key=OLD)
    heads = [(tmp_path / r).read_bytes()[: photo_crypto.HEADER] for r in
             (a.relative_path, b.relative_path, a.thumbnail_path)]
    assert len({h[photo_crypto._FIXED :] for h in heads}) == 3  # three different wrapped keys


def test_another_key_or_no_key_is_a_clear_error(tmp_path: Path) -> None:
    stored = images.store(tmp_path, photo_jpeg(7), key=OLD)
    with pytest.raises(PhotoUnreadable, match="cannot be opened with this tablet's data key") as e:
        photo_crypto.read(tmp_path, stored.relative_path, NEW)
    assert e.value.detail["reason"] == "wrong_key"
    with pytest.raises(PhotoUnreadable, match="without the tablet's data key") as e:
        photo_crypto.read(tmp_path, stored.relative_path, None)
    assert e.value.detail["reason"] == "no_key"


@pytest.mark.parametrize("where", ["first", "middle", "last", "header"])
def test_one_altered_byte_is_refused(tmp_path: Path, where: str) -> None:
    plain = photo_jpeg(8, 1600, 1200)
    stored = images.store(tmp_path, plain, key=OLD)
    path = tmp_path / stored.relative_path
    blob = bytearray(path.read_bytes())
    assert len(blob) > 3 * photo_crypto.SEGMENT  # several segments
    at = {"first": photo_crypto.HEADER + 5, "middle": len(blob) // 2, "last": len(blob) - 3,
          "header": 12}[where]
    blob[at] ^= 0x01
    path.write_bytes(bytes(blob))
    reader = photo_crypto.open_photo(tmp_path, stored.relative_path, OLD)
    served = bytearray()
    with pytest.raises(PhotoUnreadable, match="damaged or was altered") as e:
        for chunk in reader.chunks():
            served += chunk
    assert e.value.detail["reason"] == "damaged"
    # What came out before the damage was the photo's own bytes, and nothing of the damage.
    assert plain.startswith(bytes(served))
    assert len(served) <= max(0, at - photo_crypto.HEADER)


@pytest.mark.parametrize("keep", [10, photo_crypto.HEADER + 100,
                                  photo_crypto.HEADER + photo_crypto.SEGMENT + photo_crypto.TAG])
def test_a_truncated_file_is_refused(tmp_path: Path, keep: int) -> None:
    stored = images.store(tmp_path, photo_jpeg(9, 1600, 1200), key=OLD)
    path = tmp_path / stored.relative_path
    path.write_bytes(path.read_bytes()[:keep])  # the last cut is on a segment boundary
    with pytest.raises(PhotoUnreadable) as e:
        photo_crypto.read(tmp_path, stored.relative_path, OLD)
    assert e.value.detail["reason"] in {"truncated", "damaged"}
    assert "truncated" in e.value.message or "damaged" in e.value.message


def test_a_photo_moved_onto_another_address_does_not_open(tmp_path: Path) -> None:
    a = images.store(tmp_path, photo_jpeg(10), key=OLD)
    b = images.store(tmp_path, photo_jpeg(11), key=OLD)
    (tmp_path / b.relative_path).write_bytes((tmp_path / a.relative_path).read_bytes())
    with pytest.raises(PhotoUnreadable, match="damaged or was altered"):
        photo_crypto.read(tmp_path, b.relative_path, OLD)


def test_plaintext_mode_writes_plain_and_both_kinds_are_read(tmp_path: Path) -> None:
    plain = photo_jpeg(12)
    stored = images.store(tmp_path, plain, key=None)
    assert (tmp_path / stored.relative_path).read_bytes() == plain
    assert photo_crypto.read(tmp_path, stored.relative_path, None) == plain
    # A store given a key later still reads the photos it had before (until converted).
    assert photo_crypto.read(tmp_path, stored.relative_path, OLD) == plain


def _attach(db: Database, data_dir: Path, seed: int, key: DataKey | None) -> images.StoredImage:
    sid, items = start(db)
    stored = images.store(data_dir, photo_jpeg(seed), key=key)
    with db.atomic() as session:
        inspection.attach_image(session, sid, items["V-SCRATCH"], stored)
    return stored


def test_encrypt_existing_converts_plain_photos_and_can_run_again(
    device_db: Database, tmp_path: Path
) -> None:
    seed_masters(device_db)
    plain = [_attach(device_db, tmp_path, s, None) for s in (20, 21)]
    # A photo stored by a request whose attachment then failed: in no row, still a photo.
    orphan = images.store(tmp_path, photo_jpeg(22), key=None)
    (tmp_path / "images" / "00").mkdir(parents=True)
    (tmp_path / "images" / "00" / ".incoming-x.part").write_bytes(b"unfinished")
    assert photo_crypto.encrypt_existing(tmp_path, device_db, OLD) == 6
    for s in [*plain, orphan]:
        for rel in (s.relative_path, s.thumbnail_path):
            assert photo_crypto.is_encrypted(tmp_path / rel)
        assert photo_crypto.read(tmp_path, s.relative_path, OLD) == photo_jpeg(
            {plain[0].sha256: 20, plain[1].sha256: 21, orphan.sha256: 22}[s.sha256]
        )
    assert (tmp_path / "images" / "00" / ".incoming-x.part").read_bytes() == b"unfinished"
    assert photo_crypto.encrypt_existing(tmp_path, device_db, OLD) == 0


def test_encrypt_existing_killed_midway_loses_nothing(device_db: Database, tmp_path: Path) -> None:
    seed_masters(device_db)
    stored = [_attach(device_db, tmp_path, s, None) for s in range(30, 34)]
    # The third file's atomic write is where the process dies (after its rename).
    _run_killed(tmp_path, "encrypt", kill_after=3)
    encrypted = [rel for s in stored for rel in (s.relative_path, s.thumbnail_path)
                 if photo_crypto.is_encrypted(tmp_path / rel)]
    assert len(encrypted) == 3
    assert photo_crypto.encrypt_existing(tmp_path, device_db, OLD) == 5
    for n, s in enumerate(stored):
        assert photo_crypto.read(tmp_path, s.relative_path, OLD) == photo_jpeg(30 + n)


# Run in a child process that kills itself (SIGKILL, no clean-up of any kind) right after the
# N-th durable write: a slot write during a rotation, a whole-file write during a conversion.
_CHILD = """
import os, signal, sys
from pathlib import Path
from schema.db import Database, create_sqlite_engine
from sidecar import photo_crypto
from sidecar.keys import DataKey

data_dir = Path(sys.argv[1])
mode, kill_after = sys.argv[2], int(sys.argv[3])
old, new = (DataKey.from_hex(line) for line in sys.stdin.read().split())
name = "_write_slot" if mode == "rotate" else "atomic_write"
real = getattr(photo_crypto, name)
count = 0

def dying(*args, **kwargs):
    global count
    real(*args, **kwargs)
    count += 1
    if count == kill_after:
        os.kill(os.getpid(), signal.SIGKILL)

setattr(photo_crypto, name, dying)
db = Database(create_sqlite_engine(data_dir / "kensa.db"))
if mode == "rotate":
    photo_crypto.rewrap_all(data_dir, db, old, new)
else:
    photo_crypto.encrypt_existing(data_dir, db, old)
"""


def _run_killed(data_dir: Path, mode: str, kill_after: int) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KENSA_PLAINTEXT"}
    env["KENSA_PLAINTEXT"] = "1"  # the device database of these tests is plain; the photos not
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(data_dir), mode, str(kill_after)],
        input=f"{OLD.hex()}\n{NEW.hex()}\n",  # keys on stdin, never in argv
        text=True, capture_output=True, cwd=REPO, env=env, timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr


def test_rotation_rewraps_keys_without_touching_a_photo_body(
    device_db: Database, tmp_path: Path
) -> None:
    seed_masters(device_db)
    stored = [_attach(device_db, tmp_path, s, OLD) for s in (40, 41)]
    bodies = {p: p.read_bytes()[photo_crypto.HEADER :] for p in stored_files(tmp_path)}
    assert photo_crypto.rewrap_all(tmp_path, device_db, OLD, NEW) == 4
    for path, body in bodies.items():
        assert path.read_bytes()[photo_crypto.HEADER :] == body
        rel = path.relative_to(tmp_path).as_posix()
        assert opens_with(tmp_path, rel, NEW) and not opens_with(tmp_path, rel, OLD)
    assert photo_crypto.rewrap_all(tmp_path, device_db, OLD, NEW) == 0  # nothing left to do
    assert photo_crypto.read(tmp_path, stored[0].relative_path, NEW) == photo_jpeg(40)


@pytest.mark.parametrize("kill_after", [1, 2, 3, 5])
def test_rotation_killed_midway_leaves_every_photo_open_with_one_key_and_finishes_on_rerun(
    device_db: Database, tmp_path: Path, kill_after: int
) -> None:
    seed_masters(device_db)
    stored = [_attach(device_db, tmp_path, s, OLD) for s in range(50, 53)]
    files = [p.relative_to(tmp_path).as_posix() for p in stored_files(tmp_path)]
    _run_killed(tmp_path, "rotate", kill_after)
    state = [(opens_with(tmp_path, r, OLD), opens_with(tmp_path, r, NEW)) for r in files]
    assert all(old or new for old, new in state)
    # Files are taken in order, two slot writes each: the one being moved when the process
    # died opens with both keys after an odd number of writes.
    done, partial = divmod(kill_after, 2)
    assert state[:done] == [(False, True)] * done
    assert state[done : done + partial] == [(True, True)] * partial
    assert all(s == (True, False) for s in state[done + partial :])
    assert photo_crypto.rewrap_all(tmp_path, device_db, OLD, NEW) == len(files) - done
    for r in files:
        assert opens_with(tmp_path, r, NEW) and not opens_with(tmp_path, r, OLD)
    for n, s in enumerate(stored):
        assert photo_crypto.read(tmp_path, s.relative_path, NEW) == photo_jpeg(50 + n)


def test_rotation_encrypts_plain_photos_and_leaves_foreign_ones_as_they_are(
    device_db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seed_masters(device_db)
    mine = _attach(device_db, tmp_path, 60, OLD)
    plain = _attach(device_db, tmp_path, 61, None)
    foreign = _attach(device_db, tmp_path, 62, DataKey.generate())
    foreign_bytes = (tmp_path / foreign.relative_path).read_bytes()
    with caplog.at_level("ERROR", logger="sidecar.photo_crypto"):
        assert photo_crypto.rewrap_all(tmp_path, device_db, OLD, NEW) == 4
    named = " ".join(r.getMessage() for r in caplog.records if r.levelname == "ERROR")
    assert foreign.relative_path in named and foreign.thumbnail_path in named
    assert (tmp_path / foreign.relative_path).read_bytes() == foreign_bytes
    assert photo_crypto.read(tmp_path, mine.relative_path, NEW) == photo_jpeg(60)
    assert photo_crypto.is_encrypted(tmp_path / plain.relative_path)
    assert photo_crypto.read(tmp_path, plain.relative_path, NEW) == photo_jpeg(61)


def test_the_real_sidecar_serves_its_encrypted_photos_and_refuses_a_damaged_one(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    key = DataKey.generate()
    seed_device(data / "kensa.db", key)
    sidecar = SidecarProcess(data, key=key, env={"KENSA_AI_WORKERS": "0",
                                                  "KENSA_SYNC_ENABLED": "0"})
    sidecar.start()
    try:
        photo = photo_jpeg(70, 1600, 1200)
        with sidecar.client() as client:
            login = client.post("/auth/login", json={"username": "tanaka", "password": PASSWORD})
            assert login.status_code == 200, login.text
            client.headers["X-Kensa-Session"] = login.json()["token"]
            started = client.post("/sessions", json={"qr_code": QR_JSON}).json()
            item = started["items"][0]["item_id"]
            up = client.post(f"/sessions/{started['id']}/items/{item}/images",
                             files={"file": ("p.jpg", photo, "image/jpeg")})
            assert up.status_code == 201, up.text
            image_id = up.json()["id"]
            assert client.get(f"/images/{image_id}").content == photo
        sha = hashlib.sha256(photo).hexdigest()
        stored = data / images.image_path(sha)
        assert_nothing_readable(stored.read_bytes(), photo)

        # After a restart with the key, the same photo; then one altered byte in it.
        sidecar.kill()
        sidecar.start()
        blob = bytearray(stored.read_bytes())
        blob[len(blob) // 2] ^= 0x01
        stored.write_bytes(bytes(blob))
        with sidecar.client() as client:
            login = client.post("/auth/login", json={"username": "tanaka", "password": PASSWORD})
            client.headers["X-Kensa-Session"] = login.json()["token"]
            refused = client.get(f"/images/{image_id}")
            assert refused.status_code == 500
            assert refused.headers["content-type"].startswith("application/json")
            error = refused.json()["error"]
            assert error["code"] == "photo_unreadable"
            assert "damaged or was altered" in error["message"]
            assert error["detail"]["reason"] == "damaged"
            # The thumbnail, untouched, still opens.
            thumb = client.get(f"/images/{image_id}/thumbnail")
            assert thumb.status_code == 200 and thumb.content.startswith(b"\xff\xd8\xff")
            # A file gone from the tablet is a 404 that says so, not an unknown image.
            stored.unlink()
            gone = client.get(f"/images/{image_id}")
            assert gone.status_code == 404
            assert gone.json()["error"]["code"] == "photo_missing"
            assert gone.json()["error"]["detail"]["reason"] == "missing"
            assert client.get("/images/nope").json()["error"]["code"] == "not_found"
    finally:
        sidecar.kill()
