"""What one running server holds: settings, database, object store, signing secret, processors.

Made by the app factory and kept in ``app.state.kensa``; request handlers reach it through
``server_state(request)``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field

from fastapi import Request

from schema import server as s
from schema.db import Database, create_engine
from sync.errors import AuthError
from sync.server.auth import DeviceIdentity, identity, load_secret
from sync.server.changes import epoch
from sync.server.files import clear_staging
from sync.server.processor import QueueProcessor
from sync.server.settings import ServerSettings
from sync.server.storage import Storage, open_storage

log = logging.getLogger(__name__)

# A revoked device is refused within this many seconds on every server process.
DEVICE_CACHE_S = 5.0


@dataclass
class ServerState:
    settings: ServerSettings
    db: Database
    storage: Storage | None = None
    _secret: bytes | None = None
    _devices: dict[uuid.UUID, tuple[DeviceIdentity | None, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    @classmethod
    def create(cls, settings: ServerSettings) -> ServerState:
        return cls(settings=settings, db=Database(create_engine(settings.database)))

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
            thread = threading.Thread(
                target=processor.run, args=(self._stop, self.settings.processor_idle_s),
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

    def device(self, device_id: uuid.UUID) -> DeviceIdentity:
        """The device behind a valid access token, if it is still registered and not revoked."""
        now = time.monotonic()
        cached = self._devices.get(device_id)
        if cached is None or cached[1] < now:
            with self.db.read() as session:
                row = session.get(s.Device, device_id)
                found = identity(row) if row is not None and row.revoked_at is None else None
            self._devices[device_id] = (found, now + DEVICE_CACHE_S)
            cached = self._devices[device_id]
        if cached[0] is None:
            raise AuthError("device unknown or revoked", code="device_revoked")
        return cached[0]


def server_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.kensa
    return state
