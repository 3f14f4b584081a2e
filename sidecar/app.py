"""The app factory: one FastAPI app per set of settings, nothing built at import time."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from sqlmodel import col, select

from schema import device as d
from schema.db import Database, create_sqlite_engine
from sidecar import __version__, audit, events, security
from sidecar.api import (
    errors,
    openapi,
    params,
    routes_audit,
    routes_auth,
    routes_calibration,
    routes_events,
    routes_history,
    routes_jobs,
    routes_refusals,
    routes_rejudge,
    routes_scan,
    routes_sessions,
    routes_setup,
)
from sidecar.api.announce import AnnounceChanges
from sidecar.api.deps import SESSION_HEADER, enforce, get_current_user
from sidecar.api.guard import Guard
from sidecar.api.push_soon import PushSoon
from sidecar.api.schemas import HealthPublic
from sidecar.api.tickets import EventTickets
from sidecar.domain import access
from sidecar.domain.access import Action
from sidecar.errors import KensaError
from sidecar.jobs.runner import JobRunner
from sidecar.keys import DataKey
from sidecar.qr.camera import CameraStreams
from sidecar.settings import Settings
from sidecar.ui import mount_ui
from sync.device import api as sync_api
from sync.device.service import SyncService

log = logging.getLogger("kensa.sidecar")

# The Tauri webview's origins on each platform.
DEFAULT_ORIGINS = (
    "tauri://localhost",
    "http://tauri.localhost",
    "https://tauri.localhost",
)
# The Vite dev server, allowed only in dev mode (KENSA_DEV=1): any local process can listen on
# 5173 and would otherwise read the API's answers from a browser tab.
DEV_ORIGINS = ("http://localhost:5173", "http://127.0.0.1:5173")


def cors_origins(settings: Settings) -> list[str]:
    origins = list(settings.cors_origins or DEFAULT_ORIGINS)
    return origins + [o for o in DEV_ORIGINS if o not in origins] if settings.dev else origins


def _job_runner(db: Database, settings: Settings, data_key: DataKey | None) -> JobRunner:
    def engine() -> object:
        # Built on the first job, not at start: loading ONNX Runtime costs the ready line time.
        from sidecar.pipeline.engine import PipelineEngine
        from sidecar.pipeline.runtime import RuntimeConfig, ort_build, requested_providers
        from sidecar.pipeline.store import ModelStore

        store = ModelStore.for_device(settings.models_dir)
        config = RuntimeConfig.from_env()
        # What a support person asks first about a slow or failing judgment; each model's log
        # line says if its session got another provider.
        log.info("AI engine: %s; sessions ask for %s", ort_build(),
                 ", ".join(requested_providers(config)))
        return PipelineEngine(store, config)

    return JobRunner(
        db, settings.data_dir, engine, workers=settings.ai_workers, publish=events.publish,
        data_key=data_key,
    )


def _sync_service(db: Database, settings: Settings, data_key: DataKey | None) -> SyncService:
    # Push, pull and upload run in the background as soon as a server is connected
    # (POST /sync/connect or `kensa device connect`); until then each tick finds nothing to do.
    return SyncService(
        db,
        settings.data_dir,
        app_version=__version__,
        device_type=settings.device_type,
        interval_s=settings.sync_interval_s,
        on_connect=audit.connected,
        allow_http=settings.allow_http,
        ca_bundle=settings.ca_bundle,
        data_key=data_key,
    )


def _warm_up(
    runner: JobRunner, db: Database, serving: threading.Event, stopping: threading.Event
) -> None:
    """Load and warm the models of every cached pipeline, so the first photo is judged as fast
    as the rest; the UI shows this as a progress bar.

    Only once the sidecar is serving (its ready line is out): importing ONNX Runtime and OpenCV
    and building the sessions takes the interpreter for a second or more, which the start to the
    login screen must not wait for."""
    while not serving.wait(0.05):
        if stopping.is_set():
            return
    with db.read() as session:
        pipelines = session.exec(
            select(d.Pipeline).where(col(d.Pipeline.deleted_at).is_(None))
        ).all()
    for n, pipeline in enumerate(pipelines, start=1):
        if stopping.is_set():
            # A stop asked for right after the ready line waits for one pipeline, not all.
            return
        percentage = 100.0 * (n - 1) / len(pipelines)
        events.publish("warmup", {"id": pipeline.id, "stage": "loading", "percentage": percentage})
        try:
            runner.engine().compile(pipeline.definition)
        except KensaError as exc:
            # The item will show the same error when it runs; warm-up only reports it.
            log.warning("pipeline %s cannot be prepared: %s", pipeline.id, exc.message)
        except Exception:
            log.exception("warming up pipeline %s failed", pipeline.id)
    if pipelines:
        events.publish("warmup", {"id": "all", "stage": "ready", "percentage": 100.0})


def _connect_checked_by_the_table() -> None:
    """``enforce`` has already refused every role without ``connect``."""


def _sees_set_aside(request: Request) -> bool:
    """The operations the server set aside, with its reasons, only for a login whose role has
    ``set_aside``; the status (counts included) is the status bar's, open to the launch token."""
    token = request.headers.get(SESSION_HEADER)
    if not token:
        return False
    try:
        user = get_current_user(request, request.app.state.db, request.app.state.signing_key, token)
    except KensaError:
        return False
    return access.may_do(user.role, Action.SET_ASIDE)


