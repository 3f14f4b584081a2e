"""The app factory: one FastAPI app per set of settings, nothing built at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from schema.db import Database, create_sqlite_engine
from sidecar import __version__
from sidecar.api import (
    errors,
    routes_auth,
    routes_history,
    routes_jobs,
    routes_scan,
    routes_sessions,
)
from sidecar.api.guard import Guard
from sidecar.jobs.runner import JobRunner
from sidecar.settings import Settings

# The Tauri webview's origins on each platform, and the Vite dev server.
DEFAULT_ORIGINS = (
    "tauri://localhost",
    "http://tauri.localhost",
    "https://tauri.localhost",
    "http://localhost:5173",
    "http://127.0.0.1:5173",
)


def _job_runner(db: Database, settings: Settings) -> JobRunner:
    def engine() -> object:
        # Built on the first job, not at start: loading ONNX Runtime costs the ready line time.
        from sidecar.pipeline.engine import PipelineEngine
        from sidecar.pipeline.runtime import RuntimeConfig
        from sidecar.pipeline.store import ModelStore

        store = ModelStore.demo(extra_roots=[settings.models_dir])
        return PipelineEngine(store, RuntimeConfig.from_env())

    return JobRunner(db, settings.data_dir, engine, workers=settings.ai_workers)


def create_app(settings: Settings | None = None, *, db: Database | None = None) -> FastAPI:
    """Build the sidecar app. The device database must already be migrated (see launch)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = db is None
        app.state.db = db or Database(create_sqlite_engine(settings.database_path))
        runner = _job_runner(app.state.db, settings) if settings.ai_workers > 0 else None
        app.state.jobs = runner
        if runner is not None:
            runner.start()
        try:
            yield
        finally:
            if runner is not None:
                runner.stop()
            if own:
                app.state.db.dispose()

    app = FastAPI(title="kensa sidecar", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    if db is not None:
        app.state.db = db
    errors.install(app)

    @app.get("/health", tags=["system"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    app.include_router(routes_auth.router)
    app.include_router(routes_scan.router)
    app.include_router(routes_sessions.router)
    app.include_router(routes_sessions.image_router)
    app.include_router(routes_history.router)
    app.include_router(routes_jobs.router)

    token = settings.token.get_secret_value() if settings.token else None
    app.add_middleware(Guard, token=token)
    # Outermost, so preflight requests are answered before the token check.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.cors_origins or DEFAULT_ORIGINS),
        allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "X-Kensa-Session"],
    )
    return app
