"""``kensa db``: create, upgrade and inspect kensa's two databases."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from schema import migrate, snapshot
from schema.db import RawKey
from schema.errors import SchemaError

db_app = typer.Typer(
    help="Create and migrate the device (SQLite) and server databases.", no_args_is_help=True
)

DeviceOpt = Annotated[Path | None, typer.Option("--device", help="Device database file (SQLite).")]
ServerOpt = Annotated[
    str | None, typer.Option("--server", help="Server database URL, e.g. postgresql+psycopg://…")
]


# How the key of a device file is found, given its folder: the tablet's command sets it (the
# data key of sidecar.key_source); this package knows no key store, so without it a device file
# is plaintext.
device_key_finder: Callable[[Path], RawKey | None] | None = None


def _device_key(device: Path) -> RawKey | None:
    return device_key_finder(device.resolve().parent) if device_key_finder else None


def _one_target(device: Path | None, server: str | None) -> None:
    if (device is None) == (server is None):
        raise typer.BadParameter("give exactly one of --device PATH or --server URL")


def _fail(exc: SchemaError) -> typer.Exit:
    typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)


@db_app.command()
def upgrade(
    device: DeviceOpt = None,
    server: ServerOpt = None,
    to: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Bring a database to the newest schema (creating a device file if there is none)."""
    _one_target(device, server)
    try:
        if device is not None:
            revision = migrate.upgrade_device(device, to, key=_device_key(device))
            where = str(device)
        else:
            assert server is not None
            revision = migrate.upgrade_server(server, to)
            where = "server database"
    except SchemaError as exc:
        raise _fail(exc) from exc
    typer.echo(f"{where}: at revision {revision}")


@db_app.command()
def downgrade(
    to: Annotated[str, typer.Option(help="Target revision ('base' removes every table).")],
    device: DeviceOpt = None,
    server: ServerOpt = None,
) -> None:
    """Step a database back to an older schema revision."""
    _one_target(device, server)
    try:
        if device is not None:
            revision = migrate.downgrade_device(device, to, key=_device_key(device))
        else:
            assert server is not None
            revision = migrate.downgrade_server(server, to)
    except SchemaError as exc:
        raise _fail(exc) from exc
    typer.echo(f"at revision {revision}")


@db_app.command("snapshot")
def snapshot_cmd(
    check: Annotated[bool, typer.Option(help="Only check; exit 1 if a snapshot is stale.")] = False,
) -> None:
    """Write schema/sql/device.sql and server.sql from the models."""
    stale = False
    for kind in ("device", "server"):
        rendered = snapshot.render(kind)
        target = snapshot.path(kind)
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current == rendered:
            continue
        stale = True
        if check:
            typer.echo(f"{target} is stale: run `kensa db snapshot`")
        else:
            target.write_text(rendered, encoding="utf-8")
            typer.echo(f"wrote {target}")
    if check and stale:
        raise typer.Exit(code=1)
