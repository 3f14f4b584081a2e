"""What one running server holds: settings, database, object store, signing secret, processors.

Made by the app factory and kept in ``app.state.kensa``; request handlers reach it through
``server_state(request)``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from fastapi import Request

from schema import server as s
from schema.db import Database, create_engine
from sync.errors import AuthError
from sync.server.admin_auth import AdminGate, TokenBucket
from sync.server.auth import AccessClaim, DeviceIdentity, identity, load_secret
from sync.server.backpressure import LagReading, Limits, PushGate
from sync.server.changes import epoch
from sync.server.files import clear_staging
from sync.server.masters import dummy_password_hash, password_matches
from sync.server.notify import Wakeup, libpq_dsn
from sync.server.processor import QueueProcessor
from sync.server.push import apply_lag_s
from sync.server.settings import ServerSettings
from sync.server.storage import Storage, open_storage

log = logging.getLogger(__name__)

@dataclass
class ServerState:
    settings: ServerSettings
    db: Database
    admin_gate: AdminGate
    # Wrong enrollment codes: per client address, and across all clients (many addresses).
    enroll_limit: TokenBucket
    enroll_limit_all: TokenBucket
    storage: Storage | None = None
    # Backpressure on pushes (sync.server.backpressure), made by create().
    push_gate: PushGate | None = None
    apply_lag: LagReading | None = None
    _secret: bytes | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    @classmethod
    def create(cls, settings: ServerSettings) -> ServerState:
        gate = AdminGate(
            verify=password_matches, dummy_hash=dummy_password_hash,
            burst=settings.admin_login_burst, refill_s=settings.admin_login_refill_s,
        )
        limit = TokenBucket(burst=settings.enrollment_burst,
                            refill_s=settings.enrollment_refill_s)
        state = cls(settings=settings, db=Database(create_engine(settings.database)),
                    admin_gate=gate, enroll_limit=limit,
                    enroll_limit_all=TokenBucket(burst=settings.enrollment_burst * 10,
                                                 refill_s=settings.enrollment_refill_s / 10))
        state.push_gate = PushGate(Limits(rows_per_s=settings.push_rows_per_s,
                                          burst_rows=settings.push_burst_rows,
                                          max_lag_s=settings.max_apply_lag_s))
        state.apply_lag = LagReading(lambda: apply_lag_s(state.db))
        return state

    def start(self) -> None:
        self.storage = open_storage(self.settings.storage_url)
        clear_staging(self.settings.staging_dir)
        with self.db.atomic() as session:
            self._secret = load_secret(session)
            epoch(session)
        for index in range(self.settings.processors):
            processor = QueueProcessor(
                self.db, batch=self.settings.processor_batch,
                retry_s=self.settings.processor_retry_s,
            )
            dsn = libpq_dsn(self.settings.database)
            wakeup = Wakeup(dsn, poll_s=self.settings.processor_poll_s) if dsn else None
            thread = threading.Thread(
                target=processor.run, args=(self._stop, self.settings.processor_idle_s, wakeup),
                name=f"kensa-queue-{index}", daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()
        if self.storage is not None:
            self.storage.close()
        self.db.dispose()

    def secret(self) -> bytes:
        if self._secret is None:
            with self._lock, self.db.atomic() as session:
                self._secret = load_secret(session)
        return self._secret

    def the_storage(self) -> Storage:
        if self.storage is None:
            self.storage = open_storage(self.settings.storage_url)
        return self.storage

    def device(self, claim: AccessClaim) -> DeviceIdentity:
        """The device behind a genuine access token, if it is still registered, not revoked,
        and its token has not been rotated since the access token was issued.

        Read on every request, not cached: one primary-key lookup, and a rotation or revocation
        takes effect on the next request on every server process.
        """
        with self.db.read() as session:
            row = session.get(s.Device, claim.device_id)
            if row is None or row.revoked_at is not None:
                raise AuthError("device unknown or revoked", code="device_revoked")
            if row.token_generation != claim.generation:
                raise AuthError("the device token was rotated; authenticate again",
                                code="token_expired")
            return identity(row)


def server_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.kensa
    return state
