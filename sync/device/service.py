"""The device's sync service: push, pull and upload in the background, and the status the UI shows.

An APScheduler ``BackgroundScheduler`` ticks every second (``max_instances=1``); each tick asks
the pure ``SyncSchedule`` what is due — a full run, a cheap reachability probe while offline, or
nothing. Timing is on the monotonic clock, so a tablet whose wall clock jumps (or is a day wrong)
neither stalls nor hammers the server. One run at a time: the scheduler's tick, "sync now" and the
CLI share one lock.

A run is: push the outbox, pull masters, upload images. A transport failure (offline, timeout,
5xx, 429) ends the run and schedules the next attempt by the backoff policy; a 401 is retried once
with fresh credentials by the client, and if the device token itself is refused the queue is kept
and the attempt is backed off like any other failure.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import BaseModel, SecretStr
from sqlmodel import Session

from schema.db import Database
from schema.types import utcnow
from sync.device import config, state
from sync.device.client import SyncClient
from sync.device.outbox_store import SqliteOutbox
from sync.device.pull import Puller
from sync.device.push import Pusher
from sync.device.refused import fetch_refused
from sync.device.status import Live, SyncStatus, read
from sync.device.transit import TransitPolicy, parse_pin
from sync.device.upload import Uploader

if TYPE_CHECKING:
    from sidecar.keys import DataKey
from sync.errors import (
    AuthError,
    ConfirmationRequired,
    Forbidden,
    LocalFailure,
    NotConfigured,
    Offline,
    SyncError,
    TimedOut,
    TransportError,
)
from sync.policy import BackoffPolicy, Failure, SyncSchedule

log = logging.getLogger(__name__)

# Connecting with the token an enrollment code just bought, before giving it up.
ENROLL_CONNECT_ATTEMPTS = 3


def failure_of(exc: SyncError) -> Failure:
    if isinstance(exc, Offline | TimedOut):
        return Failure.OFFLINE
    if isinstance(exc, TransportError):
        return Failure.SERVER
    if isinstance(exc, AuthError | Forbidden):
        return Failure.AUTH
    return Failure.OTHER


class RunReport(BaseModel):
    ok: bool
    skipped: str | None = None
    pushed: int = 0
    set_aside: int = 0
    pulled: int = 0
    uploaded: int = 0
    uploaded_bytes: int = 0
    more_pending: bool = False
    error: str | None = None
    error_kind: str | None = None


class ConnectResult(BaseModel):
    server_url: str
    verified: bool
    device_id: str | None = None
    device_name: str | None = None
    message: str


class _QuietOverlap(logging.Filter):
    """A tick that overlaps a long run is expected (max_instances=1 skips it): not a warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances" not in record.getMessage()


_QUIET_OVERLAP = _QuietOverlap()


