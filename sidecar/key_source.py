"""Where the tablet's data key comes from (the loading side of ``sidecar.keys``).

- The Tauri shell keeps the key in the OS keystore and writes it as the first line on the
  sidecar's stdin (``python -m sidecar --key-stdin``): ``{"data_key": "<64 hex>"}``. Nothing
  else reads it there, and stdin stays open afterwards: its close still means the shell died.
- ``kensa serve`` and the other ``kensa`` commands (a desk, a browser, an administrator) read
  ``KENSA_KEY_FILE`` — refused unless only its owner may read it (0600) — or else the OS
  keystore through ``keyring``: service ``kensa``, account ``data-key:<resolved data folder>``,
  the names the shell's ``keyring`` crate uses too.
- ``KENSA_PLAINTEXT=1`` (development) lets a store without a key be plaintext; an explicit key
  still wins over it.

The key never goes into the environment, an argument, a file inside the data folder, or a log:
every error here names where the key was looked for, never what was found.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from sidecar.errors import KensaError
from sidecar.keys import DataKey, KeyFormatError

if TYPE_CHECKING:
    from schema.db import Database

SERVICE = "kensa"
KEY_FILE_ENV = "KENSA_KEY_FILE"
PLAINTEXT_ENV = "KENSA_PLAINTEXT"
# A data key line is 80 characters; anything much longer is not one, and must not be buffered.
_MAX_LINE = 1024

Source = Literal["stdin", "key_file", "keystore", "plaintext"]


class KeyUnavailable(KensaError):
    """No usable data key: the sidecar or command cannot start as configured (exit 2)."""

    code = "data_key_unavailable"


@dataclass(frozen=True)
class LoadedKey:
    """The key a process runs with, and where it came from (a rotated key goes back there).

    ``key`` is ``None`` only in the plaintext development mode."""

    key: DataKey | None
    source: Source
    key_file: Path | None = None

    @property
    def encrypted(self) -> bool:
        return self.key is not None


def account(data_dir: Path) -> str:
    """The keystore account of a data folder: one key per tablet, one tablet per folder."""
    return f"data-key:{data_dir.resolve()}"


def plaintext_allowed() -> bool:
    return os.environ.get(PLAINTEXT_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def read_stdin_line(fd: int = 0) -> DataKey:
    """The first line on ``fd``: ``{"data_key": "<64 hex>"}``.

    Read byte by byte from the descriptor, not through ``sys.stdin``: a buffered read would
    swallow what follows the line, and the stdin watcher reads the same descriptor after it."""
    line = bytearray()
    while not line.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:
            raise KeyUnavailable(
                "--key-stdin: stdin closed before the data key line "
                '({"data_key": "<64 hex digits>"}) arrived'
            )
        line += chunk
        if len(line) > _MAX_LINE:
            raise KeyUnavailable("--key-stdin: the first line on stdin is not a data key line")
    try:
        document = json.loads(line.decode("utf-8"))
        text = document["data_key"]
        if not isinstance(text, str):
            raise TypeError("data_key is not a string")
        return DataKey.from_hex(text)
    except KeyFormatError as exc:
        raise KeyUnavailable(f"--key-stdin: {exc}") from exc
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise KeyUnavailable(
            '--key-stdin: the first line on stdin must be {"data_key": "<64 hex digits>"}'
        ) from exc


def read_key_file(path: Path) -> DataKey:
    """A key file: a regular file only its owner may read or write, holding the key in hex."""
    try:
        info = path.stat()
    except OSError as exc:
        raise KeyUnavailable(
            f"{KEY_FILE_ENV}: cannot read the key file {path}: {exc.strerror}"
        ) from exc
    if not stat.S_ISREG(info.st_mode):
        raise KeyUnavailable(f"{KEY_FILE_ENV}: {path} is not a regular file")
    if os.name == "posix" and info.st_mode & 0o077:
        # Unlike the signing key, not repaired silently: another account may already have it.
        raise KeyUnavailable(
            f"{KEY_FILE_ENV}: the key file {path} may be read by other accounts "
            f"(mode {stat.S_IMODE(info.st_mode):o}); it must be 0600 (chmod 600 {path})"
        )
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyUnavailable(f"{KEY_FILE_ENV}: cannot read the key file {path}") from exc
    try:
        return DataKey.from_hex(text)
    except KeyFormatError as exc:
        raise KeyUnavailable(f"{KEY_FILE_ENV}: the key file {path}: {exc}") from exc


def write_key_file(path: Path, key: DataKey) -> None:
    """Write ``key`` to ``path`` (0600 from the start), replacing it atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.new")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(key.hex() + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def keystore_get(data_dir: Path) -> DataKey | None:
    """The folder's key from the OS keystore; ``None`` when there is none or no keystore."""
    return _keystore_read(account(data_dir))


def _keystore_read(name: str) -> DataKey | None:
    import keyring
    import keyring.errors

    try:
        text = keyring.get_password(SERVICE, name)
    except keyring.errors.KeyringError:
        return None
    if text is None:
        return None
    try:
        return DataKey.from_hex(text)
    except KeyFormatError as exc:
        raise KeyUnavailable(
            f"the OS keystore's entry {SERVICE}/{name} is not a data key: {exc}"
        ) from exc


def keystore_set(data_dir: Path, key: DataKey) -> None:
    _keystore_put(account(data_dir), key)


def _keystore_put(name: str, key: DataKey) -> None:
    import keyring
    import keyring.errors

    try:
        keyring.set_password(SERVICE, name, key.hex())
    except keyring.errors.KeyringError as exc:
        raise KeyUnavailable(
            f"cannot store the data key in the OS keystore ({type(exc).__name__}); set "
            f"{KEY_FILE_ENV} to a 0600 key file instead"
        ) from exc


