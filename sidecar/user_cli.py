"""``kensa serve`` and ``kensa user``: the sidecar and its users, from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sidecar.errors import KensaError
from sidecar.settings import Settings

user_app = typer.Typer(
    help="Users of a stand-alone tablet (synced users come from the server).", no_args_is_help=True
)

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Default: KENSA_DATA_DIR or the app-data folder.")
]


def _settings(data_dir: Path | None) -> Settings:
    settings = Settings()
    if data_dir is not None:
        settings.data_dir = data_dir
    return settings


@user_app.command("add")
def add(
    username: str,
    role: Annotated[
        str, typer.Option(help="inspector, supervisor or admin (the bootstrap account)")
    ] = "inspector",
    full_name: Annotated[str | None, typer.Option()] = None,
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)
    ] = "",
    data_dir: DataDir = None,
) -> None:
    """Add a user who can log in on this tablet, offline: on a stand-alone tablet, or the local
    admin who connects it to a server the first time. A connected tablet takes its users, with
    their roles, from the server only."""
    from schema.errors import SchemaError
    from sidecar import key_source
    from sidecar.errors import Conflict
    from sidecar.services import auth
    from sync.device import config

    settings = _settings(data_dir)
    try:
        db, _ = key_source.open_store(settings.data_dir, create=True)
    except SchemaError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from exc
    except KensaError as exc:
        typer.secho(f"error: {exc.message}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from exc
    try:
        with db.atomic() as session:
            connection = config.load(session)
            if connection is not None:
                raise Conflict(
                    f"this tablet takes its users from {config.display_url(connection.server_url)};"
                    f" add {username} there (kensa-server user add {username} --role {role})",
                    code="users_from_server",
                )
            user = auth.add_user(session, username, password, role=role, full_name=full_name)
    except KensaError as exc:
        typer.secho(f"error: {exc.message}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from exc
    finally:
        db.dispose()
    typer.echo(f"added {user.role} {user.username}")


def serve(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1; 0 picks a free one.")] = 0,
    data_dir: DataDir = None,
    watch_stdin: Annotated[bool, typer.Option(help="Exit when stdin closes.")] = False,
) -> None:
    """Run the sidecar for a browser (the launch protocol of `python -m sidecar`): the served
    page carries the launch token, so any account on this machine can read it (see README)."""
    from sidecar.launch import serve as run

    settings = _settings(data_dir)
    settings.port = port
    settings.browser_ui = True
    raise typer.Exit(run(settings, watch_stdin=watch_stdin, create_key=True))
