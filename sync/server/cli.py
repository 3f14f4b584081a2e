"""``kensa-server``: the sync server and its masters (``python -m sync.server`` runs the same).

    kensa-server run --database-url postgresql+psycopg://… --storage s3://… --port 8400
    kensa-server db upgrade
    kensa-server device add TAB-01            # prints the token once
    kensa-server device add TAB-02 --qr --server-url https://kensa.example  # one-time code + QR
    kensa-server target add BRK-100 "ブレーキキャリパー" --version 3
    kensa-server item add BRK-100 V-SCRATCH "外観キズ" --type VISUAL --order 1 --criteria '{…}'
    kensa-server pipeline add pipeline.json
    kensa-server user add tanaka --role inspector
    kensa-server model add model.onnx
    kensa-server audit verify --device TAB-01   # exit 1 naming the first broken entry
    kensa-server status                         # the queue, its lag and each device (--json)

Options also come from ``KENSA_SERVER_*`` variables (``KENSA_SERVER_DATABASE_URL``, …). The
server is installed and run apart from the tablets, so nothing here imports the tablet's code, and
the tablet's ``kensa`` command carries no server administration.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

server_app = typer.Typer(
    name="kensa-server",
    help="kensa's sync server and its masters.",
    no_args_is_help=True,
    add_completion=False,
)
server_device_app = typer.Typer(help="Registered devices and their tokens.", no_args_is_help=True)
target_app = typer.Typer(help="Inspection targets (products).", no_args_is_help=True)
item_app = typer.Typer(help="Inspection items of a target, with criteria.", no_args_is_help=True)
pipeline_app = typer.Typer(help="Pipelines (JSON definitions).", no_args_is_help=True)
user_app = typer.Typer(help="Users who may log in on the tablets.", no_args_is_help=True)
model_app = typer.Typer(help="Model files devices download.", no_args_is_help=True)
results_app = typer.Typer(help="Results the devices sent.", no_args_is_help=True)
server_db_app = typer.Typer(help="The server database.", no_args_is_help=True)
server_app.add_typer(server_db_app, name="db")
server_app.add_typer(server_device_app, name="device")
server_app.add_typer(target_app, name="target")
server_app.add_typer(item_app, name="item")
server_app.add_typer(pipeline_app, name="pipeline")
server_app.add_typer(user_app, name="user")
server_app.add_typer(model_app, name="model")
audit_app = typer.Typer(help="The audit trail: devices' chains and the server's.",
                        no_args_is_help=True)
server_app.add_typer(audit_app, name="audit")
server_app.add_typer(results_app, name="results")

DatabaseOpt = Annotated[
    str | None,
    typer.Option("--database-url", help="postgresql+psycopg://… (default: SQLite in the data dir)"),
]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="Server data directory.")]
StorageOpt = Annotated[
    str | None, typer.Option("--storage", help="file:///dir or s3://bucket?endpoint=…")
]


def _settings(database_url: str | None, data_dir: Path | None, storage: str | None,
              **extra: Any) -> Any:
    from pydantic import ValidationError

    from sync.server.settings import ServerSettings

    given: dict[str, Any] = {k: v for k, v in extra.items() if v is not None}
    if database_url:
        given["database_url"] = database_url
    if data_dir:
        given["data_dir"] = data_dir
    if storage:
        given["storage"] = storage
    try:
        return ServerSettings(**given)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors())
        raise _fail(f"invalid settings: {problems}") from exc


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=code)


@contextmanager
def server_session(
    database_url: str | None, data_dir: Path | None, storage: str | None = None
) -> Iterator[tuple[Any, Any]]:
    """A transaction on the server database (migrated first when it is the embedded one), and
    the object store opened on first use. A ``SyncError`` inside ends the command with status 2."""
    from schema.db import Database, create_engine
    from schema.errors import SchemaError
    from schema.migrate import upgrade_server
    from sync.errors import SyncError
    from sync.server.storage import open_storage

    settings = _settings(database_url, data_dir, storage)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        if settings.migrate:
            upgrade_server(settings.database)
    except SchemaError as exc:
        raise _fail(str(exc)) from exc
    db = Database(create_engine(settings.database))
    store = None
    try:
        with db.atomic() as session:
            store = _LazyStorage(settings.storage_url, open_storage)
            yield session, store
    except SyncError as exc:
        raise _fail(exc.message) from exc
    finally:
        if store is not None:
            store.close()
        db.dispose()


class _LazyStorage:
    """Opens the object store only for commands that need it."""

    def __init__(self, url: str, opener: Any) -> None:
        self._url, self._opener, self._store = url, opener, None

    def _get(self) -> Any:
        if self._store is None:
            self._store = self._opener(self._url)
        return self._store

    @property
    def description(self) -> str:
        return str(self._get().description)

    def exists(self, sha256: str) -> bool:
        return bool(self._get().exists(sha256))

    def put_file(self, sha256: str, path: Path) -> str:
        return str(self._get().put_file(sha256, path))

    def open(self, sha256: str) -> Iterator[bytes]:
        chunks: Iterator[bytes] = self._get().open(sha256)
        return chunks

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


# --- server: run, db -------------------------------------------------------------------------


@server_app.command("run")
def server_run(
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
    storage: StorageOpt = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port (0: any free port).")] = None,
    processors: Annotated[int | None, typer.Option(
        help="Queue processors: threads of this process, or with --workers processes of "
             "their own.")] = None,
    workers: Annotated[int | None, typer.Option(
        help="API processes sharing the port, beside --processors processor processes, "
             "under one supervisor (default 0: one process).")] = None,
    migrate: Annotated[bool, typer.Option(help="Migrate the database at start.")] = True,
    log_level: Annotated[str | None, typer.Option(help="DEBUG, INFO, WARNING…")] = None,
    log_format: Annotated[str | None, typer.Option(
        help="text, or json: a JSON object a line with the request's id "
             "(default: KENSA_SERVER_LOG_FORMAT, else text).")] = None,
    api_docs: Annotated[bool | None, typer.Option(
        "--api-docs/--no-api-docs",
        help="Serve /docs and /openapi.json (default: KENSA_SERVER_API_DOCS, else off).")] = None,
) -> None:
    """Run the sync server (prints {"event": "ready", "port": N} once it answers)."""
    from sync.server.run import serve

    settings = _settings(database_url, data_dir, storage, host=host, port=port,
                         processors=processors, workers=workers, migrate=migrate,
                         log_level=log_level,
                         log_format=log_format, api_docs=api_docs)
    serve(settings)


@server_app.command("process")
def server_process(
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
    once: Annotated[bool, typer.Option(help="Drain what is due, then exit.")] = False,
) -> None:
    """Run a queue processor apart from the HTTP server (any number may run at once)."""
    import signal
    import threading

    from schema.db import Database, create_engine
    from sync.server.logs import configure as configure_logging
    from sync.server.notify import Wakeup, libpq_dsn
    from sync.server.processor import QueueProcessor

    settings = _settings(database_url, data_dir, None)
    # The same lines, in the same format, as the processors inside ``kensa-server run``.
    configure_logging(settings.log_level, settings.log_format)
    db = Database(create_engine(settings.database))
    processor = QueueProcessor(db, batch=settings.processor_batch,
                               retry_s=settings.processor_retry_s)
    try:
        if once:
            typer.echo(f"applied {processor.drain()} queue rows")
            return
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            dsn = libpq_dsn(settings.database)
            processor.run(stop, settings.processor_idle_s,
                          Wakeup(dsn, poll_s=settings.processor_poll_s) if dsn else None)
    finally:
        db.dispose()


@server_db_app.command("upgrade")
def server_db_upgrade(database_url: DatabaseOpt = None, data_dir: DataDirOpt = None) -> None:
    """Create or migrate the server database."""
    from schema.errors import SchemaError
    from schema.migrate import upgrade_server

    settings = _settings(database_url, data_dir, None)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        revision = upgrade_server(settings.database)
    except SchemaError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"server database at revision {revision}")


@server_app.command("prune")
def server_prune(
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
    days: Annotated[float | None, typer.Option(help="Keep tombstones this many days.")] = None,
) -> None:
    """Drop old tombstones from the change log (devices behind them resync)."""
    from datetime import timedelta

    from sync.server.changes import prune_tombstones

    settings = _settings(database_url, data_dir, None)
    keep = days if days is not None else settings.tombstone_retention_days
    with server_session(database_url, data_dir) as (session, _):
        pruned = prune_tombstones(session, timedelta(days=keep))
    typer.echo(f"pruned {pruned} tombstones older than {keep} days")


@server_app.command("status")
def server_status(
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object instead.")] = False,
) -> None:
    """The queue, its lag and each device, as /metrics reports them (reads; migrates nothing)."""
    import sqlalchemy as sa
    from sqlalchemy.exc import SQLAlchemyError

    from schema.db import Database, create_engine
    from schema.types import utcnow
    from sync.server.db_faults import describe
    from sync.server.metrics import figures_json, figures_text, read_figures
    from sync.server.ops import server_head

    settings = _settings(database_url, data_dir, None)
    db = Database(create_engine(settings.database))
    try:
        with db.read() as session:
            revisions = [str(r) for r in session.execute(
                sa.text("SELECT version_num FROM alembic_version")).scalars()]
            figures = read_figures(session, utcnow())
    except SQLAlchemyError as exc:
        raise _fail(f"cannot read the server database: {describe(exc)}") from exc
    finally:
        db.dispose()
    head = server_head()
    if as_json:
        typer.echo(json.dumps(figures_json(figures, revisions, head)))
    else:
        typer.echo(figures_text(figures, revisions, head))


# --- server: devices -------------------------------------------------------------------------


@server_device_app.command("add")
def device_add(
    name: str,
    device_type: Annotated[
        str, typer.Option("--type", help="tablet, desktop or mobile")
    ] = "tablet",
    qr: Annotated[bool, typer.Option(
        "--qr", help="Print a one-time enrollment code and its QR instead of the token.")] = False,
    png: Annotated[Path | None, typer.Option(
        "--png", help="With --qr: also write the QR to this PNG file.")] = None,
    server_url: Annotated[str | None, typer.Option(
        "--server-url", help="The address tablets reach this server at, for the QR "
        "(default: KENSA_SERVER_PUBLIC_URL).")] = None,
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Register a device and print its token (shown once; the server keeps only a hash), or with
    --qr a short-lived one-time enrollment code the tablet's setup screen trades for it."""
    from sync.server import enrollment, masters

    settings = _settings(database_url, data_dir, None)
    url = server_url or settings.public_url
    if qr and not url:
        raise _fail("--qr needs the server's address: --server-url https://… "
                    "(or KENSA_SERVER_PUBLIC_URL)")
    with server_session(database_url, data_dir) as (session, _):
        device, token = masters.add_device(session, name, device_type)
        device_id = str(device.id)
        issued = enrollment.issue(session, device, settings.enrollment_ttl_s) if qr else None
    typer.echo(f"device {name} ({device_type}) id {device_id}")
    if issued is None:
        typer.echo(f"token: {token}")
        typer.echo("store it now: it is not shown again", err=True)
        return
    assert url is not None
    _show_enrollment(url, issued, png)


