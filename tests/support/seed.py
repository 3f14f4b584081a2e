"""A device database with SCENARIO.md's BRK-100 masters and inspectors, for sidecar tests.

The sync tests fill a device from a real server; the sidecar's own tests only need the cached
masters to exist, so they are written straight into the device database here.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import zxingcpp

from schema import device as d
from schema.db import Database, create_sqlite_engine
from schema.migrate import upgrade_device
from sidecar.services import auth

PASSWORD = "kensa-demo-1"
QR_JSON = '{"product_id": "BRK-100", "batch_id": "A12-3456", "serial": "0098172"}'

ITEMS = [
    # id, code, name, type, ai, criteria, order, required
    (
        "item-scratch",
        "V-SCRATCH",
        "外観キズ",
        "VISUAL",
        True,
        {
            "judgment_type": "THRESHOLD",
            "measurement": "defect_probability",
            "operator": "LT",
            "threshold": 0.5,
            "review_band": [0.3, 0.7],
        },
        1,
        True,
    ),
    (
        "item-foreign",
        "V-FOREIGN",
        "異物付着",
        "VISUAL",
        True,
        {
            "judgment_type": "THRESHOLD",
            "measurement": "anomaly_score",
            "operator": "LT",
            "threshold": 0.5,
        },
        2,
        True,
    ),
    (
        "item-marking",
        "T-MARKING",
        "刻印文字",
        "TEXT",
        True,
        {
            "judgment_type": "PATTERN",
            "measurement": "text",
            "pattern": "LOT [A-Z][0-9]{2}-[0-9]{4}",
            "equals": "$target.batch_id",
        },
        3,
        True,
    ),
    (
        "item-bore",
        "D-BORE",
        "穴径",
        "DIMENSION",
        True,
        {
            "judgment_type": "NUMERICAL",
            "measurement": "bore_mm",
            "min": 11.95,
            "max": 12.05,
            "unit": "mm",
        },
        4,
        True,
    ),
    (
        "item-piston",
        "F-PISTON",
        "ピストン作動",
        "FUNCTION",
        False,
        {"judgment_type": "BINARY", "measurement": "ok", "expected": True},
        5,
        False,
    ),
]


def seed_device(path: Path) -> None:
    upgrade_device(path)
    db = Database(create_sqlite_engine(path))
    try:
        with db.atomic() as session:
            session.add(
                d.InspectionTargetMaster(
                    id="target-brk100",
                    product_code="BRK-100",
                    product_name="ブレーキキャリパー",
                    version="3",
                )
            )
            session.add(
                d.InspectionTargetMaster(
                    id="target-pmp220",
                    product_code="PMP-220",
                    product_name="オイルポンプ",
                    version="1",
                )
            )
            for item_id, code, name, kind, ai, criteria, order, required in ITEMS:
                session.add(
                    d.InspectionItemMaster(
                        id=item_id,
                        target_id="target-brk100",
                        item_code=code,
                        item_name=name,
                        inspection_type=kind,
                        ai_enabled=ai,
                        criteria=criteria,
                        order_sequence=order,
                        required=required,
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
