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

from collections import deque
from collections.abc import Iterable

from sidecar.qr.decode import Code

__all__ = ["CONFIDENT_UNUSED_EC", "FrameVoter"]

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
