"""``kensa db encrypt`` and ``kensa key rotate``: the device store's encryption, offline.

Both need the sidecar stopped (they refuse a store another process has open) and may be killed
at any point and run again (``sidecar.store_crypto``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sidecar.errors import KensaError

key_app = typer.Typer(help="The tablet's data key.", no_args_is_help=True)

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Default: KENSA_DATA_DIR or the app-data folder.")
]


def _data_dir(data_dir: Path | None) -> Path:
    from sidecar.settings import Settings

    return data_dir if data_dir is not None else Settings().data_dir


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(2)


def encrypt(data_dir: DataDir = None) -> None:
    """Encrypt this tablet's plaintext store (and its photos) with its data key, making the key
    if it has none: in the file KENSA_KEY_FILE names, else in the OS keystore."""
    from schema.errors import SchemaError
    from sidecar import key_source, store_crypto

    folder = _data_dir(data_dir)
    path = folder / "kensa.db"
    if not path.exists():
        raise _fail(f"no device store at {path}")
    try:
        loaded = key_source.load_or_make(folder)
        assert loaded.key is not None
        key_source.ensure_data_dir(folder)
        changed = store_crypto.encrypt_store(path, loaded.key)
        photos = store_crypto.encrypt_photos(folder, loaded.key)
    except SchemaError as exc:
        raise _fail(str(exc)) from exc
    except KensaError as exc:
        raise _fail(exc.message) from exc
    where = loaded.key_file or f"the OS keystore ({key_source.account(folder)})"
    state = "encrypted" if changed else "already encrypted"
    typer.echo(f"{path}: {state}; {photos} photo(s) encrypted; key kept in {where}")


@key_app.command("rotate")
def rotate(data_dir: DataDir = None) -> None:
    """A new data key: the store is re-keyed, every photo's key rewrapped, and the new key kept
    where the old one was (KENSA_KEY_FILE or the OS keystore)."""
    from schema.errors import SchemaError
    from sidecar import key_source, store_crypto

    folder = _data_dir(data_dir)
    try:
        loaded = store_crypto.resume_rotation(folder, key_source.load(folder))
        _, rewrapped = store_crypto.rotate_key(folder, loaded)
    except SchemaError as exc:
        raise _fail(str(exc)) from exc
    except KensaError as exc:
        raise _fail(exc.message) from exc
    typer.echo(f"{folder / 'kensa.db'}: re-keyed; {rewrapped} photo key(s) rewrapped")
