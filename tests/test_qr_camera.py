"""sidecar.qr.camera.FrameVoter: which run of frames decides a code, and which does not."""

from __future__ import annotations

import pytest

from sidecar.qr.camera import FrameVoter
from sidecar.qr.decode import Code

LABEL = "BRK-100_A12-3456_20261127T0800"
CLEAN = Code(LABEL, "QR_CODE", "half", 1.0)            # no error corrected
WORN = Code(LABEL, "QR_CODE", "region", 0.2)           # most of the error correction spent
MISREAD = Code("BRK-100_A12-3458_20261127T0800", "QR_CODE", "region", 0.1)
BAR = Code("BRK-100_A12", "CODE_128", "half", None)    # 1-D: no error correction to report
ZBAR = Code(LABEL, "QR_CODE", "zbar", None)
OTHER_FORMAT = Code(LABEL, "DATA_MATRIX", "region", 0.2)

# (frames fed in order, what each feed answers)
CASES = [
    pytest.param([[CLEAN]], [CLEAN], id="confident-first-read-wins"),
    pytest.param([[], [], [CLEAN]], [None, None, CLEAN], id="empty-frames-then-confident"),
    pytest.param([[WORN], [WORN]], [None, WORN], id="damaged-needs-a-second-frame"),
    pytest.param([[WORN], [], [], [WORN]], [None, None, None, WORN],
                 id="agreement-across-empty-frames"),
    pytest.param([[WORN], [MISREAD], [MISREAD]], [None, None, MISREAD],
                 id="the-text-two-frames-agree-on"),
    pytest.param([[WORN], [MISREAD], [WORN]], [None, None, WORN], id="alternating"),
    pytest.param([[BAR], [BAR]], [None, BAR], id="code128-needs-agreement"),
    pytest.param([[ZBAR], [WORN]], [None, WORN], id="zbar-and-zxing-agree"),
    pytest.param([[WORN], [OTHER_FORMAT]], [None, None], id="same-text-other-symbology"),
    pytest.param([[WORN], [CLEAN]], [None, CLEAN], id="confident-read-after-damaged"),
    pytest.param([[WORN, BAR], [BAR]], [None, BAR], id="two-codes-in-a-frame"),
    pytest.param([[CLEAN], [MISREAD], [MISREAD]], [CLEAN, CLEAN, CLEAN],
                 id="decided-stays-decided"),
]


@pytest.mark.parametrize(("frames", "answers"), CASES)
def test_frames_decide(frames: list[list[Code]], answers: list[Code | None]) -> None:
    voter = FrameVoter()
    got = [voter.feed(frame) for frame in frames]
    assert got == answers
    # Equality ignores stage and error correction: check the very code answered.
    assert [g if g is None else (g.stage, g.unused_ec) for g in got] == [
        a if a is None else (a.stage, a.unused_ec) for a in answers]


def test_reads_older_than_the_window_are_forgotten() -> None:
    voter = FrameVoter(window=3)
    assert voter.feed([WORN]) is None
    for _ in range(3):
        assert voter.feed([]) is None
    assert voter.feed([WORN]) is None  # the first read has left the window
    assert voter.feed([WORN]) == WORN


def test_three_frames_when_asked() -> None:
    voter = FrameVoter(agree=3)
    assert [voter.feed([WORN]) for _ in range(3)] == [None, None, WORN]


def test_reset_starts_the_next_label() -> None:
    voter = FrameVoter()
    assert voter.feed([CLEAN]) == CLEAN
    voter.reset()
    assert voter.decided is None
    assert voter.feed([WORN]) is None


def test_confidence_threshold_is_the_unused_error_correction() -> None:
    voter = FrameVoter(confident_unused_ec=0.25)
    assert voter.feed([Code(LABEL, "QR_CODE", "region", 0.25)]) is not None


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"agree": 1}, "agree must be at least 2"),
    ({"agree": 4, "window": 3}, "window (3) must hold at least agree (4)"),
])
def test_bad_settings_are_refused(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        FrameVoter(**kwargs)
