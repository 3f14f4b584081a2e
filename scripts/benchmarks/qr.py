"""QR decoding benchmark: ``sidecar.qr.decode`` against plain pyzbar and plain zxing-cpp.

Every photo of the ZXing test set (``shared/data/qr-zxing``, or ``$KENSA_QR_DATA``) is used as is
and rotated by 90, 180 and 270 degrees: 388 frames. A frame counts as decoded when one of the
texts read equals the photo's ``.txt`` after normalising line endings. All three decoders get the
same grey frames (already decoded from PNG, so file decoding is not timed), one frame at a time in
turn, so that noise from other processes on the machine falls on all of them alike.

    python scripts/benchmarks/qr.py
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parents[2]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ROTATIONS = (
    (0, None),
    (90, cv2.ROTATE_90_CLOCKWISE),
    (180, cv2.ROTATE_180),
    (270, cv2.ROTATE_90_COUNTERCLOCKWISE),
)

Frame = tuple[str, npt.NDArray[np.uint8], str]


def data_dir() -> Path:
    env = os.environ.get("KENSA_QR_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data" / "qr-zxing"


def normalise(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def load_frames(root: Path) -> list[Frame]:
    frames: list[Frame] = []
    for image_path in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        text_path = image_path.with_suffix(".txt")
        if not text_path.exists():
            continue
        expected = normalise(text_path.read_text(encoding="utf-8"))
        image = cv2.imread(str(image_path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise RuntimeError(f"cannot read {image_path}")
        name = str(image_path.relative_to(root))
        for degrees, code in ROTATIONS:
            rotated = image if code is None else cv2.rotate(image, code)
            frames.append((f"{name}@{degrees}", np.ascontiguousarray(rotated), expected))
    return frames


def _timed(fn: Callable[[npt.NDArray[np.uint8]], list[str]],
           frame: npt.NDArray[np.uint8]) -> tuple[list[str], float]:
    start = time.perf_counter()
    texts = fn(frame)
    return texts, time.perf_counter() - start


def run() -> dict[str, object]:
    import zxingcpp
    from pyzbar import pyzbar

    from sidecar.qr.decode import decode_gray, decode_image

    root = data_dir()
    frames = load_frames(root)
    if not frames:
        raise RuntimeError(f"no QR photos under {root}")

    def ours(frame: npt.NDArray[np.uint8]) -> list[str]:
        return [code.text for code in decode_image(frame)]

    def plain_pyzbar(frame: npt.NDArray[np.uint8]) -> list[str]:
        found = pyzbar.decode(frame, symbols=[pyzbar.ZBarSymbol.QRCODE])
        return [symbol.data.decode("utf-8", errors="replace") for symbol in found]

    def plain_zxing(frame: npt.NDArray[np.uint8]) -> list[str]:
        return [str(b.text) for b in zxingcpp.read_barcodes(frame)]

    decoders: dict[str, Callable[[npt.NDArray[np.uint8]], list[str]]] = {
        "ours": ours, "pyzbar": plain_pyzbar, "zxing": plain_zxing,
    }
    for fn in decoders.values():  # warm-up: library loading and first-call costs
        for _, frame, _ in frames[:4]:
            fn(frame)

    decoded: Counter[str] = Counter()
    seconds = dict.fromkeys(decoders, 0.0)
    missed: list[str] = []
    for name, frame, expected in frames:
        for label, fn in decoders.items():
            texts, elapsed = _timed(fn, frame)
            seconds[label] += elapsed
            hit = expected in (normalise(t) for t in texts)
            decoded[label] += hit
            if label == "ours" and not hit:
                missed.append(name)

    # Which stage of ours read each frame (untimed): the evidence for keeping each stage.
    stages: Counter[str] = Counter()
    for _, frame, expected in frames:
        codes, stage = decode_gray(frame)
        if expected in (normalise(c.text) for c in codes):
            stages[stage or "none"] += 1

    n = len(frames)
    result: dict[str, Any] = {
        "frames": n,
        "decoded": decoded["ours"],
        "mean_ms": round(seconds["ours"] * 1000 / n, 3),
        "pyzbar_decoded": decoded["pyzbar"],
        "pyzbar_mean_ms": round(seconds["pyzbar"] * 1000 / n, 3),
        "zxing_decoded": decoded["zxing"],
        "zxing_mean_ms": round(seconds["zxing"] * 1000 / n, 3),
        "stages": dict(stages),
        "missed": missed,
    }
    print(f"QR decode on {n} frames from {root}")
    for label, title in (("ours", "sidecar.qr"), ("pyzbar", "pyzbar (QR only)"),
                         ("zxing", "zxing-cpp (defaults)")):
        print(f"  {title:<22} {decoded[label]:>4}/{n} decoded   "
              f"{seconds[label] * 1000 / n:7.3f} ms/frame")
    print(f"  frames read per stage: {dict(stages)}")
    print(f"  missed: {', '.join(missed) or 'none'}")
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    run()
