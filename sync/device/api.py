"""The sidecar's sync endpoints for the settings screen and the sync badge.

    GET  /sync/status     the one sync status (``sync.device.status``, the same the event
                          stream's ``sync`` summary carries): online/offline, pending rows and
                          bytes, oldest pending, photos pending, last success, last error and
                          its kind, next attempt, operations set aside; and the connection
    POST /sync/connect    {server_url, token, replace_server_url?, server_pin?}: verify, then
                          make it the connection (an administrator only; moving a connected
                          tablet needs the current server's URL echoed back as confirmation;
                          https only but to loopback; the optional pin is the SHA-256 of the
                          server's public key, checked before the token is sent)
    POST /sync/now        start a run now; ``?wait=true`` runs it and returns its report

The sidecar mounts ``router`` and provides the service: either put it in ``app.state.sync`` or
override ``get_sync_service``. Authentication of these calls is the sidecar's (its per-launch
bearer token); who may connect is the app's to say by overriding ``authorize_connect`` (the
sidecar requires a supervisor's login), and without an override nobody may. Nothing here ever
returns the device token.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from sync.device.service import ConnectResult, RunReport, SyncService
from sync.device.status import SyncStatus
from sync.errors import AuthError, SyncError

router = APIRouter(prefix="/sync", tags=["sync"])


def get_sync_service(request: Request) -> SyncService:
    """The app's service (``app.state.sync``); apps may override this dependency instead."""
    service = getattr(request.app.state, "sync", None)
    if not isinstance(service, SyncService):
        raise HTTPException(status_code=503, detail="sync is not set up in this app")
    return service


Service = Annotated[SyncService, Depends(get_sync_service)]


def authorize_connect() -> None:
    """Whoever connects the device decides where its records go and whose logins it trusts:
    the app overrides this with its administrator check. Refuses when not overridden."""
    raise HTTPException(status_code=403, detail="connecting this device is not allowed here")


def sees_set_aside() -> bool:
    """Whether the caller may see the operations set aside, with the server's reasons (the
    app overrides this with its role check); the rest of the status, counts included, is for
    whoever may call ``/sync/status`` at all."""
    return True


_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"


class ConnectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    server_url: str = Field(min_length=1, max_length=500, pattern=_PRINTABLE)
    token: str = Field(min_length=1, max_length=500, pattern=_PRINTABLE, repr=False)
    # To move a connected tablet: the URL of the server it is connected to now, as the
    # confirmation (409 confirm_replace) showed it.
    replace_server_url: str | None = Field(default=None, max_length=500, pattern=_PRINTABLE)
    # SHA-256 of the server's SubjectPublicKeyInfo, hex or base64; empty or absent: no pin.
    server_pin: str | None = Field(default=None, max_length=200, pattern=_PRINTABLE)


class SyncNowOut(BaseModel):
    started: bool
    report: RunReport | None = None
    status: SyncStatus


def _error(exc: SyncError) -> JSONResponse:
    # The sidecar's error shape: {"error": {"code", "message", "detail"}}. A refusal by the
    # server (its 401 for the device token) is the request's fault; the server being away is a
    # gateway problem (502), not the sidecar's own failure.
    status = exc.status_code if 400 <= exc.status_code < 500 else 502
    return JSONResponse(
        status_code=status,
        content={"error": {"code": exc.code, "message": exc.message, "detail": exc.detail}},
    )


@router.get("/status")
def sync_status(service: Service, full: Annotated[bool, Depends(sees_set_aside)]) -> SyncStatus:
    status = service.status()
    return status if full else status.model_copy(update={"set_aside": []})


@router.post(
    "/connect", response_model=ConnectResult, dependencies=[Depends(authorize_connect)]
)
def sync_connect(body: ConnectIn, service: Service) -> Any:
    try:
        return service.connect(
            body.server_url, body.token, replace_server_url=body.replace_server_url,
            pin=body.server_pin,
        )
    except AuthError as exc:
        # The server refused the device token: not the caller's login, which the UI would
        # otherwise take "unauthorized" to mean.
        return _error(AuthError(exc.message, code="device_token_refused"))
    except SyncError as exc:
        return _error(exc)


@router.post("/now", response_model=SyncNowOut)
async def sync_now(service: Service, wait: bool = False) -> Any:
    if wait:
        report = await run_in_threadpool(service.run_once)
        status = await run_in_threadpool(service.status)
        return SyncNowOut(started=report.skipped is None, report=report, status=status)
    service.trigger()
    # Without a running scheduler nothing would pick the trigger up: run in a thread instead.
    if not service.scheduled:
        threading.Thread(target=service.run_once, name="kensa-sync-now", daemon=True).start()
    status = await run_in_threadpool(service.status)
    return SyncNowOut(started=True, status=status)
