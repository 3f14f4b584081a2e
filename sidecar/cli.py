"""The ``kensa`` command.

Each area of the product owns its sub-command group in its own module (``schema.cli`` for ``db``,
and so on); this module only wires them together, importing them lazily where they pull in heavy
libraries so that ``kensa --help`` stays fast on a tablet. The sync server's administration is
not here: it is ``kensa-server`` (``sync.server.cli``), on the server's machine.
"""

from __future__ import annotations

from pathlib import Path

import typer

from schema import cli as schema_cli
from schema.cli import db_app
from sidecar.audit_cli import audit_app
from sidecar.errors import KensaError
from sidecar.key_cli import encrypt, key_app
from sidecar.keys import DataKey
from sidecar.pipeline.cli import doctor, pipeline_app
from sidecar.pipeline.model_cli import model_app
from sidecar.qr.cli import qr_app
from sidecar.user_cli import serve, user_app
from sync.device.cli import device_app

app = typer.Typer(
    name="kensa",
    help="kensa (検査): the inspection client on this tablet (the server's is kensa-server).",
    no_args_is_help=True,
    add_completion=False,
)


def _device_key(data_dir: Path) -> DataKey | None:
    from sidecar import key_source

    try:
        return key_source.load(data_dir).key
    except KensaError as exc:
        typer.secho(f"error: {exc.message}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from exc


schema_cli.device_key_finder = _device_key
db_app.command("encrypt")(encrypt)
app.add_typer(db_app, name="db")
app.add_typer(key_app, name="key")
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(model_app, name="model")
app.command("doctor")(doctor)
app.add_typer(qr_app, name="qr")
app.add_typer(user_app, name="user")
app.command("serve")(serve)
app.add_typer(device_app, name="device")
app.add_typer(audit_app, name="audit")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
