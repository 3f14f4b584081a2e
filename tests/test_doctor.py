"""``kensa doctor`` through the installed command, on a seeded encrypted tablet store: what it
says is measured here (the ONNX Runtime build, the provider each pipeline's sessions got)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import onnxruntime as ort
import pytest

from sidecar.key_source import write_key_file
from sidecar.keys import DataKey
from sidecar.pipeline.engine import PipelineEngine
from sidecar.pipeline.runtime import RuntimeConfig, requested_providers
from sidecar.pipeline.store import ModelStore
from tests.support.seed import demo_pipelines, seed_device

KENSA = Path(sys.executable).with_name("kensa")


def doctor(data: Path, key_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("KENSA_PLAINTEXT", "KENSA_ORT_PROVIDER")}
    env.update(KENSA_DATA_DIR=str(data), KENSA_KEY_FILE=str(key_file),
               KENSA_CONFIG_DIR=str(data.parent / "config"))
    return subprocess.run([str(KENSA), "doctor", *args], env=env, capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.fixture
def tablet(tmp_path: Path) -> tuple[Path, Path]:
    key = DataKey.generate()
    data = tmp_path / "data"
    seed_device(data / "kensa.db", key)
    key_file = tmp_path / "keys" / "tablet.key"
    write_key_file(key_file, key)
    return data, key_file


def test_doctor_names_the_build_the_choice_and_each_pipelines_provider(
        tablet: tuple[Path, Path]) -> None:
    data, _ = tablet
    done = doctor(*tablet)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert f"data folder: {data}\n" in out
    assert f"device store {data / 'kensa.db'}: encrypted (SQLCipher, AES-256)" in out
    assert f"onnxruntime {ort.__version__} (onnxruntime {ort.__version__})" in out
    chosen = requested_providers(RuntimeConfig())[0]
    assert f"  chosen: {chosen} " in out
    # The provider each pipeline's sessions got, as a session made here gets it.
    engine = PipelineEngine(ModelStore.for_device(data / "models"), RuntimeConfig(warmup=False))
    for p in demo_pipelines():
        plan = engine.compile(p)
        head = f"  {p['id']} ({p['name']} v{p['version']}): "
        if plan.models:
            got = sorted({engine.pool.get(m).provider for m in plan.models})
            assert f"{head}{', '.join(got)}\n" in out
        else:
            assert f"{head}runs no model\n" in out
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert "  brk100-v-scratch (surface-scratch v1): CPUExecutionProvider\n" in out


def test_a_store_the_key_does_not_open_is_reported_and_fails(
        tablet: tuple[Path, Path], tmp_path: Path) -> None:
    data, _ = tablet
    other = tmp_path / "keys" / "other.key"
    write_key_file(other, DataKey.generate())
    done = doctor(data, other, "--no-load")
    assert done.returncode == 1
    assert "pipelines: cannot read " in done.stdout, done.stdout


def test_an_unknown_provider_is_refused_by_name(tablet: tuple[Path, Path]) -> None:
    done = doctor(*tablet, "--no-load", "--provider", "cuda,npu")
    assert done.returncode == 2
    assert "unknown execution provider 'npu'" in done.stderr
