"""An AI result from a model run on the tablet to the server, end to end on real parts: the demo
site published on a PostgreSQL server, a tablet that pulled it, the real sidecar process whose job
runner judges real photos with the pulled models, the tablet's sync, the server's processor.

The tablet runs as one does, encrypted: its store and photos under its data key (a 0600 key file
for the ``kensa`` commands, the shell's stdin line for the sidecar); the photos reach the server
decrypted, as themselves. The confidence is the model's own or none all the way: the anomaly
model gives none, so the sidecar's answer, the outbox row and the server's column are null; the
OCR gives its text score, which arrives as it was measured. The provenance arrives whole, and the
server knows the models: it published them."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import typer
from typer.testing import CliRunner

from schema.db import create_engine
from scripts.devkit import synthetic
from scripts.devkit.seed_demo import app as seed_demo_app
from sidecar import key_source, photo_crypto
from sidecar.cli import app as kensa_app
from sidecar.keys import DataKey
from tests.support.ai_jobs import analyse
from tests.support.seed import QR_JSON
from tests.support.sidecar import SidecarProcess
from tests.support.sync_harness import ServerProcess, wait_until

pytestmark = pytest.mark.postgres

HELD_OUT = 9_000_000  # seeds the demo models never saw (scripts/devkit/models/manifest.json)


def _run(command: typer.Typer, *args: str, env: dict[str, str | None] | None = None) -> str:
    result = CliRunner().invoke(command, list(args), catch_exceptions=False, env=env)
    assert result.exit_code == 0, result.output
    return result.output


def _keyed(folder: Path) -> dict[str, str | None]:
    """The ``kensa`` commands' environment: the tablet's key file, no plaintext store."""
    return {"KENSA_KEY_FILE": str(folder / "tablet.key"), "KENSA_PLAINTEXT": None}


@pytest.fixture
def tablet(pg_url: str, tmp_path: Path) -> Iterator[tuple[SidecarProcess, Path]]:
    """The demo site on PostgreSQL with its server running, and a tablet that pulled it."""
    storage = (tmp_path / "files").as_uri()
    tokens = tmp_path / "tokens.json"
    out = _run(seed_demo_app, "--database-url", pg_url, "--storage", storage,
               "--data-dir", str(tmp_path / "seed"), "--tokens-file", str(tokens))
    assert "note: model" not in out  # every demo model was published
    device_dir = tmp_path / "device"
    key = DataKey.generate()
    key_source.write_key_file(tmp_path / "tablet.key", key)
    with ServerProcess(pg_url, tmp_path / "server", storage=storage) as server:
        token = json.loads(tokens.read_text())["TAB-01"]
        _run(kensa_app, "device", "connect", "--server", server.url, "--token", token,
             "--data-dir", str(device_dir), env=_keyed(tmp_path))
        pulled = _run(kensa_app, "device", "sync-now", "--data-dir", str(device_dir),
                      env=_keyed(tmp_path))
        assert json.loads(pulled)["ok"]
        sidecar = SidecarProcess(device_dir, key=key)
        sidecar.start()
        try:
            yield sidecar, device_dir
        finally:
            sidecar.kill()


def _pushed(url: str, entity_id: str) -> dict[str, Any]:
    """The tablet's outbox row as the server received it (the connected sidecar pushes on its
    own soon after a write, so the row may have left the tablet already)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            raw = conn.execute(
                sa.text("SELECT data FROM tauri_sync_queue WHERE entity_id = :i "
                        "AND operation = 'INSERT'"),
                {"i": uuid.UUID(entity_id)},
            ).scalar_one()
    finally:
        engine.dispose()
    data: dict[str, Any] = json.loads(raw) if isinstance(raw, str) else raw
    return data


def _server_row(url: str, result_id: str) -> Any:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(
                sa.text("SELECT confidence, model_hashes, image_sha256, engine_version, "
                        "execution_provider, step_timings, models_known, unknown_models "
                        "FROM ai_inspection_results WHERE id = :i"),
                {"i": uuid.UUID(result_id)},
            ).first()
    finally:
        engine.dispose()


