"""A device database with SCENARIO.md's BRK-100 masters and inspectors, for sidecar tests.

The sync tests fill a device from a real server; the sidecar's own tests only need the cached
masters to exist, so they are written straight into the device database here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import zxingcpp

from schema import device as d
from schema.db import Database, create_sqlite_engine
from schema.migrate import upgrade_device
from scripts.devkit import DEMO_MODELS_DIR as MODELS
from sidecar.keys import DataKey
from sidecar.services import auth

PASSWORD = "kensa-demo-1"
QR_JSON = '{"product_id": "BRK-100", "batch_id": "A12-3456", "serial": "0098172"}'


def demo_items() -> list[dict[str, Any]]:
    """BRK-100's five items as the demo models were built for (criteria, pipelines)."""
    data = json.loads((MODELS / "brk-100-items.json").read_text(encoding="utf-8"))
    items: list[dict[str, Any]] = data["items"]
    return items


def demo_pipelines() -> list[dict[str, Any]]:
    return [
        json.loads(p.read_text(encoding="utf-8"))
        for p in sorted((MODELS / "pipelines").glob("*.json"))
    ]


def item_id(code: str) -> str:
    return f"item-{code.lower()}"


def install_demo_models(data_dir: Path) -> None:
    """The demo models in ``<data_dir>/models`` under their hashes, where a pull leaves the models
    a server published: the sidecar finds models only there (and the OCR models in rapidocr's
    wheel, which the manifest lists but this folder does not hold)."""
    manifest = json.loads((MODELS / "manifest.json").read_text(encoding="utf-8"))
    folder = data_dir / "models"
    folder.mkdir(parents=True, exist_ok=True)
    for entry in manifest["models"]:
        source = MODELS / entry["file"]
        if source.is_file():
            # A copy, never a link: tests damage model files on purpose.
            shutil.copyfile(source, folder / f"{entry['sha256']}.onnx")


def seed_device(path: Path, key: DataKey | None = None) -> None:
    """A device database at ``path`` with the demo masters and pipelines, and the demo models
    beside it in ``path.parent`` (the data directory) as if pulled; encrypted with ``key``."""
    install_demo_models(path.parent)
    upgrade_device(path, key=key)
    db = Database(create_sqlite_engine(path, key=key))
    try:
        with db.atomic() as session:
            session.add(
                d.InspectionTargetMaster(
                    id="target-brk100",
                    product_code="BRK-100",
                    product_name="ブレーキキャリパー",
                    product_name_en="Brake caliper",
                    version="3",
                )
            )
            session.add(
                d.InspectionTargetMaster(
                    id="target-pmp220",
                    product_code="PMP-220",
                    product_name="オイルポンプ",
                    product_name_en="Oil pump",
                    version="1",
                )
            )
            for p in demo_pipelines():
                session.add(
                    d.Pipeline(id=p["id"], name=p["name"], definition=p, version=p["version"])
                )
            for item in demo_items():
                session.add(
                    d.InspectionItemMaster(
                        id=item_id(item["item_code"]),
                        target_id="target-brk100",
                        item_code=item["item_code"],
                        item_name=item["name"],
                        item_name_en=item.get("name_en"),
                        inspection_type=item["type"],
                        ai_enabled=item["ai_enabled"],
                        pipeline_id=item["pipeline_id"],
                        criteria=item["criteria"],
                        order_sequence=item["order_sequence"],
                        required=item["required"],
                        defect_types=item.get("defect_types"),
                    )
                )
            auth.add_user(session, "tanaka", PASSWORD, full_name="田中")
            auth.add_user(session, "admin", PASSWORD, role="admin")
    finally:
        db.dispose()


def qr_png(text: str = QR_JSON, scale: int = 6) -> bytes:
    barcode = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode)
    img = np.ascontiguousarray(np.array(zxingcpp.write_barcode_to_image(barcode, scale=scale)))
    ok, encoded = cv2.imencode(".png", img)
    assert ok
    return encoded.tobytes()


def photo_jpeg(seed: int = 0, width: int = 640, height: int = 480) -> bytes:
    rng = np.random.default_rng(seed)
    img = rng.integers(90, 170, size=(height, width, 3), dtype=np.uint8)
    cv2.circle(img, (width // 2, height // 2), height // 5, (30, 30, 30), -1)
    ok, encoded = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return encoded.tobytes()
