"""``kensa qr decode``: one line per file, JSON or human-readable, and its exit status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from typer.testing import CliRunner

from sidecar.qr.cli import EXIT_UNREADABLE, qr_app

DATA = Path(os.environ.get("KENSA_QR_DATA")
            or Path(__file__).resolve().parents[1].parent / "shared/data/qr-zxing")
runner = CliRunner()


def expected_text(name: str) -> str:
    return (DATA / name).with_suffix(".txt").read_text(encoding="utf-8")


def json_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines()]


def blank_png(tmp_path: Path) -> Path:
    path = tmp_path / "blank.png"
    cv2.imwrite(str(path), np.full((240, 320), 255, dtype=np.uint8))
    return path


def test_json_one_line_per_path() -> None:
    names = ["qrcode-1/1.png", "qrcode-2/30.png", "qrcode-3/01.png"]
    result = runner.invoke(qr_app, ["decode", "--json", *(str(DATA / n) for n in names)])
    assert result.exit_code == 0, result.output
    lines = json_lines(result.stdout)
    assert [line["path"] for line in lines] == [str(DATA / n) for n in names]
    for name, line in zip(names, lines, strict=True):
        assert set(line) == {"path", "codes", "ms"}
        assert line["codes"][0]["format"] == "QR_CODE"
        assert line["codes"][0]["text"].replace("\r\n", "\n") == expected_text(name)
        assert isinstance(line["ms"], float) and line["ms"] >= 0


def test_nothing_decoded_still_exits_zero(tmp_path: Path) -> None:
    path = blank_png(tmp_path)
    result = runner.invoke(qr_app, ["decode", "--json", str(path)])
    assert result.exit_code == 0
    [line] = json_lines(result.stdout)
    assert line["codes"] == [] and "error" not in line


def test_missing_and_non_image_files_get_an_error_line(tmp_path: Path) -> None:
    text_file = tmp_path / "notes.txt"
    text_file.write_text("BRK-100_A12-3456_20261127T0800", encoding="utf-8")
    paths = [tmp_path / "missing.png", text_file, tmp_path, DATA / "qrcode-1/1.png"]
    result = runner.invoke(qr_app, ["decode", "--json", *map(str, paths)])
    assert result.exit_code == EXIT_UNREADABLE
    missing, not_image, directory, good = json_lines(result.stdout)
    assert missing["error"]["code"] == "not_found" and missing["ms"] is None
    assert not_image["error"]["code"] == "image_invalid"
    assert directory["error"]["code"] == "unreadable"
    assert all(line["codes"] == [] for line in (missing, not_image, directory))
    assert "error" not in good and good["codes"]  # later files are still decoded


def test_human_readable_output(tmp_path: Path) -> None:
    photo = DATA / "qrcode-2/17.png"  # two lines of Shift_JIS text
    result = runner.invoke(qr_app, ["decode", str(photo), str(blank_png(tmp_path))])
    assert result.exit_code == 0
    found, nothing = result.stdout.splitlines()
    assert found.startswith(f"{photo}: QR_CODE ") and "ﾃﾞｻﾞｲﾝQR" in found and "ms)" in found
    assert nothing.startswith(f"{tmp_path / 'blank.png'}: no code found")


def test_registered_in_the_kensa_command() -> None:
    from sidecar.cli import app

    result = runner.invoke(app, ["qr", "decode", "--json", str(DATA / "qrcode-3/01.png")])
    assert result.exit_code == 0, result.output
    [line] = json_lines(result.stdout)
    assert line["codes"][0]["text"].replace("\r\n", "\n") == expected_text("qrcode-3/01.png")


def test_standalone_process_prints_json_lines(tmp_path: Path) -> None:
    # Through a real interpreter: stdout encoding and import paths as a user would have them.
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "qr", "decode", "--json",
         str(DATA / "qrcode-2/30.png"), str(blank_png(tmp_path))],
        cwd=repo, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    first, second = json_lines(done.stdout)
    assert first["codes"][0]["text"].replace("\r\n", "\n") == expected_text("qrcode-2/30.png")
    assert second["codes"] == []
