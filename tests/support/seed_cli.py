"""Seed a sidecar data directory for the UI's end-to-end tests (``tauri-app/e2e``).

    python -m tests.support.seed_cli DATA_DIR [--fixtures DIR]

writes ``DATA_DIR/kensa.db`` with SCENARIO.md's BRK-100 / PMP-220 masters and the users
``tanaka`` (inspector), ``suzuki`` (supervisor) and ``admin`` (admin), password
:data:`tests.support.seed.PASSWORD` — with
``--no-pipelines``, masters without AI pipelines (a tablet that judges by eye) — and, with
``--fixtures``, the files the browser uploads: the QR label as a PNG and as a looping camera feed
(``label.y4m``, Chromium's fake capture device), part photos, and a heat map. Prints one JSON
line naming what it wrote.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
from sqlmodel import select

from schema import device as d
from schema.db import Database, create_sqlite_engine
from scripts.devkit import synthetic
from sidecar.services import auth
from tests.support.seed import PASSWORD, QR_JSON, photo_jpeg, qr_png, seed_device


def _y4m(path: Path, png: bytes, width: int = 640, height: int = 480, frames: int = 4) -> None:
    label = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert label is not None
    side = min(height - 40, label.shape[0])
    label = cv2.resize(label, (side, side), interpolation=cv2.INTER_NEAREST)
    frame = np.full((height, width, 3), 200, np.uint8)
    y, x = (height - side) // 2, (width - side) // 2
    frame[y : y + side, x : x + side] = label
    i420 = cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420)
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n")
            out.write(i420.tobytes())


def _heatmap(width: int = 64, height: int = 48) -> bytes:
    yy, xx = np.mgrid[0:height, 0:width]
    blob = np.exp(-(((xx - width * 0.65) ** 2) + ((yy - height * 0.4) ** 2)) / (2 * 8.0**2))
    colored = cv2.applyColorMap((blob * 255).astype(np.uint8), cv2.COLORMAP_JET)
    ok, png = cv2.imencode(".png", colored)
    assert ok
    return png.tobytes()


def _without_pipelines(db: Database) -> None:
    """A tablet whose masters carry no pipelines: every AI item is judged by eye."""
    with db.atomic() as session:
        for item in session.exec(select(d.InspectionItemMaster)).all():
            item.pipeline_id = None
            session.add(item)
        session.flush()
        for pipeline in session.exec(select(d.Pipeline)).all():
            session.delete(pipeline)


def seed(data_dir: Path, fixtures: Path | None, *, pipelines: bool = True) -> dict[str, object]:
    data_dir.mkdir(parents=True, exist_ok=True)
    db_path = data_dir / "kensa.db"
    if db_path.exists():
        raise SystemExit(f"{db_path} exists already; seed a fresh directory")
    seed_device(db_path)
    db = Database(create_sqlite_engine(db_path))
    try:
        with db.atomic() as session:
            auth.add_user(session, "suzuki", PASSWORD, role="supervisor", full_name="鈴木")
        if not pipelines:
            _without_pipelines(db)
    finally:
        db.dispose()
    written: dict[str, object] = {"db": str(db_path), "password": PASSWORD, "qr": QR_JSON}
    if fixtures is not None:
        fixtures.mkdir(parents=True, exist_ok=True)
        png = qr_png()
        files = {
            "label.png": png,
            "photo-1.jpg": photo_jpeg(1),
            "photo-2.jpg": photo_jpeg(2),
            "photo-3.jpg": photo_jpeg(3),
            # A bore of 12.00 mm, in tolerance: the bore pipeline measures it (no model, so no
            # confidence).
            "bore.jpg": synthetic.encode(synthetic.make_bore(12.0, 7)),
            "heatmap.png": _heatmap(),
            # A calibration board of 5 mm squares (7 × 5 inner corners) seen at 0.06 mm a pixel.
            "checkerboard.png": synthetic.encode(synthetic.make_checkerboard(5.0, 1, 0.06)),
        }
        for name, data in files.items():
            (fixtures / name).write_bytes(data)
        _y4m(fixtures / "label.y4m", png)
        written["fixtures"] = str(fixtures)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.seed_cli")
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--fixtures", type=Path, default=None)
    parser.add_argument(
        "--no-pipelines", action="store_true", help="no AI pipelines: items are judged by eye"
    )
    args = parser.parse_args(argv)
    print(json.dumps(seed(args.data_dir, args.fixtures, pipelines=not args.no_pipelines)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