def create_app(
    settings: Settings | None = None,
    *,
    db: Database | None = None,
    data_key: DataKey | None = None,
    serving: threading.Event | None = None,
) -> FastAPI:
    """Build the sidecar app. The device database must already be migrated (see launch).
    ``data_key`` opens the store and its photos; None only for a plaintext development store.
    ``serving``: set once the ready line is out (``launch``), which the model warm-up waits
    for; without one it starts with the app."""
    settings = settings or Settings()
    if serving is None:
        serving = threading.Event()
        serving.set()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = db is None
        app.state.db = db or Database(create_sqlite_engine(settings.database_path, key=data_key))
        audit.record_made_keys(app.state.db)
        if app.state.signing_key is None:
            app.state.signing_key = security.signing_key_in_store(app.state.db)
        runner = (
            _job_runner(app.state.db, settings, data_key) if settings.ai_workers > 0 else None
        )
        app.state.jobs = runner
        sync = _sync_service(app.state.db, settings, data_key) if settings.sync_enabled else None
        app.state.sync = sync
        if sync is not None:
            sync.start()
        warm: threading.Thread | None = None
        stopping = threading.Event()
        if runner is not None:
            runner.start()
            warm = threading.Thread(
                target=_warm_up,
                args=(runner, app.state.db, serving, stopping),
                name="warm-up",
                daemon=True,
            )
            warm.start()
        try:
            yield
        finally:
            events.hub.close_all()
            stopping.set()
            if warm is not None:
                # ONNX Runtime aborts the process if it is torn down while a session is being
                # created on another thread: let a warm-up in progress finish first.
                warm.join()
            if runner is not None:
                runner.stop()
            if sync is not None:
                sync.stop()
            if own:
                app.state.db.dispose()

    # Every route's path and query parameters are checked once, here (sidecar.api.params).
    app = FastAPI(
        title="kensa sidecar",
        version=__version__,
        lifespan=lifespan,
        dependencies=[Depends(params.check_params), Depends(enforce)],
    )
    app.state.settings = settings
    app.state.data_key = data_key
    # Loaded once, at build: a damaged key file stops the start instead of the first login. With
    # a data key it lives in the encrypted store instead, read once the store is open.
    in_store = data_key is not None and settings.signing_key is None
    app.state.signing_key = None if in_store else security.signing_key(settings)
    if db is not None:
        app.state.db = db
    errors.install(app)
    openapi.install(app)

    @app.get("/health", tags=["system"])
    def health() -> HealthPublic:
        return HealthPublic(status="ok", version=__version__, encrypted=data_key is not None)

    app.include_router(routes_auth.router)
    app.include_router(routes_auth.users_router)
    app.include_router(routes_scan.router)
    app.include_router(routes_sessions.router)
    app.include_router(routes_rejudge.router)
    app.include_router(routes_sessions.image_router)
    app.include_router(routes_history.router)
    app.include_router(routes_audit.router)
    app.include_router(routes_jobs.router)
    app.include_router(routes_events.router)
    app.include_router(sync_api.router)
    app.include_router(routes_refusals.router)
    app.include_router(routes_refusals.set_aside_router)
    app.include_router(routes_setup.router)
    app.include_router(routes_calibration.router)
    # Re-pointing the tablet decides where its records go and whose logins it trusts: the
    # route table (``connect``, admins only) decides who may, in ``enforce``.
    app.dependency_overrides[sync_api.authorize_connect] = _connect_checked_by_the_table
    app.dependency_overrides[sync_api.sees_set_aside] = _sees_set_aside
    if settings.ui_dist:
        mount_ui(app, settings.ui_dist)

    token = settings.token.get_secret_value() if settings.token else None
    # Innermost: what a request writes names the user its login check found.
    app.add_middleware(audit.RequestContext)
    app.add_middleware(PushSoon)
    app.add_middleware(AnnounceChanges)
    app.state.event_tickets = EventTickets()
    app.state.camera_streams = CameraStreams()
    app.add_middleware(Guard, token=token, tickets=app.state.event_tickets)
    # Outermost, so preflight requests are answered before the token check.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=cors_origins(settings),
        allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "X-Kensa-Session", "X-Kensa-Client"],
    )
    return app
