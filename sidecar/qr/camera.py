"""Camera mode: decide from consecutive frames when a code has been read.

A camera delivers frames continuously, and the decoder answers for each one alone. A read whose
symbol needed little of its error correction is as good as it gets and wins at once; a damaged
one (most of the error correction spent), a Code 128 read (a single mod-103 check character) or a
read from ZBar (which does not say) could be the one wrong read in many thousands, so it wins
only when another frame among the last few reads the same text in the same symbology. Pure:
no camera, no clock, no I/O; the caller feeds it what :func:`sidecar.qr.decode.decode_image`
returned for each frame.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Names only: the app builds its stream registry at start, before OpenCV and zxing-cpp load.
    from sidecar.qr.decode import Code

__all__ = ["CONFIDENT_UNUSED_EC", "CameraStreams", "FrameVoter"]

CONFIDENT_UNUSED_EC = 0.5
"""A read that left at least this share of its error correction unused is confident."""


class FrameVoter:
    """Feed it each frame's codes; it answers the code once one is read for sure, else ``None``.

    ``agree``: how many frames must read a code that is not confident (2: the frame and one
    more). ``window``: how many of the latest frames count for that agreement; older reads are
    forgotten, so a misread long ago cannot pair with one now. Once decided it keeps answering
    the same code until :meth:`reset`.
    """

    def __init__(self, *, agree: int = 2, window: int = 8,
                 confident_unused_ec: float = CONFIDENT_UNUSED_EC) -> None:
        if agree < 2:
            raise ValueError(f"agree must be at least 2 frames, got {agree}")
        if window < agree:
            raise ValueError(f"window ({window}) must hold at least agree ({agree}) frames")
        self.agree = agree
        self.confident_unused_ec = confident_unused_ec
        self._recent: deque[frozenset[tuple[str, str]]] = deque(maxlen=window)
        self._decided: Code | None = None

    @property
    def decided(self) -> Code | None:
        return self._decided

    def confident(self, code: Code) -> bool:
        return code.unused_ec is not None and code.unused_ec >= self.confident_unused_ec

    def feed(self, codes: Iterable[Code]) -> Code | None:
        """Take one frame's codes (``[]`` for a frame that read nothing)."""
        if self._decided is not None:
            return self._decided
        frame = list(codes)
        for code in frame:
            if self.confident(code):
                self._decided = code
                return code
        self._recent.append(frozenset((c.text, c.format) for c in frame))
        for code in frame:
            key = (code.text, code.format)
            if sum(key in seen for seen in self._recent) >= self.agree:
                self._decided = code
                return code
        return None

    def reset(self) -> None:
        """Forget everything: the next label."""
        self._recent.clear()
        self._decided = None


class CameraStreams:
    """The voters of the camera views open now, one per key (a user and the view's stream id).

    A view that closes says nothing, so a stream is forgotten once it has sent no frame for
    ``idle_s`` seconds; and since each opening of a view picks a new id, at most ``max_streams``
    are kept, the one that sent a frame least recently dropped first: a tablet's memory must
    not grow with the number of scans. ``clock`` answers seconds (monotonic: a wall clock set
    back would keep dead streams alive). Safe to share between threads.
    """

    def __init__(self, *, max_streams: int = 32, idle_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic,
                 voter: Callable[[], FrameVoter] = FrameVoter) -> None:
        if max_streams < 1:
            raise ValueError(f"max_streams must be at least 1, got {max_streams}")
        if idle_s <= 0:
            raise ValueError(f"idle_s must be positive, got {idle_s}")
        self.max_streams = max_streams
        self.idle_s = idle_s
        self._clock = clock
        self._make = voter
        self._lock = threading.Lock()
        # Least recently fed first: eviction takes from the front.
        self._streams: OrderedDict[Hashable, tuple[float, FrameVoter]] = OrderedDict()

    def __len__(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return len(self._streams)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            self._expire(self._clock())
            return key in self._streams

    def feed(self, key: Hashable, codes: Iterable[Code]) -> Code | None:
        """Feed one frame of stream ``key``; the code once decided, else ``None``.

        A decided stream is forgotten at once: the view closes on its answer, and one that
        scans on (the product was unknown, say) starts the next label from nothing.
        """
        with self._lock:
            now = self._clock()
            self._expire(now)
            entry = self._streams.pop(key, None)
            voter = entry[1] if entry is not None else self._make()
            decided = voter.feed(codes)
            if decided is not None:
                return decided
            self._streams[key] = (now, voter)
            while len(self._streams) > self.max_streams:
                self._streams.popitem(last=False)
            return None

    def _expire(self, now: float) -> None:
        while self._streams:
            key, (seen, _) = next(iter(self._streams.items()))
            if now - seen < self.idle_s:
                break
            del self._streams[key]
