"""Photos whose findings lie at known places, for the overlay tests (pytest and the UI's e2e).

Each photo is stored turned a quarter (EXIF orientation 6, as a tablet held in portrait writes
it): the pixels in the file are not the picture a person sees, so a finding drawn in the file's
own coordinates lands in the wrong place.

    python -m tests.support.overlay_fixtures DIR

writes ``foreign.jpg``, ``bore.jpg`` and ``expected.json`` (each target where it shows, in the
upright photo's pixels) into DIR and prints that JSON.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from scripts.devkit import synthetic
from scripts.devkit.modelgen import HELD_OUT_SEED

# The foreign-matter photo: a dark chip on a clean face, upscaled so the UI shows it smaller.
FOREIGN_SCALE = 3
FOREIGN_CHIP = (70, 180)  # on the 256 px face the model was built for
FOREIGN_CHIP_R = 8
BORE_SIZE = (800, 480)
BORE_SHIFT = (-90, 220)  # rows, columns: the bore off the centre, so a quarter turn moves it


def with_orientation(jpeg: bytes, orientation: int) -> bytes:
    """``jpeg`` with an EXIF APP1 segment carrying only the Orientation tag."""
    if jpeg[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    ifd = struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)
    tiff = b"MM\x00*" + struct.pack(">I", 8) + ifd + struct.pack(">I", 0)
    body = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


def stored_turned(upright: np.ndarray[Any, Any]) -> bytes:
    """A JPEG that shows ``upright`` once its EXIF orientation (6: turn clockwise) is applied."""
    turned = cv2.rotate(upright, cv2.ROTATE_90_COUNTERCLOCKWISE)
    ok, jpg = cv2.imencode(".jpg", turned, [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise ValueError("could not encode")
    return with_orientation(jpg.tobytes(), 6)


def foreign_upright() -> tuple[np.ndarray[Any, Any], dict[str, float]]:
    img = synthetic.make_surface(HELD_OUT_SEED + 500, None)
    yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    cx, cy = FOREIGN_CHIP
    img[(yy - cy) ** 2 + (xx - cx) ** 2 < FOREIGN_CHIP_R**2] = (30, 45, 60)
    big = cv2.resize(img, None, fx=FOREIGN_SCALE, fy=FOREIGN_SCALE,
                     interpolation=cv2.INTER_LINEAR)
    h, w = big.shape[:2]
    return big, {"x": cx * FOREIGN_SCALE, "y": cy * FOREIGN_SCALE, "width": w, "height": h}


def bore_upright() -> tuple[np.ndarray[Any, Any], dict[str, float]]:
    img = synthetic.make_bore(12.0, 7, size=BORE_SIZE)
    img = np.roll(img, BORE_SHIFT, axis=(0, 1))
    # Where the bore really is: the centroid of its dark disc, in the upright picture.
    dark = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) < 40
    ys, xs = np.nonzero(dark)
    h, w = img.shape[:2]
    return img, {"x": float(xs.mean()), "y": float(ys.mean()),
                 "r": float(np.sqrt(dark.sum() / np.pi)), "width": w, "height": h}


def write(folder: Path) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    foreign, foreign_at = foreign_upright()
    bore, bore_at = bore_upright()
    (folder / "foreign.jpg").write_bytes(stored_turned(foreign))
    (folder / "bore.jpg").write_bytes(stored_turned(bore))
    expected = {"foreign": foreign_at, "bore": bore_at}
    (folder / "expected.json").write_text(json.dumps(expected), encoding="utf-8")
    return expected


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m tests.support.overlay_fixtures DIR", file=sys.stderr)
        return 2
    print(json.dumps(write(Path(args[0]))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
