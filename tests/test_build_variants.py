"""scripts/build-sidecar's variants: each refuses, before building anything, an environment whose
ONNX Runtime is not the variant's build alone (the builds share one module and overwrite each
other). Building a bundle takes minutes; tests/test_build_sidecar.py builds the CPU one."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def build(tmp_path: Path, *args: str, venv: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SIDECAR_DIST": str(tmp_path / "dist"),
           "SIDECAR_WORK": str(tmp_path / "work")}
    if venv is not None:
        env["SIDECAR_VENV"] = venv
    return subprocess.run(["bash", str(REPO / "scripts" / "build-sidecar"), *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(("args", "venv", "code", "message"), [
    (["--variant", "tpu"], None, 2, "unknown variant 'tpu' (cpu, cuda or directml)"),
    (["--gpu"], None, 2, "unknown argument '--gpu'"),
    # This checkout's environment has the CPU build, which a GPU bundle must not carry.
    (["--variant", "cuda"], str(REPO / ".venv"), 2,
     "variant cuda from {repo}/.venv: this environment has onnxruntime; the variant needs "
     "onnxruntime-gpu alone"),
    (["--variant=directml"], str(REPO / ".venv"), 2,
     "this environment has onnxruntime; the variant needs onnxruntime-directml alone"),
    (["--variant", "cuda"], "/nonexistent/venv", 1, "no /nonexistent/venv here"),
])
def test_a_variant_refused_builds_nothing(tmp_path: Path, args: list[str], venv: str | None,
                                          code: int, message: str) -> None:
    done = build(tmp_path, *args, venv=venv)
    assert done.returncode == code, done.stderr
    assert message.format(repo=REPO) in done.stderr
    assert not (tmp_path / "dist").exists() and not (tmp_path / "work").exists()
