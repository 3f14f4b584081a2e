"""The app factory: one FastAPI app per set of settings, nothing built at import time."""

from __future__ import annotations

from fastapi import FastAPI

from sidecar import __version__
from sidecar.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(title="kensa sidecar", version=__version__)
    app.state.settings = settings

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
