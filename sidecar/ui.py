"""Serving the built web UI (``tauri-app/dist``) from the sidecar, for a plain browser.

In the Tauri shell the webview loads the UI from the app bundle and asks the shell for the
sidecar's port and launch token (the ``sidecar_endpoint`` command): the shell-launched sidecar
(``python -m sidecar``) never writes its token into a page. A plain browser has no shell to ask,
so when the operator asks for a browser UI (``kensa serve``, or ``KENSA_BROWSER_UI=1``)
``index.html`` is served with the launch token in ``<meta name="kensa-token" content="...">`` and
the UI calls the API on its own origin.

What that exposes, and to whom:

- Loopback is not private to one person: every process of every OS account on the machine can
  connect to 127.0.0.1 and GET ``/``. With the browser UI on, each of them learns the launch
  token. The token alone opens no inspection: every data route also needs a user's login, which
  takes a password (locked per client, slowed across clients: ``domain.lockout``) or a login
  token signed with a key kept outside the data folder (``security.signing_key``). What it does
  open without a login: ``/health``, ``/events`` (device-wide sync counts and opaque progress),
  and login attempts. That is why the browser UI is for an operator who chose it on a machine
  whose accounts they trust, and why the shell-launched sidecar never serves the token.
- Web pages are kept out by the browser's own rules. The guard refuses any Host that is not a
  loopback name, so a page that rebinds its own DNS name to 127.0.0.1 gets a 403, never this
  document. A page from another origin may make the browser send a GET here but cannot read the
  answer: CORS lets only the Tauri origins read (and Vite's dev server, in dev mode only).
- The page cannot be framed to read it either (``frame-ancestors 'none'``, ``X-Frame-Options``),
  and ``no-store`` keeps the per-launch token out of caches.

Static files (``/``, ``/index.html``, ``/assets/*``, the icon) are let through the guard without
the token, which the browser cannot attach to them; every API path still needs it.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

log = logging.getLogger("kensa.ui")

TOKEN_META = "kensa-token"  # noqa: S105 (the meta tag's name, not a secret)
_INDEX_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
# Root-level files besides index.html that the guard lets through (see guard.STATIC_UI_PATHS).
ROOT_FILES = ("favicon.svg", "favicon.ico")


def inject_token(page: str, token: str | None) -> str:
    """``page`` with the launch token as a meta tag in its head (unchanged without a token)."""
    if not token:
        return page
    meta = f'<meta name="{TOKEN_META}" content="{html.escape(token, quote=True)}">'
    head_end = page.find("</head>")
    if head_end < 0:
        return meta + page
    return page[:head_end] + meta + page[head_end:]


def _file_route(path: Path) -> Callable[[], FileResponse]:
    def serve() -> FileResponse:
        return FileResponse(path, headers={"Cache-Control": "no-cache"})

    return serve


def mount_ui(app: FastAPI, dist: Path) -> None:
    """Serve the built UI in ``dist`` at ``/`` and its assets; index.html carries the launch
    token only when the settings ask for a browser UI."""
    index = dist / "index.html"
    if not index.is_file():
        log.warning("no built UI at %s (run npm run build in tauri-app); not serving one", dist)
        return
    settings = app.state.settings
    token = settings.token.get_secret_value() if settings.token and settings.browser_ui else None

    def page() -> HTMLResponse:
        # Read on each request: a rebuilt UI (new hashed asset names) shows without a restart.
        return HTMLResponse(
            inject_token(index.read_text(encoding="utf-8"), token), headers=_INDEX_HEADERS
        )

    app.add_api_route("/", page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/index.html", page, methods=["GET"], include_in_schema=False)
    for name in ROOT_FILES:
        if (dist / name).is_file():
            app.add_api_route(
                f"/{name}", _file_route(dist / name), methods=["GET"], include_in_schema=False
            )
    app.mount("/assets", StaticFiles(directory=dist / "assets", check_dir=False), name="ui-assets")