def test_a_models_own_confidence_or_none_reaches_the_server(
    tablet: tuple[SidecarProcess, Path], pg_url: str
) -> None:
    sidecar, device_dir = tablet
    photos = {
        "V-FOREIGN": synthetic.encode(synthetic.make_surface(HELD_OUT + 3, None), ".jpg"),
        "T-MARKING": synthetic.encode(synthetic.make_marking("LOT A12-3456", 5)),
    }
    results: dict[str, dict[str, Any]] = {}
    with sidecar.client() as client:
        login = client.post("/auth/login", json={"username": "tanaka",
                                                 "password": "tanaka-demo"})
        assert login.status_code == 200, login.text
        client.headers["X-Kensa-Session"] = login.json()["token"]
        started = client.post("/sessions", json={"qr_code": QR_JSON})
        assert started.status_code == 201, started.text
        sid = started.json()["id"]
        items = {i["item_code"]: i["item_id"] for i in started.json()["items"]}
        for code, photo in photos.items():
            up = client.post(f"/sessions/{sid}/items/{items[code]}/images", content=photo,
                             headers={"Content-Type": "image/jpeg"})
            assert up.status_code == 201, up.text
            # Served back as it was taken, though the tablet keeps it encrypted.
            assert client.get(f"/images/{up.json()['id']}").content == photo
            thumb = client.get(f"/images/{up.json()['id']}/thumbnail")
            assert thumb.status_code == 200 and thumb.content.startswith(b"\xff\xd8\xff")
            results[code] = analyse(client, sid, items[code], up.json()["id"])

    # The sidecar's answer: no confidence where the model gave none, the model's own otherwise.
    foreign, marking = results["V-FOREIGN"], results["T-MARKING"]
    assert foreign["confidence"] is None
    score = marking["measurements"]["text_score"]
    assert marking["confidence"] == score and 0 < score <= 1
    for code, result in results.items():
        assert result["provenance"]["image_sha256"] == hashlib.sha256(photos[code]).hexdigest()

    # The tablet syncs; the server's processor applies both results as they were measured.
    synced = _run(kensa_app, "device", "sync-now", "--data-dir", str(device_dir),
                  env=_keyed(device_dir.parent))
    assert json.loads(synced)["ok"]
    # The photos left the tablet as themselves: the server holds each under its hash, while the
    # tablet keeps them (and their thumbnails) encrypted.
    for code, photo in photos.items():
        sha = hashlib.sha256(photo).hexdigest()
        held = device_dir.parent / "files" / sha[:2] / sha
        wait_until(held.is_file, 60, what=f"the {code} photo on the server")
        assert held.read_bytes() == photo
        assert photo_crypto.is_encrypted(device_dir / "images" / sha[:2] / sha)
    for stored in (device_dir / "images").rglob("*"):
        assert not stored.is_file() or photo_crypto.is_encrypted(stored)
    for stored in (device_dir / "thumbnails").rglob("*"):
        assert not stored.is_file() or photo_crypto.is_encrypted(stored)
    wait_until(lambda: all(_server_row(pg_url, r["id"]) is not None for r in results.values()),
               60, what="the AI results on the server")
    for code, result in results.items():
        # The outbox row carried what the API showed.
        pushed = _pushed(pg_url, result["id"])
        assert pushed["confidence"] == result["confidence"], code
        for key in ("model_hashes", "image_sha256", "engine_version", "execution_provider"):
            assert pushed[key] == result["provenance"][key], key
        row = _server_row(pg_url, result["id"])
        provenance = result["provenance"]
        assert row.confidence == result["confidence"], code
        assert row.model_hashes == provenance["model_hashes"] and row.model_hashes, code
        assert (row.image_sha256, row.engine_version, row.execution_provider) == (
            provenance["image_sha256"], provenance["engine_version"],
            provenance["execution_provider"])
        assert [s["node"] for s in row.step_timings] == [
            s["node"] for s in provenance["step_timings"]]
        # The demo's models came from this server: known, nothing flagged.
        assert (row.models_known, row.unknown_models) == (True, None), code
    assert _server_row(pg_url, results["V-FOREIGN"]["id"]).confidence is None
