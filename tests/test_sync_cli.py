"""``kensa server …`` and ``kensa device …``, on the embedded server (SQLite and a directory:
the default when no database URL is given)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sidecar.cli import app
from tests.support.sync_harness import ServerProcess

runner = CliRunner()


def kensa(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.slow
def test_server_admin_and_device_commands(tmp_path: Path) -> None:
    server_dir, device_dir = tmp_path / "server", tmp_path / "device"
    out = kensa("server", "seed-demo", "--data-dir", str(server_dir),
                "--models-dir", str(tmp_path / "no-models"),
                "--tokens-file", str(tmp_path / "tokens.json"))
    assert "tanaka" in out and "without AI" in out and "BRK-100 v3" in out
    tokens = json.loads((tmp_path / "tokens.json").read_text())
    assert set(tokens) == {"TAB-01", "TAB-02"}
    again = kensa("server", "seed-demo", "--data-dir", str(server_dir),
                  "--models-dir", str(tmp_path / "no-models"))
    assert "token is unchanged" in again

    added = kensa("server", "device", "add", "TAB-03", "--data-dir", str(server_dir))
    token = next(line.split()[-1] for line in added.splitlines() if line.startswith("token:"))
    assert token.startswith("kd_")
    kensa("server", "target", "add", "GRB-330", "ギアボックス", "--version", "2",
          "--data-dir", str(server_dir))
    kensa("server", "item", "add", "GRB-330", "V-LEAK", "漏れ", "--type", "VISUAL",
          "--order", "1", "--criteria",
          '{"judgment_type": "BINARY", "measurement": "leak", "expected": false}',
          "--data-dir", str(server_dir))
    pipeline = tmp_path / "leak.json"
    pipeline.write_text(json.dumps({"id": "leak-check", "name": "leak", "version": 1,
                                    "steps": []}))
    assert "v1" in kensa("server", "pipeline", "add", str(pipeline), "--data-dir",
                         str(server_dir))
    model = tmp_path / "leak.onnx"
    model.write_bytes(b"not really onnx, but bytes with a hash" * 100)
    assert "sha256:" in kensa("server", "model", "add", str(model), "--data-dir",
                              str(server_dir))
    kensa("server", "user", "add", "sato", "--password", "sato-pass", "--data-dir",
          str(server_dir))
    kensa("server", "item", "update", "GRB-330", "V-LEAK", "--pipeline", "leak-check",
          "--data-dir", str(server_dir))
    assert "GRB-330" in kensa("server", "target", "list", "--data-dir", str(server_dir))

    with ServerProcess("", server_dir) as server:
        connected = kensa("device", "connect", "--server", server.url, "--token", token,
                          "--data-dir", str(device_dir))
        assert "connected as TAB-03" in connected
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
