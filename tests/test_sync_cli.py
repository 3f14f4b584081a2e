"""``kensa-server …`` and ``kensa device …``, on the embedded server (SQLite and a directory:
the default when no database URL is given); and the two commands kept apart."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from scripts.devkit.seed_demo import app as seed_demo_app
from sidecar.cli import app
from sync.server.cli import server_app
from tests.support.sync_harness import ServerProcess

runner = CliRunner()


def _run(command: typer.Typer, args: tuple[str, ...]) -> str:
    result = runner.invoke(command, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def kensa(*args: str) -> str:
    return _run(app, args)


def kensa_server(*args: str) -> str:
    return _run(server_app, args)


def seed_demo(*args: str) -> str:
    return _run(seed_demo_app, args)


@pytest.mark.slow
def test_server_admin_and_device_commands(tmp_path: Path) -> None:
    server_dir, device_dir = tmp_path / "server", tmp_path / "device"
    out = seed_demo("--data-dir", str(server_dir), "--models-dir", str(tmp_path / "no-models"),
                    "--tokens-file", str(tmp_path / "tokens.json"))
    assert "tanaka" in out and "without AI" in out and "BRK-100 v3" in out
    tokens = json.loads((tmp_path / "tokens.json").read_text())
    assert set(tokens) == {"TAB-01", "TAB-02"}
    again = seed_demo("--data-dir", str(server_dir), "--models-dir", str(tmp_path / "no-models"))
    assert "token is unchanged" in again

    added = kensa_server("device", "add", "TAB-03", "--data-dir", str(server_dir))
    token = next(line.split()[-1] for line in added.splitlines() if line.startswith("token:"))
    assert token.startswith("kd_")
    kensa_server("target", "add", "GRB-330", "ギアボックス", "--version", "2",
                 "--data-dir", str(server_dir))
    kensa_server("item", "add", "GRB-330", "V-LEAK", "漏れ", "--type", "VISUAL",
                 "--order", "1", "--criteria",
                 '{"judgment_type": "BINARY", "measurement": "leak", "expected": false}',
                 "--data-dir", str(server_dir))
    pipeline = tmp_path / "leak.json"
    pipeline.write_text(json.dumps({
        "id": "leak-check", "name": "leak", "version": 1,
        "steps": [{"name": "roi", "type": "crop", "params": {"w": 8, "h": 8},
                   "image": "$inputs.image"}],
        "outputs": {"box": "$steps.roi.box"}}))
    assert "v1" in kensa_server("pipeline", "add", str(pipeline), "--data-dir", str(server_dir))
    model = tmp_path / "leak.onnx"
    model.write_bytes(b"not really onnx, but bytes with a hash" * 100)
    assert "sha256:" in kensa_server("model", "add", str(model), "--data-dir", str(server_dir))
    kensa_server("user", "add", "sato", "--password", "sato-pass", "--data-dir",
                 str(server_dir))
    kensa_server("item", "update", "GRB-330", "V-LEAK", "--pipeline", "leak-check",
                 "--data-dir", str(server_dir))
    assert "GRB-330" in kensa_server("target", "list", "--data-dir", str(server_dir))

    with ServerProcess("", server_dir) as server:
        connected = kensa("device", "connect", "--server", server.url, "--token", token,
                          "--data-dir", str(device_dir))
        assert "connected as TAB-03" in connected
        # Connecting is in the tablet's audit trail, from the command line too.
        with sqlite3.connect(device_dir / "kensa.db") as conn:
            (detail,) = conn.execute(
                "SELECT detail FROM audit_log WHERE action = 'connect'"
            ).fetchone()
        assert json.loads(detail)["device_name"] == "TAB-03"
        assert "intact" in kensa("audit", "verify", "--data-dir", str(device_dir))
        report = json.loads(kensa("device", "sync-now", "--data-dir", str(device_dir)))
        assert report["ok"] and report["pulled"] > 0
        status_text = kensa("device", "status", "--data-dir", str(device_dir))
        status = json.loads(status_text)
        assert status["configured"] and status["device_name"] == "TAB-03"
        assert status["online"] is None or status["online"] is True
        assert token not in status_text
    model_file = device_dir / "models"
    assert len(list(model_file.glob("*.onnx"))) == 1


def test_connect_refuses_a_wrong_token(tmp_path: Path) -> None:
    with ServerProcess("", tmp_path / "server") as server:
        result = runner.invoke(app, ["device", "connect", "--server", server.url, "--token",
                                     "kd_wrong", "--data-dir", str(tmp_path / "device")])
    assert result.exit_code == 2 and "unknown device token" in result.output


def _commands(command: typer.Typer) -> set[str]:
    group = typer.main.get_command(command)
    assert isinstance(group, typer.core.TyperGroup)
    return set(group.commands)


def test_the_tablet_command_carries_no_server_administration() -> None:
    tablet = _commands(app)
    assert "device" in tablet and not tablet & {"server", "seed-demo", "run", "prune"}
    refused = runner.invoke(app, ["server", "run"])
    assert refused.exit_code == 2 and "No such command" in refused.output


# What each command loads when it starts, in a fresh interpreter: the tablet's never the server,
# the server's never the tablet (they are installed and run on different machines).
APART = [
    ("sidecar.cli", ("sync.server",)),
    ("sync.device.cli", ("sync.server",)),
    ("sync.server.cli", ("sidecar", "sync.device", "scripts")),
    ("sync.server.__main__", ("sidecar", "sync.device", "scripts")),
    ("sync.server.app", ("sidecar", "sync.device", "scripts")),
]


@pytest.mark.parametrize(("module", "foreign"), APART, ids=[m for m, _ in APART])
def test_each_end_loads_nothing_of_the_other(module: str, foreign: tuple[str, ...]) -> None:
    code = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = done.stdout.split()
    assert module in loaded
    assert [m for m in loaded if any(m == f or m.startswith(f + ".") for f in foreign)] == []


@pytest.mark.slow
def test_the_demo_reaches_a_tablet_as_real_models_do(tmp_path: Path) -> None:
    """The demo's models and pipelines are published to a server and pulled; the tablet's own
    model store (its data directory, nothing of the dev tooling) then runs every pipeline."""
    from scripts.devkit import DEMO_MODELS_DIR
    from sidecar.pipeline.engine import PipelineEngine
    from sidecar.pipeline.store import ModelStore

    server_dir, device_dir = tmp_path / "server", tmp_path / "device"
    out = seed_demo("--data-dir", str(server_dir), "--tokens-file", str(tmp_path / "tokens.json"))
    assert "note: model" not in out  # every model of the manifest was found and published
    token = json.loads((tmp_path / "tokens.json").read_text())["TAB-01"]
    with ServerProcess("", server_dir) as server:
        kensa("device", "connect", "--server", server.url, "--token", token,
              "--data-dir", str(device_dir))
        assert json.loads(kensa("device", "sync-now", "--data-dir", str(device_dir)))["ok"]

    manifest = json.loads((DEMO_MODELS_DIR / "manifest.json").read_text(encoding="utf-8"))
    pulled = {p.name for p in (device_dir / "models").iterdir()}
    assert pulled == {f"{m['sha256']}.onnx" for m in manifest["models"]}
    engine = PipelineEngine(ModelStore.for_device(device_dir / "models"))
    used: set[str] = set()
    try:
        for entry in manifest["pipelines"]:
            definition = json.loads((DEMO_MODELS_DIR / entry["file"]).read_text(encoding="utf-8"))
            used.update(engine.compile(definition).models)  # loads and warms each model
        assert used == {f"sha256:{m['sha256']}" for m in manifest["models"]}
        assert {engine.pool.store.get(ref).path.parent for ref in used} == {device_dir / "models"}
    finally:
        engine.close()
