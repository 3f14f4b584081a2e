"""Photos whose findings lie at known places, for the overlay tests (pytest and the UI's e2e).

Each photo is stored turned a quarter (EXIF orientation 6, as a tablet held in portrait writes
it): the pixels in the file are not the picture a person sees, so a finding drawn in the file's
own coordinates lands in the wrong place.

    python -m tests.support.overlay_fixtures DIR [--long-outputs DATA_DIR]

writes ``foreign.jpg``, ``bore.jpg``, ``marking.jpg`` and ``expected.json`` (each target where it
shows, in the upright photo's pixels) into DIR and prints that JSON. With ``--long-outputs``, the
foreign-matter pipeline of the seeded tablet in DATA_DIR also reports a whole row of its input
tensor (224 numbers) as a measurement: the longest value a pipeline's outputs can carry to the
result card.
"""

from __future__ import annotations

import argparse
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


def marking_upright() -> tuple[np.ndarray[Any, Any], dict[str, float]]:
    plate = synthetic.make_marking("LOT A12-3456", 3, size=(480, 160))
    canvas = np.full((480, 640, 3), 150, np.uint8)
    x, y = 100, 250
    canvas[y : y + 160, x : x + 480] = plate  # the marking low in a larger photo
    return canvas, {"x1": x, "y1": y, "x2": x + 480, "y2": y + 160, "width": 640, "height": 480}


def lengthen_outputs(data_dir: Path) -> None:
    """Give the seeded foreign-matter pipeline an output as long as a measurement gets."""
    from sqlmodel import select

    from schema import device as d
    from schema.db import Database, create_sqlite_engine

    db = Database(create_sqlite_engine(data_dir / "kensa.db"))
    try:
        with db.atomic() as session:
            row = session.exec(select(d.Pipeline).where(d.Pipeline.id == "brk100-v-foreign")).one()
            definition = dict(row.definition)
            definition["outputs"] = {**definition["outputs"],
                                     "input_row": "$steps.tensor.tensor[0][0][100]"}
            row.definition = definition
            session.add(row)
    finally:
        db.dispose()


def write(folder: Path) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    foreign, foreign_at = foreign_upright()
    bore, bore_at = bore_upright()
    marking, marking_at = marking_upright()
    (folder / "foreign.jpg").write_bytes(stored_turned(foreign))
    (folder / "bore.jpg").write_bytes(stored_turned(bore))
    (folder / "marking.jpg").write_bytes(stored_turned(marking))
    expected = {"foreign": foreign_at, "bore": bore_at, "marking": marking_at}
    (folder / "expected.json").write_text(json.dumps(expected), encoding="utf-8")
    return expected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.overlay_fixtures")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--long-outputs", type=Path, default=None, metavar="DATA_DIR")
    args = parser.parse_args(argv)
    if args.long_outputs is not None:
        lengthen_outputs(args.long_outputs)
    print(json.dumps(write(args.folder)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