class SyncService:
    def __init__(
        self,
        db: Database,
        data_dir: Path,
        app_version: str,
        device_type: str = "tablet",
        transport: httpx.BaseTransport | None = None,
        *,
        interval_s: float = 30.0,
        probe_interval_s: float = 2.0,
        backoff: BackoffPolicy | None = None,
        batch_size: int = 2000,
        tick_s: float = 1.0,
        clock: Callable[[], datetime] = utcnow,
        rand: Callable[[], float] = random.random,
        on_connect: Callable[[Session, dict[str, Any]], None] | None = None,
        data_key: DataKey | None = None,
        allow_http: bool = False,
        ca_bundle: Path | None = None,
    ) -> None:
        self.db = db
        # The device's transit settings (KENSA_ALLOW_HTTP, KENSA_CA_BUNDLE); the pin is the
        # connection's own, stored with its URL.
        self.allow_http = allow_http
        self.ca_bundle = ca_bundle
        if allow_http:
            log.warning("KENSA_ALLOW_HTTP is set: plain http to a server on another machine is "
                        "allowed, and the device token and records may cross the network "
                        "unencrypted (development only)")
        # Told of a new connection inside the transaction that stores it (the sidecar's audit
        # trail): what it writes commits with the connection or not at all.
        self.on_connect = on_connect
        self.data_dir = Path(data_dir)
        self.app_version = app_version
        self.device_type = device_type
        self.transport = transport
        self.tick_s = tick_s
        self.clock = clock
        self.rand = rand
        self.schedule = SyncSchedule(
            policy=backoff or BackoffPolicy(), interval=interval_s, probe_interval=probe_interval_s
        )
        self.outbox = SqliteOutbox(db)
        self.pusher = Pusher(
            self.outbox, device_type=device_type, app_version=app_version, batch_size=batch_size
        )
        self.puller = Puller(db, self.data_dir)
        self.uploader = Uploader(db, self.data_dir, data_key=data_key)
        self._client: SyncClient | None = None
        self._client_for: tuple[str, str, str | None] | None = None
        self._run_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._running = False
        self._scheduler: Any = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        if self._scheduler is not None:
            return
        logging.getLogger("apscheduler.scheduler").addFilter(_QUIET_OVERLAP)
        # The executor logs "Running job" and "executed successfully" at INFO on every tick (each
        # second while online): a log a support person reads must hold the runs that change
        # something, which the service logs itself. A job that raises or misses its time is
        # still a warning or an error.
        logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)
        scheduler = BackgroundScheduler(daemon=True)
        scheduler.add_job(
            self._tick, "interval", seconds=self.tick_s, id="kensa-sync", max_instances=1,
            coalesce=True, misfire_grace_time=None, next_run_time=datetime.now(),
        )
        scheduler.start()
        self._scheduler = scheduler

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
        with self._state_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    @property
    def scheduled(self) -> bool:
        """Whether the background scheduler is running."""
        return self._scheduler is not None

    def trigger(self) -> None:
        """Sync as soon as possible (after a local write, or the "sync now" button)."""
        with self._state_lock:
            self.schedule.trigger(time.monotonic())

    # --- connection --------------------------------------------------------------------------

    def _connection(self) -> config.Connection | None:
        with self.db.read() as session:
            return config.load(session)

    def client(self) -> SyncClient:
        connection = self._connection()
        if connection is None:
            raise NotConfigured("connect the device to a server first")
        key = (connection.server_url, connection.token.get_secret_value(), connection.pin)
        with self._state_lock:
            if self._client is None or self._client_for != key:
                if self._client is not None:
                    self._client.close()
                    self._client = None
                self._client = SyncClient(
                    connection.server_url, connection.token, app_version=self.app_version,
                    transport=self.transport, clock=self.clock,
                    transit=self._transit(connection.pin),
                )
                self._client_for = key
            return self._client

    def _transit(self, pin: str | None) -> TransitPolicy:
        return TransitPolicy(pin=pin, ca_bundle=self.ca_bundle, allow_http=self.allow_http)

    def connect(
        self,
        server_url: str,
        token: str,
        *,
        replace_server_url: str | None = None,
        pin: str | None = None,
    ) -> ConnectResult:
        """Verify a server URL and device token with the server, then make them the connection.

        Nothing is stored until the server has accepted the token: an unreachable server, a
        refused token or a bad URL leaves the working connection exactly as it was. Moving a
        connected tablet to another server or registration needs ``replace_server_url`` equal
        to the server it is connected to now (``ConfirmationRequired`` shows both otherwise):
        the administrator confirms what they are leaving.

        A plain-http URL to another machine is refused (``InsecureUrl``); with ``pin`` (the
        SHA-256 of the server's public key, hex or base64) the token is offered only to a server
        showing that key, and every later sync checks it too.
        """
        url = config.normalise_url(server_url)
        pinned = parse_pin(pin) if pin is not None and pin.strip() else None
        secret = SecretStr(token.strip())
        probe = SyncClient(url, secret, app_version=self.app_version, transport=self.transport,
                           clock=self.clock, transit=self._transit(pinned))
        try:
            identity = probe.authenticate()
        except TransportError as exc:
            raise type(exc)(
                f"the server at {url} cannot be reached ({exc.code}); nothing was changed",
                retry_after=exc.retry_after,
            ) from exc
        finally:
            probe.close()
        if identity.device_type != self.device_type:
            log.warning("server registered this device as a %s, it runs as a %s",
                        identity.device_type, self.device_type)
        current = self._connection()
        moving = current is not None and (
            current.server_url != url or current.device_id != identity.device_id
        )
        if moving:
            assert current is not None
            shown = config.display_url(current.server_url)
            if replace_server_url is None or replace_server_url.strip().rstrip("/") != shown:
                stats = self.outbox.stats()
                raise ConfirmationRequired(
                    f"this tablet is connected to {shown} as {current.device_name}; "
                    f"confirm to move it to {url} as {identity.device_name}",
                    current_server_url=shown,
                    current_device_name=current.device_name,
                    new_server_url=url,
                    new_device_name=identity.device_name,
                    pending_rows=stats.rows,
                )
        with self.db.atomic() as session:
            config.swap(session, url, secret, identity.device_id, identity.device_name,
                        pin=pinned)
            if moving:
                # Another server's change sequence and refusals: start from its beginning.
                state.set_cursor(session, "pull", None)
                state.set_cursor(session, "conflicts", None)
            if self.on_connect is not None:
                self.on_connect(
                    session,
                    {
                        "server_url": config.display_url(url),
                        "device_id": str(identity.device_id),
                        "device_name": identity.device_name,
                        "replaced_server_url": (
                            config.display_url(current.server_url)
                            if moving and current is not None
                            else None
                        ),
                    },
                )
        # A reinstalled tablet re-using its registration must not reuse sequence numbers.
        self.outbox.bump_sequence(identity.last_applied_seq)
        self.trigger()
        if moving:
            assert current is not None
            log.warning("moved from %s (%s) to %s (%s)", config.display_url(current.server_url),
                        current.device_name, url, identity.device_name)
        else:
            log.info("connected to %s as device %s", url, identity.device_name)
        return ConnectResult(server_url=url, verified=True, device_id=identity.device_id,
                             device_name=identity.device_name, message="connected")

    def enroll(self, server_url: str, code: str, *, pin: str | None = None) -> ConnectResult:
        """Connect with a one-time enrollment code instead of a device token: the server trades
        the code for the token (once), which is then verified and stored as ``connect`` does."""
        url = config.normalise_url(server_url)
        pinned = parse_pin(pin) if pin is not None and pin.strip() else None
        probe = SyncClient(url, SecretStr(""), app_version=self.app_version,
                           transport=self.transport, clock=self.clock,
                           transit=self._transit(pinned))
        try:
            answer = probe.enroll(code.strip())
        except TransportError as exc:
            raise type(exc)(
                f"the server at {url} cannot be reached ({exc.code}); nothing was changed",
                retry_after=exc.retry_after,
            ) from exc
        finally:
            probe.close()
        # The code is spent now, and the token it bought lives only here until ``connect``
        # verifies and stores it: a connection that fails right after is tried again before the
        # token is given up, and then the message says the code is used.
        for attempt in range(ENROLL_CONNECT_ATTEMPTS):
            try:
                return self.connect(url, answer.device_token, pin=pin)
            except TransportError as exc:
                if attempt + 1 < ENROLL_CONNECT_ATTEMPTS:
                    time.sleep(min(exc.retry_after or 0.0, 5.0) or 1.0 * (attempt + 1))
                    continue
                raise type(exc)(
                    f"the server at {url} took the enrollment code but could not be reached to "
                    f"finish connecting ({exc.code}); the code is used: ask for a new one",
                    retry_after=exc.retry_after,
                ) from exc
        raise AssertionError("unreachable")  # the loop returns or raises

    # --- running -----------------------------------------------------------------------------

    def _tick(self) -> None:
        try:
            if self._connection() is None:
                return
            now = time.monotonic()
            with self._state_lock:
                due = self.schedule.due(now)
                probe = not due and self.schedule.should_probe(now)
            if due:
                self.run_once()
            elif probe:
                reachable = self.client().ping()
                with self._state_lock:
                    came_back = self.schedule.probed(time.monotonic(), reachable)
                if came_back:
                    log.info("server reachable again: syncing now")
                    self.run_once()
        except Exception:
            # A tick must never kill the scheduler's job; the next tick tries again.
            log.exception("sync tick failed")
            with self._state_lock:
                self.schedule.failed(time.monotonic(), Failure.OTHER, self._rand())

    def _rand(self) -> float:
        value = self.rand()
        return value if 0.0 <= value < 1.0 else 0.5

    def run_once(self, *, budget_s: float = 20.0) -> RunReport:
        """One push → pull → upload run; returns at once if another run is in progress."""
        if not self._run_lock.acquire(blocking=False):
            return RunReport(ok=False, skipped="busy")
        try:
            self._running = True
            return self._run(budget_s)
        finally:
            self._running = False
            self._run_lock.release()

    def _run(self, budget_s: float) -> RunReport:
        report = RunReport(ok=True)
        try:
            client = self.client()
        except NotConfigured as exc:
            return RunReport(ok=False, skipped=exc.code)
        except SyncError as exc:
            # A stored URL this version refuses (plain http to another machine), an unreadable
            # CA bundle: shown like any failed run until an administrator connects again.
            self._failed("push", exc)
            return RunReport(ok=False, error=exc.message, error_kind=exc.kind, more_pending=True)
        stream = "push"
        try:
            identity = client.identity or client.authenticate()
            self._remember_identity(identity.device_id, identity.device_name)
            # The server's registration decides the device type rows travel with.
            self.pusher.device_type = identity.device_type
            pushed = self.pusher.push(client, identity.device_id, budget_s)
            # Updates the server refused on a version conflict are shown as set aside.
            refused = fetch_refused(self.db, client)
            self._succeeded(stream)
            report.pushed, report.set_aside = pushed.pushed, pushed.set_aside + refused

            stream = "pull"
            pulled = self.puller.pull(client, budget_s)
            self._succeeded(stream)
            report.pulled = pulled.applied

            stream = "upload"
            uploaded = self.uploader.upload(client, budget_s * 3)
            self._succeeded(stream)
            report.uploaded, report.uploaded_bytes = uploaded.uploaded, uploaded.bytes
            report.more_pending = pushed.has_more or pulled.has_more or uploaded.has_more
        except SyncError as exc:
            self._failed(stream, exc)
            report.ok, report.error, report.error_kind = False, exc.message, exc.kind
            report.more_pending = True
            return report
        except Exception as exc:
            # The tablet's own side failed (its store locked or full, a pulled row it could not
            # apply): said in the status like any failed run, not left showing "online, no
            # error" over a stream that makes no progress.
            log.exception("sync %s failed on the tablet", stream)
            failure = LocalFailure(f"{type(exc).__name__}: {exc}"[:500])
            self._failed(stream, failure)
            report.ok, report.error, report.error_kind = False, failure.message, failure.kind
            report.more_pending = True
            return report
        with self._state_lock:
            self.schedule.succeeded(time.monotonic(), more_pending=report.more_pending)
        return report

    def _succeeded(self, stream: str) -> None:
        with self.db.atomic() as session:
            state.succeeded(session, stream, self.clock())

    def _failed(self, stream: str, exc: SyncError) -> None:
        retry_after = exc.retry_after if isinstance(exc, TransportError) else None
        with self._state_lock:
            delay_at = self.schedule.failed(
                time.monotonic(), failure_of(exc), self._rand(), retry_after
            )
        log.warning("sync %s failed (%s): %s; next attempt in %.1fs", stream, exc.kind,
                    exc.message, max(0.0, delay_at - time.monotonic()))
        try:
            with self.db.atomic() as session:
                state.failed(session, stream, exc.kind, exc.message, self.clock())
        except Exception:
            log.exception("could not record the sync error")

    def _remember_identity(self, device_id: str, name: str) -> None:
        connection = self._connection()
        if connection is not None and connection.device_id != device_id:
            with self.db.atomic() as session:
                config.save_identity(session, device_id, name)

    # --- status ------------------------------------------------------------------------------

    def status(self) -> SyncStatus:
        """The one sync status (``sync.device.status.read``), with what only this service's
        scheduler knows: whether a run is on, the failures in a row, the next attempt."""
        with self._state_lock:
            live = Live(
                running=self._running,
                consecutive_failures=self.schedule.failures,
                next_attempt_in_s=self.schedule.delay_until_next(time.monotonic()),
            )
        return read(self.db, now=self.clock(), live=live)
