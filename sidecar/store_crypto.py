"""Encrypting a plaintext device store, and changing the key of an encrypted one.

Both run with the sidecar stopped, and both are safe to kill at any point and run again:

- ``encrypt_store`` writes an encrypted copy beside the file (``sqlcipher_export``), syncs it,
  checks it opens with the key, and only then renames it over the plaintext file — one atomic
  rename. Killed before it, the plaintext file is untouched and the half-made copy is discarded
  by the next run; killed after it, the next run finds the store already encrypted.
- ``rotate_key`` keeps the new key beside the old one (a ``.next`` key file, or a second
  keystore entry) before it re-keys, so a store re-keyed by a run that died before it could
  record the new key still opens: ``key_source`` falls back to the pending key.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Callable
from pathlib import Path

import sqlcipher3

from schema.db import Database, create_sqlite_engine, open_encrypted
from schema.errors import KeyRefused
from schema.migrate import check_device_file, is_plaintext_sqlite
from sidecar import key_source
from sidecar.errors import Conflict, KensaError
from sidecar.keys import DataKey

# Tests stop a run at one of these points (os._exit, as a kill would) to prove nothing is lost.
CRASH_ENV = "KENSA_TEST_CRASH_AT"


def _crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os._exit(137)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _key_literal(key: DataKey) -> str:
    return f"\"x'{key.hex()}'\""


def _side_files(path: Path) -> list[Path]:
    return [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal")]


def _checkpoint(conn: sqlcipher3.Connection, path: Path) -> None:
    """Fold the WAL into the file, refusing while another process has the store open."""
    busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    if busy:
        raise Conflict(
            f"{path} is in use (a sidecar or another kensa command has it open); stop it first",
            code="store_in_use",
        )


def encrypt_store(path: Path, key: DataKey) -> bool:
    """Encrypt the plaintext store at ``path`` with ``key``; ``False`` if it already was."""
    if not _is_plaintext(path):
        # Already encrypted (a run that was stopped after its rename), or nothing to encrypt:
        # only confirmed, with this key.
        check_device_file(path, key)
        return False
    check_device_file(path, None)
    staged = path.with_name(path.name + ".encrypting")
    for leftover in [staged, *_side_files(staged)]:
        leftover.unlink(missing_ok=True)
    # SQLCipher's module opens a plaintext file as SQLite does when no key is given.
    plain = sqlcipher3.connect(str(path))
    try:
        plain.isolation_level = None
        _checkpoint(plain, path)
        plain.execute(f"ATTACH DATABASE ? AS encrypted KEY {_key_literal(key)}", (str(staged),))
        plain.execute("SELECT sqlcipher_export('encrypted')")
        # sqlcipher_export copies the schema and rows, not the header's version fields.
        version = plain.execute("PRAGMA main.user_version").fetchone()[0]
        plain.execute(f"PRAGMA encrypted.user_version = {int(version)}")
        plain.execute("DETACH DATABASE encrypted")
    finally:
        plain.close()
    _crash_point("exported")
    _fsync(staged)
    check_device_file(staged, key)
    _crash_point("checked")
    # A WAL left by the plaintext file would be replayed into the encrypted one: the checkpoint
    # emptied it and the last close removed it; whatever is left is empty and goes.
    for side in _side_files(path):
        side.unlink(missing_ok=True)
    os.replace(staged, path)
    _fsync(path.parent)
    _crash_point("replaced")
    return True


def _is_plaintext(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 0 and is_plaintext_sqlite(path)


def _photo_hook(name: str) -> Callable[..., int] | None:
    """A function of ``sidecar.photo_crypto`` if that module is part of this build."""
    try:
        module = importlib.import_module("sidecar.photo_crypto")
    except ImportError:
        return None
    found = getattr(module, name, None)
    return found if callable(found) else None


def encrypt_photos(data_dir: Path, key: DataKey) -> int:
    """Encrypt the photos a plaintext store left in clear; how many were."""
    hook = _photo_hook("encrypt_existing")
    if hook is None:
        return 0
    db = Database(create_sqlite_engine(data_dir / "kensa.db", key=key))
    try:
        return hook(data_dir, db, key)
    finally:
        db.dispose()


def rotate_key(data_dir: Path, loaded: key_source.LoadedKey) -> tuple[DataKey, int]:
    """Re-key the store and rewrap every photo's key; the new key and the photos rewrapped."""
    old = loaded.key
    if old is None:
        raise KensaError("a plaintext store has no key to rotate", code="store_plaintext")
    path = data_dir / "kensa.db"
    check_device_file(path, old)
    new = DataKey.generate()
    key_source.store_pending(loaded, data_dir, new)
    conn = open_encrypted(path, old)
    try:
        conn.isolation_level = None
        _checkpoint(conn, path)
        _crash_point("before_rekey")
        conn.execute(f"PRAGMA rekey = {_key_literal(new)}")
    finally:
        conn.close()
    _crash_point("rekeyed")
    rewrapped = 0
    hook = _photo_hook("rewrap_all")
    if hook is not None:
        db = Database(create_sqlite_engine(path, key=new))
        try:
            rewrapped = hook(data_dir, db, old, new)
        finally:
            db.dispose()
    _crash_point("rewrapped")
    key_source.store_rotated(loaded, data_dir, new)
    key_source.drop_pending(loaded, data_dir)
    return new, rewrapped


def resume_rotation(data_dir: Path, loaded: key_source.LoadedKey) -> key_source.LoadedKey:
    """The key that opens the store: the loaded one, or the pending key of a rotation that was
    stopped after re-keying (which this finishes: photos rewrapped, key recorded)."""
    path = data_dir / "kensa.db"
    if loaded.key is None or not path.exists() or _is_plaintext(path):
        return loaded
    pending = key_source.load_pending(loaded, data_dir)
    if pending is None:
        return loaded
    try:
        open_encrypted(path, loaded.key, read_only=True).close()
    except KeyRefused:
        open_encrypted(path, pending, read_only=True).close()
        hook = _photo_hook("rewrap_all")
        if hook is not None:
            db = Database(create_sqlite_engine(path, key=pending))
            try:
                hook(data_dir, db, loaded.key, pending)
            finally:
                db.dispose()
        key_source.store_rotated(loaded, data_dir, pending)
        key_source.drop_pending(loaded, data_dir)
        return key_source.LoadedKey(pending, loaded.source, loaded.key_file)
    # The store still has the old key: the rotation stopped before re-keying.
    with contextlib.suppress(KensaError):
        key_source.drop_pending(loaded, data_dir)
    return loaded