@server_device_app.command("enroll")
def device_enroll(
    name: str,
    png: Annotated[Path | None, typer.Option("--png", help="Also write the QR to a PNG.")] = None,
    server_url: Annotated[str | None, typer.Option("--server-url")] = None,
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """A new one-time enrollment code for a registered device (a reinstalled tablet)."""
    from sync.server import enrollment, masters

    settings = _settings(database_url, data_dir, None)
    url = server_url or settings.public_url
    if not url:
        raise _fail("the QR needs the server's address: --server-url https://… "
                    "(or KENSA_SERVER_PUBLIC_URL)")
    with server_session(database_url, data_dir) as (session, _):
        issued = enrollment.issue(session, masters.find_device(session, name),
                                  settings.enrollment_ttl_s)
    _show_enrollment(url, issued, png)


def _show_enrollment(url: str, issued: Any, png: Path | None) -> None:
    import io

    import qrcode

    from sync.enrollment_code import qr_text

    text = qr_text(url, issued.code)
    # The quiet zone the QR standard asks for (4 modules): with less, some readers (OpenCV's
    # among them) miss the code on a tablet's camera or in the PNG.
    code = qrcode.QRCode(border=4, error_correction=qrcode.constants.ERROR_CORRECT_M)
    code.add_data(text)
    code.make(fit=True)
    art = io.StringIO()
    code.print_ascii(out=art, invert=True)
    typer.echo(art.getvalue())
    if png is not None:
        code.make_image().save(str(png))
        typer.echo(f"QR written to {png}")
    typer.echo(f"server: {url}")
    typer.echo(f"enrollment code: {issued.code}")
    typer.echo(f"valid until {issued.expires_at.isoformat(timespec='seconds')}, once")


@server_device_app.command("token")
def device_token(name: str, database_url: DatabaseOpt = None, data_dir: DataDirOpt = None) -> None:
    """Issue a new token for a device (the old one stops working)."""
    from sync.server import masters

    with server_session(database_url, data_dir) as (session, _):
        token = masters.rotate_device_token(session, name)
    typer.echo(f"token: {token}")


@server_device_app.command("revoke")
def device_revoke(name: str, database_url: DatabaseOpt = None,
                  data_dir: DataDirOpt = None) -> None:
    """Stop a device from syncing."""
    from sync.server import masters

    with server_session(database_url, data_dir) as (session, _):
        masters.revoke_device(session, name)
    typer.echo(f"device {name} revoked")


@server_device_app.command("list")
def device_list(database_url: DatabaseOpt = None, data_dir: DataDirOpt = None) -> None:
    from sqlmodel import select

    from schema import server as s

    with server_session(database_url, data_dir) as (session, _):
        for device in session.exec(select(s.Device).order_by(s.Device.name)):
            state = "revoked" if device.revoked_at else "active"
            typer.echo(f"{device.name}\t{device.device_type}\t{device.id}\t{state}\t"
                       f"last seq {device.last_applied_seq}")


# --- server: masters -------------------------------------------------------------------------


def _json_arg(text: str | None, what: str) -> Any:
    if text is None:
        return None
    try:
        if text.startswith("@"):
            return json.loads(Path(text[1:]).read_text(encoding="utf-8"))
        return json.loads(text)
    except (OSError, ValueError) as exc:
        raise _fail(f"{what}: {exc}") from exc


@target_app.command("add")
def target_add(
    product_code: str,
    product_name: str,
    version: Annotated[str, typer.Option(help="Master version.")] = "1",
    description: Annotated[str | None, typer.Option()] = None,
    name_en: Annotated[str | None, typer.Option(help="The name in English.")] = None,
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    from sync.server import masters

    with server_session(database_url, data_dir) as (session, _):
        row = masters.add_target(session, product_code, product_name, version, description,
                                 product_name_en=name_en)
        typer.echo(f"target {row.product_code} v{row.version} id {row.id}")


@target_app.command("update")
def target_update(
    ref: Annotated[str, typer.Argument(help="Product code or id.")],
    product_code: Annotated[str | None, typer.Option("--code")] = None,
    product_name: Annotated[str | None, typer.Option("--name")] = None,
    version: Annotated[str | None, typer.Option()] = None,
    description: Annotated[str | None, typer.Option()] = None,
    name_en: Annotated[str | None, typer.Option(help="The name in English.")] = None,
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    from sync.server import masters

    with server_session(database_url, data_dir) as (session, _):
        row = masters.update_target(session, ref, product_code=product_code,
                                    product_name=product_name, version=version,
                                    description=description, product_name_en=name_en)
        typer.echo(f"target {row.product_code} v{row.version} updated")


@target_app.command("delete")
def target_delete(ref: str, database_url: DatabaseOpt = None, data_dir: DataDirOpt = None) -> None:
    from sync.server import masters

    with server_session(database_url, data_dir) as (session, _):
        masters.delete_target(session, ref)
    typer.echo(f"target {ref} deleted")


@target_app.command("list")
def target_list(database_url: DatabaseOpt = None, data_dir: DataDirOpt = None) -> None:
    from sqlmodel import select

    from schema import server as s

    with server_session(database_url, data_dir) as (session, _):
        for row in session.exec(select(s.InspectionTargetMaster)
                                .order_by(s.InspectionTargetMaster.product_code)):
            gone = " (deleted)" if row.deleted_at else ""
            typer.echo(f"{row.product_code}\tv{row.version}\t{row.product_name}{gone}")


CriteriaOpt = Annotated[
    str | None, typer.Option(help="Criteria JSON, or @file.json.")
]
DefectTypesOpt = Annotated[
    str | None,
    typer.Option(help="The defect types that apply, comma-separated (default: all)."),
]


def _codes(text: str | None) -> list[str] | None:
    return None if text is None else [c.strip() for c in text.split(",") if c.strip()]


@item_app.command("add")
def item_add(
    target: Annotated[str, typer.Argument(help="Product code or id.")],
    item_code: str,
    item_name: str,
    inspection_type: Annotated[
        str, typer.Option("--type", help="VISUAL, DIMENSION, FUNCTION, TEXT")
    ],
    order: Annotated[int, typer.Option(help="Position in the target's sequence (1…).")],
    criteria: CriteriaOpt = None,
    optional: Annotated[bool, typer.Option(help="May be skipped.")] = False,
    pipeline: Annotated[str | None, typer.Option(help="Pipeline id or name (enables AI).")] = None,
    auto_analyse: Annotated[
        bool, typer.Option(help="Analyse as soon as a photo is attached (AI items).")
    ] = True,
    defect_types: DefectTypesOpt = None,
    name_en: Annotated[str | None, typer.Option(help="The item's name in English.")] = None,
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    from sync.server import masters

    parsed = _json_arg(criteria, "criteria")
    if parsed is None:
        raise _fail("--criteria is required")
    with server_session(database_url, data_dir) as (session, _):
        row = masters.add_item(
            session, target, item_code=item_code, item_name=item_name,
            inspection_type=inspection_type, criteria=parsed, order_sequence=order,
            required=not optional, ai_enabled=pipeline is not None, pipeline_id=pipeline,
            auto_analyse=auto_analyse, defect_types=_codes(defect_types), item_name_en=name_en,
        )
        typer.echo(f"item {row.item_code} of {target} id {row.id}")


@item_app.command("update")
def item_update(
    target: str,
    item: Annotated[str, typer.Argument(help="Item code or id.")],
    item_name: Annotated[str | None, typer.Option("--name")] = None,
    criteria: CriteriaOpt = None,
    order: Annotated[int | None, typer.Option()] = None,
    required: Annotated[bool | None, typer.Option("--required/--optional")] = None,
    pipeline: Annotated[str | None, typer.Option()] = None,
    auto_analyse: Annotated[
        bool | None, typer.Option("--auto-analyse/--no-auto-analyse")
    ] = None,
    defect_types: DefectTypesOpt = None,
    name_en: Annotated[str | None, typer.Option(help="The item's name in English.")] = None,
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    from sync.server import masters

    with server_session(database_url, data_dir) as (session, _):
        row = masters.update_item(
            session, target, item, item_name=item_name, criteria=_json_arg(criteria, "criteria"),
            order_sequence=order, required=required, pipeline_id=pipeline,
            ai_enabled=True if pipeline else None, auto_analyse=auto_analyse,
            defect_types=_codes(defect_types), item_name_en=name_en,
        )
        typer.echo(f"item {row.item_code} updated")


@item_app.command("delete")
def item_delete(target: str, item: str, database_url: DatabaseOpt = None,
                data_dir: DataDirOpt = None) -> None:
    from sync.server import masters

    with server_session(database_url, data_dir) as (session, _):
        masters.delete_item(session, target, item)
    typer.echo(f"item {item} of {target} deleted")


@pipeline_app.command("add")
def pipeline_add(
    definition_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    description: Annotated[str | None, typer.Option()] = None,
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Add a pipeline, or publish a new version of the one with the same id or name."""
    from sync.server import masters

    definition = _json_arg(f"@{definition_file}", str(definition_file))
    with server_session(database_url, data_dir) as (session, _):
        row = masters.put_pipeline(session, definition, description)
        typer.echo(f"pipeline {row.name} v{row.version} id {row.id}")


@user_app.command("add")
def user_add(
    username: str,
    password: Annotated[str, typer.Option(prompt=True, hide_input=True,
                                          confirmation_prompt=True)],
    role: Annotated[str, typer.Option(help="inspector, supervisor or admin")] = "inspector",
    full_name: Annotated[str | None, typer.Option()] = None,
    email: Annotated[str | None, typer.Option()] = None,
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    from sync.server import masters

    with server_session(database_url, data_dir) as (session, _):
        row = masters.add_user(session, username, password, role=role, full_name=full_name,
                               email=email)
        typer.echo(f"user {row.username} ({row.role}) id {row.id}")


@user_app.command("update")
def user_update(
    username: str,
    password: Annotated[str | None, typer.Option()] = None,
    role: Annotated[str | None, typer.Option(help="inspector, supervisor or admin")] = None,
    full_name: Annotated[str | None, typer.Option()] = None,
    active: Annotated[bool | None, typer.Option("--active/--inactive")] = None,
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    from sync.server import masters

    with server_session(database_url, data_dir) as (session, _):
        masters.update_user(session, username, password=password, role=role,
                            full_name=full_name, is_active=active)
    typer.echo(f"user {username} updated")


@user_app.command("delete")
def user_delete(username: str, database_url: DatabaseOpt = None,
                data_dir: DataDirOpt = None) -> None:
    from sync.server import masters

    with server_session(database_url, data_dir) as (session, _):
        masters.delete_user(session, username)
    typer.echo(f"user {username} deleted")


@model_app.command("add")
def model_add(
    model_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    name: Annotated[str | None, typer.Option()] = None,
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
    storage: StorageOpt = None,
) -> None:
    """Store a model file under its SHA-256 and publish it to devices."""
    from sync.server import masters

    with server_session(database_url, data_dir, storage) as (session, store):
        row = masters.add_model(session, store, model_file, name)
        typer.echo(f"model {row.original_name} sha256:{row.checksum}")


def main() -> None:
    server_app(prog_name="kensa-server")


if __name__ == "__main__":
    main()


# --- server: results -------------------------------------------------------------------------


@results_app.command("unknown-models")
def results_unknown_models(
    limit: Annotated[int, typer.Option(min=1, max=100_000)] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """AI results made by models this server never published, newest first; exits 1 when there
    are any."""
    import json

    from sync.server import provenance

    with server_session(database_url, data_dir) as (session, _):
        found = provenance.flagged_results(session, limit=limit)
    for r in found:
        if as_json:
            typer.echo(json.dumps(r.as_json(), ensure_ascii=False))
        else:
            typer.echo(f"{r.id}\t{r.device or '-'}\t{r.pipeline_id or '-'}"
                       f" v{r.pipeline_version or '?'}\t{r.overall_result}\tunknown "
                       + ", ".join(f"sha256:{h}" for h in r.unknown_models))
    if found:
        raise typer.Exit(code=1)


# --- server: audit ---------------------------------------------------------------------------


@audit_app.command("verify")
def audit_verify(
    device: Annotated[str | None, typer.Option(
        "--device", help="Only this device's chain (its name or id; 'server' for the server's).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Verify every chain from the entries as stored, and each record against the digest of its
    newest entry; exit 1 naming the first broken entry of each chain, 0 when all is clean."""
    from sync.server import audit

    with server_session(database_url, data_dir) as (session, _):
        report = audit.verify(session, device)
    if device is not None and report.chains == 0:
        raise _fail(f"no audit chain of {device!r}")
    if as_json:
        typer.echo(audit.dumps(report))
    else:
        for problem in report.problems:
            typer.echo(problem.line())
        waiting = f", {report.skipped} waiting to be applied" if report.skipped else ""
        typer.echo(f"{report.chains} chain(s), {report.entries} entries, {report.records} "
                   f"record(s) checked{waiting}: "
                   + ("clean" if report.clean else f"{len(report.problems)} problem(s)"))
    if not report.clean:
        raise typer.Exit(code=1)
