"""``kensa audit``: the tablet's audit trail from the command line, offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

audit_app = typer.Typer(help="The tablet's tamper-evident audit trail.", no_args_is_help=True)


@audit_app.command("verify")
def verify(
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Default: KENSA_DATA_DIR or the app-data folder."),
    ] = None,
    database: Annotated[
        Path | None, typer.Option("--database", help="A device database file instead.")
    ] = None,
) -> None:
    """Check the audit chain and every record against its newest entry's digest; the file is
    opened read-only. Exit 0 when all holds, 1 naming the first broken entry and each record
    that does not match, 2 when the file cannot be read."""
    from schema import migrate
    from schema.db import DRIVER_ERRORS
    from schema.errors import SchemaError
    from sidecar import key_source
    from sidecar.audit_verify import verify as check
    from sidecar.errors import KensaError
    from sidecar.settings import Settings

    if database is None:
        settings = Settings()
        if data_dir is not None:
            settings.data_dir = data_dir
        database = settings.database_path
    unreadable: tuple[type[Exception], ...] = (OSError, SchemaError, *DRIVER_ERRORS)
    try:
        # A plaintext file is read as it is; an encrypted one with the folder's data key.
        plaintext = database.is_file() and migrate.is_plaintext_sqlite(database)
        key = None if plaintext else key_source.load(database.resolve().parent).key
        report = check(database, key)
    except KensaError as exc:
        typer.secho(f"error: {exc.message}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from exc
    except unreadable as exc:
        typer.secho(f"error: cannot read {database}: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from exc
    if report.broken is not None:
        b = report.broken
        typer.echo(
            f"entry {b.seq if b.seq is not None else '?'}"
            f" (id {b.entry_id or '?'}): {b.kind}: {b.message}"
        )
    for problem in report.records_wrong:
        typer.echo(f"record {problem.table} {problem.record_id}: {problem.message}")
    summary = f"{report.entries} entries, {report.records} records checked" + (
        f", {report.unaudited} written before the audit trail" if report.unaudited else ""
    )
    if not report.clean:
        typer.echo(f"audit trail BROKEN: {summary}")
        raise typer.Exit(1)
    typer.echo(f"audit trail intact: {summary}")
