"""A fault-injecting TCP proxy for the sync fault tests (asyncio, in a background thread).

Every connection through it draws one behaviour: pass (possibly closed early), drop at once,
delay every chunk, reset (RST) after some bytes, answer 503 or 429 without forwarding, or forward
the request and cut the answer short. The draws come from a seeded RNG, so a failing run can be
replayed; ``counts`` says what was injected.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field

FAULTS = ("pass", "drop", "delay", "reset", "http503", "http429", "truncate", "close_early")


@dataclass
class FaultProxy:
    target_port: int
    seed: int = 0
    # Relative weights of the behaviours while faults are on.
    weights: dict[str, float] = field(
        default_factory=lambda: {
            "pass": 4.0, "drop": 1.0, "delay": 1.0, "reset": 1.0, "http503": 1.0,
            "http429": 0.5, "truncate": 1.0, "close_early": 1.0,
        }
    )
    enabled: bool = True
    port: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _server: asyncio.AbstractServer | None = None
    _rng: random.Random = field(default_factory=random.Random)
    _open: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        self._rng.seed(self.seed)
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", self.port)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fault-proxy", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        self._loop = None

    def cut_all(self) -> None:
        """Abort every connection now open (so pooled keep-alive connections draw again)."""
        loop = self._loop
        if loop is None:
            return

        def cut() -> None:
            for writer in list(self._open):
                self._abort(writer)

        loop.call_soon_threadsafe(cut)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # --- connections -------------------------------------------------------------------------

    def _draw(self) -> str:
        if not self.enabled:
            return "pass"
        names = list(self.weights)
        return self._rng.choices(names, weights=[self.weights[n] for n in names])[0]

    @staticmethod
    def _abort(writer: asyncio.StreamWriter, rst: bool = False) -> None:
        if rst:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        fault = self._draw()
        self.counts[fault] += 1
        self._open.add(client_w)
        try:
            if fault == "drop":
                self._abort(client_w)
                return
            if fault in ("http503", "http429"):
                await self._refuse(client_r, client_w, 503 if fault == "http503" else 429)
                return
            try:
                up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
            except OSError:
                self.counts["upstream_down"] += 1
                self._abort(client_w)
                return
            limit_up = limit_down = None
            delay = 0.0
            if fault == "delay":
                delay = self._rng.uniform(0.01, 0.2)
            elif fault == "reset":
                limit_up = self._rng.randint(0, 4000)
                limit_down = self._rng.randint(0, 400)
            elif fault == "truncate":
                limit_down = self._rng.randint(1, 300)
            # Keep-alive would let one lucky connection carry every request: even a passing
            # connection lives only a few seconds, so faults keep being drawn.
            lifetime: float | None = None
            if fault == "close_early":
                lifetime = self._rng.uniform(0.05, 1.0)
            elif fault in ("pass", "delay") and self.enabled:
                lifetime = self._rng.uniform(0.5, 5.0)
            pumps = [
                asyncio.ensure_future(self._pump(client_r, up_w, limit_up, delay)),
                asyncio.ensure_future(self._pump(up_r, client_w, limit_down, delay)),
            ]
            try:
                done, _ = await asyncio.wait(pumps, timeout=lifetime,
                                             return_when=asyncio.FIRST_COMPLETED)
                if done and fault in ("pass", "delay"):
                    # One direction ended by itself (half-close): let the other finish.
                    await asyncio.wait(pumps, timeout=30)
            finally:
                for pump in pumps:
                    pump.cancel()
                rst = fault == "reset"
                self._abort(client_w, rst)
                self._abort(up_w, rst)
        except (ConnectionError, OSError, asyncio.CancelledError):
            self._abort(client_w)
        finally:
            self._open.discard(client_w)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    limit: int | None, delay: float) -> None:
        sent = 0
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                with contextlib.suppress(OSError):
                    if writer.can_write_eof():
                        writer.write_eof()
                return
            if limit is not None and sent + len(chunk) > limit:
                writer.write(chunk[: max(0, limit - sent)])
                with contextlib.suppress(ConnectionError, OSError):
                    await writer.drain()
                return
            if delay:
                await asyncio.sleep(delay)
            writer.write(chunk)
            sent += len(chunk)
            await writer.drain()

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      status: int) -> None:
        with contextlib.suppress(asyncio.TimeoutError, asyncio.IncompleteReadError):
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
        reason = "Service Unavailable" if status == 503 else "Too Many Requests"
        body = b'{"error": {"code": "injected", "message": "fault proxy", "detail": {}}}'
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Retry-After: 1\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            .encode() + body
        )
        with contextlib.suppress(ConnectionError, OSError):
            await writer.drain()
        self._abort(writer)