def load(data_dir: Path, *, key_stdin: bool = False, create: bool = False) -> LoadedKey:
    """The data key for ``data_dir``, from the first source that is configured.

    ``create``: a folder with no database yet gets a new key in the OS keystore (the first
    start of ``kensa serve`` on a desk); an existing store never gets a new key here, since it
    would not open it."""
    if key_stdin:
        return LoadedKey(read_stdin_line(), "stdin")
    named = os.environ.get(KEY_FILE_ENV)
    if named:
        path = Path(named).expanduser()
        if path.resolve().is_relative_to(data_dir.resolve()):
            raise KeyUnavailable(
                f"{KEY_FILE_ENV}: the key file {path} is inside the data folder {data_dir}; "
                f"whoever copies the folder would have the key with it"
            )
        return LoadedKey(read_key_file(path), "key_file", path)
    if plaintext_allowed():
        return LoadedKey(None, "plaintext")
    found = keystore_get(data_dir)
    if found is not None:
        return LoadedKey(found, "keystore")
    if create and not _has_store(data_dir):
        key = DataKey.generate()
        keystore_set(data_dir, key)
        return LoadedKey(key, "keystore")
    raise KeyUnavailable(
        f"no data key for {data_dir}: the OS keystore has none (service {SERVICE!r}, account "
        f"{account(data_dir)!r}) and {KEY_FILE_ENV} is not set. Give the tablet's key through "
        f"one of them, or set {PLAINTEXT_ENV}=1 for an unencrypted development store"
    )


def load_or_make(data_dir: Path) -> LoadedKey:
    """The key to encrypt an existing plaintext store with: the configured one, or a new one
    kept where ``load`` will find it (the file ``KENSA_KEY_FILE`` names, else the keystore)."""
    named = os.environ.get(KEY_FILE_ENV)
    if named:
        path = Path(named).expanduser()
        if not path.exists():
            write_key_file(path, DataKey.generate())
        loaded = load(data_dir)
        assert loaded.key is not None
        return loaded
    found = keystore_get(data_dir)
    if found is None:
        found = DataKey.generate()
        keystore_set(data_dir, found)
    return LoadedKey(found, "keystore")


def _has_store(data_dir: Path) -> bool:
    db = data_dir / "kensa.db"
    return db.exists() and db.stat().st_size > 0


def store_rotated(loaded: LoadedKey, data_dir: Path, new: DataKey) -> None:
    """Keep a rotated key where the old one came from."""
    if loaded.source == "key_file":
        assert loaded.key_file is not None
        write_key_file(loaded.key_file, new)
    elif loaded.source == "keystore":
        keystore_set(data_dir, new)
    else:
        raise KeyUnavailable(
            f"a key handed over on {loaded.source} cannot be rotated here: rotate it from the "
            f"application that keeps it"
        )


def _pending_file(loaded: LoadedKey) -> Path:
    assert loaded.key_file is not None
    return loaded.key_file.with_name(loaded.key_file.name + ".next")


def store_pending(loaded: LoadedKey, data_dir: Path, new: DataKey) -> None:
    """Keep the key a rotation is about to set beside the current one, before the store has it."""
    if loaded.source == "key_file":
        write_key_file(_pending_file(loaded), new)
    elif loaded.source == "keystore":
        _keystore_put(f"{account(data_dir)}:next", new)
    else:
        raise KeyUnavailable(
            f"a key handed over on {loaded.source} cannot be rotated here: rotate it from the "
            f"application that keeps it"
        )


def load_pending(loaded: LoadedKey, data_dir: Path) -> DataKey | None:
    if loaded.source == "key_file":
        pending = _pending_file(loaded)
        return read_key_file(pending) if pending.exists() else None
    if loaded.source == "keystore":
        return _keystore_read(f"{account(data_dir)}:next")
    return None


def drop_pending(loaded: LoadedKey, data_dir: Path) -> None:
    import keyring
    import keyring.errors

    if loaded.source == "key_file":
        _pending_file(loaded).unlink(missing_ok=True)
    elif loaded.source == "keystore":
        with contextlib.suppress(keyring.errors.PasswordDeleteError):
            keyring.delete_password(SERVICE, f"{account(data_dir)}:next")


def ensure_data_dir(data_dir: Path) -> None:
    """The data folder, only its owner's (0700): made so, and narrowed if it was wider."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.name == "posix" and stat.S_IMODE(data_dir.stat().st_mode) & 0o077:
        data_dir.chmod(0o700)


def open_store(data_dir: Path, *, create: bool = False) -> tuple[Database, LoadedKey]:
    """The migrated device store of ``data_dir`` opened with its key, for a ``kensa`` command.

    Raises ``KeyUnavailable`` or the schema's error (a wrong key, a corrupt file), having
    written nothing."""
    from schema.db import Database, create_sqlite_engine
    from schema.migrate import upgrade_device
    from sidecar.store_crypto import resume_rotation

    loaded = resume_rotation(data_dir, load(data_dir, create=create))
    ensure_data_dir(data_dir)
    path = data_dir / "kensa.db"
    upgrade_device(path, key=loaded.key)
    return Database(create_sqlite_engine(path, key=loaded.key)), loaded


def fail(exc: KensaError, prog: str = "kensa") -> int:
    """Report a key error on stderr the way every entry point does; the exit status 2."""
    print(f"{prog}: {exc.message}", file=sys.stderr)
    return 2
