"""The site of SCENARIO.md on an empty (or partly seeded) sync server, for the demo and the tests.

    python -m scripts.devkit.seed_demo --data-dir .kensa-dev/server --tokens-file tokens.json
    python -m scripts.devkit.seed_demo --database-url postgresql+psycopg://… --storage s3://…

Users ``admin`` (admin) / ``tanaka`` (inspector) / ``suzuki`` (supervisor) with known demo
passwords, tablets ``TAB-01`` / ``TAB-02`` with fresh tokens, products ``BRK-100`` v3 and
``PMP-220`` v1, and BRK-100's five items. The items, their criteria and pipelines come from the
demo models folder (``scripts/devkit/models``:
``brk-100-items.json``, ``pipelines/*.json``, ``manifest.json`` and the ONNX files it lists); when
that folder is absent the same five items are created without AI (``ai_enabled = false``).

Running it twice changes nothing already there (devices keep their tokens unless asked).
Everything goes through the server's own publishing (``sync.server.masters``), so a tablet gets
the demo's pipelines and models the way it gets real ones: by pulling them.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlmodel import Session, select

from schema import server as s
from scripts.devkit import DEMO_MODELS_DIR, ocr_models_dir
from sync.errors import NotFound
from sync.server import masters
from sync.server.cli import DatabaseOpt, DataDirOpt, StorageOpt, server_session
from sync.server.storage import Storage

log = logging.getLogger(__name__)

DEMO_USERS = (
    ("admin", "admin-demo", "admin", "管理者 (Admin)"),
    ("tanaka", "tanaka-demo", "inspector", "田中 (Tanaka)"),
    ("suzuki", "suzuki-demo", "supervisor", "鈴木 (Suzuki)"),
)
DEMO_DEVICES = ("TAB-01", "TAB-02")

# BRK-100's items when the demo models folder is missing (SCENARIO.md's table).
FALLBACK_ITEMS: list[dict[str, Any]] = [
    {"order_sequence": 1, "item_code": "V-SCRATCH", "name": "外観キズ",
     "name_en": "Surface scratches", "type": "VISUAL",
     "required": True,
     "defect_types": ["scratch", "dent", "other"],
     "criteria": {"judgment_type": "THRESHOLD", "measurement": "defect_probability",
                  "operator": "LT", "threshold": 0.5, "review_band": [0.3, 0.7]}},
    {"order_sequence": 2, "item_code": "V-FOREIGN", "name": "異物付着",
     "name_en": "Foreign matter", "type": "VISUAL",
     "required": True,
     "defect_types": ["foreign_matter", "other"],
     "criteria": {"judgment_type": "THRESHOLD", "measurement": "anomaly_score",
                  "operator": "LT", "threshold": 0.5}},
    {"order_sequence": 3, "item_code": "T-MARKING", "name": "刻印文字",
     "name_en": "Stamped marking", "type": "TEXT",
     "required": True,
     "defect_types": ["marking_illegible", "marking_mismatch", "other"],
     "criteria": {"judgment_type": "PATTERN", "measurement": "text",
                  "pattern": "LOT [A-Z][0-9]{2}-[0-9]{4}", "equals": "$target.batch_id"}},
    {"order_sequence": 4, "item_code": "D-BORE", "name": "穴径",
     "name_en": "Bore diameter", "type": "DIMENSION",
     "required": True,
     "defect_types": ["bore_oversize", "bore_undersize", "other"],
     "criteria": {"judgment_type": "NUMERICAL", "measurement": "bore_mm", "min": 11.95,
                  "max": 12.05, "unit": "mm"}},
    {"order_sequence": 5, "item_code": "F-PISTON", "name": "ピストン作動",
     "name_en": "Piston operation", "type": "FUNCTION",
     "required": False,
     "defect_types": ["piston_stuck", "other"],
     "criteria": {"judgment_type": "BINARY", "measurement": "ok", "expected": True}},
]


@dataclass
class DemoReport:
    users: list[tuple[str, str, str]] = field(default_factory=list)
    devices: dict[str, str] = field(default_factory=dict)
    targets: list[str] = field(default_factory=list)
    items: list[str] = field(default_factory=list)
    pipelines: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _locate_model(models_dir: Path, entry: dict[str, Any]) -> Path | None:
    name = str(entry.get("file", ""))
    # The OCR models are not in the folder: they ship in rapidocr's wheel under their own names.
    for folder in (models_dir, ocr_models_dir()):
        if folder is not None and (folder / name).is_file():
            return folder / name
    return None


def seed_demo(
    session: Session,
    storage: Storage,
    *,
    models_dir: Path = DEMO_MODELS_DIR,
    new_tokens: bool = False,
) -> DemoReport:
    report = DemoReport()
    for username, password, role, full_name in DEMO_USERS:
        try:
            masters.find_user(session, username)
        except NotFound:
            masters.add_user(session, username, password, role=role, full_name=full_name)
        report.users.append((username, password, role))

    for name in DEMO_DEVICES:
        device = session.exec(select(s.Device).where(s.Device.name == name)).first()
        if device is None:
            _, token = masters.add_device(session, name, "tablet")
            report.devices[name] = token
        elif new_tokens:
            report.devices[name] = masters.rotate_device_token(session, name)
        else:
            report.notes.append(f"device {name} exists; its token is unchanged "
                                "(--new-tokens issues new ones)")

    for code, product, product_en, version, description in (
        ("BRK-100", "ブレーキキャリパー", "Brake caliper", "3", "SCENARIO.md demo product"),
        ("PMP-220", "オイルポンプ", "Oil pump", "1", "SCENARIO.md demo product"),
    ):
        try:
            masters.find_target(session, code)
        except NotFound:
            masters.add_target(session, code, product, version, description,
                               product_name_en=product_en)
        report.targets.append(f"{code} v{version}")

    items_file = models_dir / "brk-100-items.json"
    manifest_file = models_dir / "manifest.json"
    pipeline_ids: dict[str, str] = {}
    if items_file.is_file() and manifest_file.is_file():
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        for entry in manifest.get("models", []):
            path = _locate_model(models_dir, entry)
            if path is None:
                report.notes.append(f"model {entry.get('file')} not found; not uploaded")
                continue
            masters.add_model(session, storage, path, str(entry.get("file") or path.name))
            report.models.append(f"{entry.get('file')} sha256:{str(entry['sha256'])[:12]}…")
        for entry in manifest.get("pipelines", []):
            definition = json.loads((models_dir / entry["file"]).read_text(encoding="utf-8"))
            row = masters.put_pipeline(session, definition)
            pipeline_ids[str(entry["id"])] = str(row.id)
            report.pipelines.append(f"{entry['id']} v{row.version}")
        items = json.loads(items_file.read_text(encoding="utf-8"))["items"]
    else:
        items = FALLBACK_ITEMS
        report.notes.append(
            f"no demo models in {models_dir}: BRK-100's items are created without AI"
        )

    for item in items:
        pipeline = pipeline_ids.get(str(item.get("pipeline_id") or ""))
        try:
            masters.find_item(session, "BRK-100", item["item_code"])
        except NotFound:
            masters.add_item(
                session, "BRK-100", item_code=item["item_code"], item_name=item["name"],
                item_name_en=item.get("name_en"),
                inspection_type=item["type"], criteria=item["criteria"],
                order_sequence=int(item["order_sequence"]), required=bool(item["required"]),
                ai_enabled=bool(item.get("ai_enabled")) and pipeline is not None,
                pipeline_id=pipeline, defect_types=item.get("defect_types"),
            )
        report.items.append(
            f"BRK-100 {item['order_sequence']}. {item['item_code']}"
            + (" (AI)" if pipeline else " (person only)")
        )
    return report


app = typer.Typer(add_completion=False)


@app.command()
def main(
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
    storage: StorageOpt = None,
    tokens_file: Annotated[
        Path | None, typer.Option(help="Write the devices' tokens here (JSON) instead of stdout.")
    ] = None,
    models_dir: Annotated[
        Path, typer.Option(help="Demo models folder.")
    ] = DEMO_MODELS_DIR,
    new_tokens: Annotated[bool, typer.Option(help="Reissue tokens of existing devices.")] = False,
) -> None:
    """Create SCENARIO.md's site: users, tablets, products, BRK-100's items, pipelines, models."""
    with server_session(database_url, data_dir, storage) as (session, store):
        report = seed_demo(session, store, models_dir=models_dir, new_tokens=new_tokens)
    typer.echo("users (demo passwords):")
    for username, password, role in report.users:
        typer.echo(f"  {username:8} {password:14} {role}")
    if tokens_file is not None and report.devices:
        tokens_file.write_text(json.dumps(report.devices, indent=2) + "\n", encoding="utf-8")
        os.chmod(tokens_file, 0o600)
        typer.echo(f"device tokens written to {tokens_file}")
    else:
        for name, token in report.devices.items():
            typer.echo(f"device {name} token: {token}")
    typer.echo("targets: " + ", ".join(report.targets))
    for line in report.items:
        typer.echo(f"  {line}")
    if report.pipelines:
        typer.echo("pipelines: " + ", ".join(report.pipelines))
    if report.models:
        typer.echo("models: " + ", ".join(report.models))
    for note in report.notes:
        typer.echo(f"note: {note}")


if __name__ == "__main__":
    app()
