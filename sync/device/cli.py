"""``kensa device …``: this tablet's connection to the sync server.

    kensa device connect --server https://server:8400 --token kd_… [--pin SHA256]
    kensa device status
    kensa device sync-now

The server's own administration is ``kensa-server`` (``sync.server.cli``), installed apart.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

device_app = typer.Typer(help="This device's connection to the sync server.", no_args_is_help=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=code)


DeviceDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="The sidecar's data directory.")
]


@contextmanager
def _device_service(data_dir: Path | None) -> Iterator[Any]:
    from schema.errors import SchemaError
    from sidecar import __version__, key_source
    from sidecar.audit import connected
    from sidecar.errors import KensaError
    from sidecar.settings import Settings
    from sync.device.service import SyncService

    settings = Settings(data_dir=data_dir) if data_dir else Settings()
    try:
        db, loaded = key_source.open_store(settings.data_dir, create=True)
    except SchemaError as exc:
        raise _fail(str(exc)) from exc
    except KensaError as exc:
        raise _fail(exc.message) from exc
    # Connecting from here is audited as from the settings screen; nobody is logged in: whoever
    # holds the data folder acts.
    service = SyncService(
        db, settings.data_dir, __version__, settings.device_type, on_connect=connected,
        allow_http=settings.allow_http, ca_bundle=settings.ca_bundle, data_key=loaded.key,
    )
    try:
        yield service
    finally:
        service.stop()
        db.dispose()


@device_app.command("connect")
def device_connect(
    server: Annotated[str, typer.Option(
        "--server", help="https://host:port of the server (plain http only to this machine, "
        "or with KENSA_ALLOW_HTTP=1).")],
    token: Annotated[str, typer.Option("--token", envvar="KENSA_DEVICE_TOKEN",
                                       help="The token `kensa-server device add` printed.")],
    replace_server: Annotated[str | None, typer.Option(
        "--replace-server",
        help="To move a connected device: the URL of the server it is connected to now.")] = None,
    pin: Annotated[str | None, typer.Option(
        "--pin", help="SHA-256 of the server's public key (hex or base64): the device talks "
        "only to a server showing that key.")] = None,
    data_dir: DeviceDirOpt = None,
) -> None:
    """Verify the server URL and device token with the server, then store them.

    Nothing changes unless the server accepts the token. A device already connected elsewhere
    moves only with --replace-server naming its current server. The factory's own CA is
    KENSA_CA_BUNDLE.
    """
    from sync.errors import ConfirmationRequired, SyncError

    with _device_service(data_dir) as service:
        try:
            result = service.connect(server, token, replace_server_url=replace_server, pin=pin)
        except ConfirmationRequired as exc:
            raise _fail(f"{exc.message}; run again with --replace-server "
                        f"{exc.detail['current_server_url']} to confirm") from exc
        except SyncError as exc:
            raise _fail(f"{exc.message} ({exc.code})") from exc
    typer.echo(f"{result.server_url}: {result.message}"
               + (f" as {result.device_name}" if result.device_name else ""))


@device_app.command("status")
def device_status(data_dir: DeviceDirOpt = None) -> None:
    """Print the sync status as JSON."""
    with _device_service(data_dir) as service:
        typer.echo(service.status().model_dump_json(indent=2))


@device_app.command("sync-now")
def device_sync_now(data_dir: DeviceDirOpt = None) -> None:
    """Push, pull and upload once, now."""
    with _device_service(data_dir) as service:
        report = service.run_once()
    typer.echo(report.model_dump_json(indent=2))
    if not report.ok:
        raise typer.Exit(code=1)
