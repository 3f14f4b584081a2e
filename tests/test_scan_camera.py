"""Camera mode of ``POST /scan``: frames of one camera view vote until a code is read for sure.

The registry of streams is table-tested with a clock the test moves; the route runs in the real
sidecar app (``TestClient`` with its lifespan, on a byte copy of one seeded device file per test)
with frames the real decoder reads: a clean QR code (confident), a photographed Code 128 label
(never confident), a frame holding two labels.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from sidecar.app import create_app
from sidecar.qr.camera import CameraStreams
from sidecar.qr.decode import Code, decode_image
from sidecar.settings import Settings
from tests.support.device_state import Template, make_template
from tests.support.qr_corpus import printed_photo
from tests.support.seed import QR_JSON, qr_png

TOKEN = "t"
PNG = {"Content-Type": "image/png"}
CSV_LABEL = "WO-1,INS-1,BRK-100,M-01,2026-01-05,7"

# --- the registry ----------------------------------------------------------------------------

WEAK = Code("A", "CODE_128")
OTHER = Code("B", "CODE_128")
SURE = Code("Q", "QR_CODE", unused_ec=1.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# Each step: seconds since the start, the stream fed, its frame, the answer, then the streams
# kept afterwards (max_streams=3, idle_s=60).
# fmt: off
REGISTRY_CASES: dict[str, list[tuple[float, str, list[Code], Code | None, set[str]]]] = {
    "confident-at-once": [
        (0, "s1", [SURE], SURE, set()),
    ],
    "weak-needs-a-second-frame": [
        (0, "s1", [WEAK], None, {"s1"}),
        (1, "s1", [WEAK], WEAK, set()),
    ],
    "streams-do-not-mix": [
        (0, "s1", [WEAK], None, {"s1"}),
        (1, "s2", [WEAK], None, {"s1", "s2"}),
        (2, "s2", [OTHER], None, {"s1", "s2"}),
        (3, "s1", [WEAK], WEAK, {"s2"}),
    ],
    "decided-stream-starts-over": [
        (0, "s1", [WEAK], None, {"s1"}),
        (1, "s1", [WEAK], WEAK, set()),
        (2, "s1", [WEAK], None, {"s1"}),
    ],
    "least-recent-dropped": [
        (0, "s1", [WEAK], None, {"s1"}),
        (1, "s2", [], None, {"s1", "s2"}),
        (2, "s3", [], None, {"s1", "s2", "s3"}),
        (3, "s1", [], None, {"s1", "s2", "s3"}),
        (4, "s4", [], None, {"s1", "s3", "s4"}),
        # s1 was fed again at 3, so it outlived s2 and still holds its first read.
        (5, "s1", [WEAK], WEAK, {"s3", "s4"}),
    ],
    "idle-forgotten": [
        (0, "s1", [WEAK], None, {"s1"}),
        (60, "s1", [WEAK], None, {"s1"}),
    ],
    "just-before-idle-kept": [
        (0, "s1", [WEAK], None, {"s1"}),
        (59.9, "s1", [WEAK], WEAK, set()),
    ],
    "idle-measured-from-last-frame": [
        (0, "s1", [], None, {"s1"}),
        (50, "s1", [WEAK], None, {"s1"}),
        (100, "s2", [], None, {"s1", "s2"}),
        (109.9, "s1", [WEAK], WEAK, {"s2"}),
    ],
    "idle-expires-others-too": [
        (0, "s1", [WEAK], None, {"s1"}),
        (30, "s2", [], None, {"s1", "s2"}),
        (61, "s3", [], None, {"s2", "s3"}),
    ],
}
# fmt: on


@pytest.mark.parametrize("steps", REGISTRY_CASES.values(), ids=REGISTRY_CASES.keys())
def test_registry(steps: list[tuple[float, str, list[Code], Code | None, set[str]]]) -> None:
    clock = Clock()
    streams = CameraStreams(max_streams=3, idle_s=60, clock=clock)
    start = clock.now
    for at, key, frame, answer, kept in steps:
        clock.now = start + at
        assert streams.feed(key, frame) == answer, (at, key)
        assert {k for k in ("s1", "s2", "s3", "s4") if k in streams} == kept, (at, key)
        assert len(streams) == len(kept)


def test_registry_refuses_nonsense_limits() -> None:
    with pytest.raises(ValueError, match="max_streams"):
        CameraStreams(max_streams=0)
    with pytest.raises(ValueError, match="idle_s"):
        CameraStreams(idle_s=0)


# --- frames ----------------------------------------------------------------------------------


def png(gray: Any) -> bytes:
    ok, encoded = cv2.imencode(".png", gray)
    assert ok
    return bytes(encoded.tobytes())


def label(batch: str) -> Any:
    text = json.dumps({"product_id": "BRK-100", "batch_id": batch, "serial": "0098172"})
    return cv2.imdecode(np.frombuffer(qr_png(text), np.uint8), cv2.IMREAD_GRAYSCALE)


def two_labels() -> tuple[bytes, tuple[int, int, int, int], tuple[int, int, int, int]]:
    """A frame with label B-LEFT on the left and B-RIGHT on the right, and the box of each."""
    left, right = label("B-LEFT"), label("B-RIGHT")
    h, w = left.shape
    gap = 80
    canvas = np.full((h + 2 * gap, 2 * w + 3 * gap), 255, np.uint8)
    canvas[gap:gap + h, gap:gap + w] = left
    canvas[gap:gap + h, 2 * gap + w:2 * gap + 2 * w] = right[:h, :w]
    half = canvas.shape[1] // 2
    return png(canvas), (0, 0, half, canvas.shape[0]), (half, 0, half, canvas.shape[0])


@pytest.fixture(scope="module")
def code128() -> list[bytes]:
    """Two photos of one Code 128 work-order label, each read by the decoder on its own."""
    frames = [printed_photo(CSV_LABEL, "CODE_128", seed) for seed in (0, 1)]
    for frame in frames:
        assert [(c.text, c.format) for c in decode_image(frame)] == [(CSV_LABEL, "CODE_128")]
    return [png(frame) for frame in frames]


# --- the route -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return make_template(tmp_path_factory.mktemp("template"))


@dataclass
class Api:
    client: TestClient
    logins: dict[str, str]

    def scan(self, image: bytes, who: str = "tanaka", **params: str) -> Any:
        headers = {"Authorization": f"Bearer {TOKEN}", "X-Kensa-Session": self.logins[who], **PNG}
        return self.client.post("/scan", params=params, content=image, headers=headers)


@pytest.fixture
def api(tmp_path: Path, template: Template) -> Iterator[Api]:
    template.copy_to(tmp_path)
    app = create_app(Settings(data_dir=tmp_path, token=TOKEN, ai_workers=0))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield Api(client, {"tanaka": template.token, "admin": template.admin_token})


def keep_trying(r: Any) -> str:
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "qr_decode_failed"
    return str(r.json()["error"]["message"])


def resolved(r: Any) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["target"]["product_code"] == "BRK-100"
    return body


def test_confident_frame_decides_at_once(api: Api) -> None:
    assert decode_image(qr_png())[0].unused_ec == 1.0
    body = resolved(api.scan(qr_png(), stream="view-1"))
    assert body["unit"]["batch_id"] == "A12-3456"
    assert body["codes"] == [{"text": QR_JSON, "format": "QR_CODE"}]


def test_code128_needs_a_second_frame(api: Api, code128: list[bytes]) -> None:
    assert "second frame" in keep_trying(api.scan(code128[0], stream="view-1"))
    body = resolved(api.scan(code128[1], stream="view-1"))
    assert body["unit"]["batch_id"] == "WO-1"
    assert body["codes"] == [{"text": CSV_LABEL, "format": "CODE_128"}]


def test_frame_without_code_keeps_trying_and_breaks_no_agreement(
    api: Api, code128: list[bytes]
) -> None:
    blank = png(np.full((480, 640), 200, np.uint8))
    keep_trying(api.scan(code128[0], stream="s"))
    assert "no code" in keep_trying(api.scan(blank, stream="s"))
    resolved(api.scan(code128[1], stream="s"))


def test_single_photo_is_answered_as_before(api: Api, code128: list[bytes]) -> None:
    # Without a stream one photo is all there is: even a Code 128 read is answered at once.
    assert resolved(api.scan(code128[0]))["unit"]["batch_id"] == "WO-1"


def test_two_users_with_the_same_stream_id_do_not_mix(api: Api, code128: list[bytes]) -> None:
    keep_trying(api.scan(code128[0], who="tanaka", stream="same"))
    keep_trying(api.scan(code128[1], who="admin", stream="same"))
    resolved(api.scan(code128[1], who="tanaka", stream="same"))
    resolved(api.scan(code128[0], who="admin", stream="same"))


def test_other_stream_ids_do_not_mix(api: Api, code128: list[bytes]) -> None:
    keep_trying(api.scan(code128[0], stream="one"))
    keep_trying(api.scan(code128[1], stream="two"))


def test_decided_stream_starts_the_next_label_afresh(api: Api, code128: list[bytes]) -> None:
    keep_trying(api.scan(code128[0], stream="s"))
    resolved(api.scan(code128[1], stream="s"))
    keep_trying(api.scan(code128[0], stream="s"))


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "photo"])
def test_roi_reads_only_the_label_inside(api: Api, stream: bool) -> None:
    image, left, right = two_labels()
    params = {"stream": "aim"} if stream else {}
    for box, batch in ((left, "B-LEFT"), (right, "B-RIGHT")):
        body = resolved(api.scan(image, roi=",".join(map(str, box)), **params))
        assert body["unit"]["batch_id"] == batch
        assert [c["text"] for c in body["codes"]] == [json.dumps(
            {"product_id": "BRK-100", "batch_id": batch, "serial": "0098172"})]


def test_roi_outside_the_frame_is_a_clear_error(api: Api) -> None:
    r = api.scan(qr_png(), roi="5000,5000,100,100", stream="s")
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "image_invalid"
    assert "outside" in error["message"] and "frame" in error["message"]


BAD_PARAMS = [
    ("stream", ""), ("stream", "a b"), ("stream", "a/b"), ("stream", "x" * 65),
    ("stream", "ü"), ("stream", "a;DROP"),
    ("roi", ""), ("roi", "1,2,3"), ("roi", "1,2,3,4,5"), ("roi", "-1,0,10,10"),
    ("roi", "0,0,20001,10"), ("roi", "0,0,0,10"), ("roi", "0,0,10,0"), ("roi", "a,b,c,d"),
    ("roi", "1.5,0,10,10"), ("roi", " 1,2,3,4"), ("roi", "99999999999999999999,0,1,1"),
    ("roi", "\u0661,0,10,10"),
]


@pytest.mark.parametrize("name,value", BAD_PARAMS)
def test_bad_parameter_is_a_validation_error_naming_it(api: Api, name: str, value: str) -> None:
    r = api.scan(qr_png(), **{name: value})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "validation_error"
    assert name in error["message"]
    assert [f["field"] for f in error["detail"]] == [name]


def test_roi_at_the_limits_is_accepted(api: Api) -> None:
    resolved(api.scan(qr_png(), roi="0,0,20000,20000", stream="s"))
