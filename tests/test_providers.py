"""The execution-provider rule (``sidecar.pipeline.providers``), table-tested with the provider
lists the ONNX Runtime builds report, and a real session created through it on this machine."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
from pathlib import Path

import onnxruntime as ort
import pytest

from sidecar.pipeline.providers import (
    COREML,
    CPU,
    CUDA,
    DIRECTML,
    ProviderSettingInvalid,
    attempts,
    choose,
    parse,
)
from sidecar.pipeline.runtime import RuntimeConfig, SessionPool, requested_providers
from sidecar.pipeline.store import ModelStore
from tests.support.seed import seed_device

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

# What each build's get_available_providers() answers (onnxruntime 1.2x/1.3x).
CPU_BUILD = ["AzureExecutionProvider", CPU]
GPU_BUILD = ["TensorrtExecutionProvider", CUDA, CPU]
DML_BUILD = [DIRECTML, CPU]
MAC_BUILD = [COREML, "AzureExecutionProvider", CPU]

CASES = [
    # (setting, available, session providers, wanted first, unavailable, explicit)
    ("auto", CPU_BUILD, (CPU,), CUDA, (CUDA, DIRECTML, COREML), False),
    ("", GPU_BUILD, (CUDA, CPU), CUDA, (DIRECTML, COREML), False),
    ("auto", DML_BUILD, (DIRECTML, CPU), CUDA, (CUDA, COREML), False),
    ("AUTO", MAC_BUILD, (COREML, CPU), CUDA, (CUDA, DIRECTML), False),
    ("cpu", GPU_BUILD, (CPU,), CPU, (), True),
    ("cuda", GPU_BUILD, (CUDA, CPU), CUDA, (), True),
    ("cuda", CPU_BUILD, (CPU,), CUDA, (CUDA,), True),
    ("directml", DML_BUILD, (DIRECTML, CPU), DIRECTML, (), True),
    ("dml", GPU_BUILD, (CPU,), DIRECTML, (DIRECTML,), True),
    ("coreml,cpu", MAC_BUILD, (COREML, CPU), COREML, (), True),
    # The order asked for wins over the default order.
    ("coreml, cuda", [CUDA, COREML, CPU], (COREML, CUDA, CPU), COREML, (), True),
    # ORT's own names, in any case; repeated names count once.
    ("CUDAExecutionProvider,cuda", GPU_BUILD, (CUDA, CPU), CUDA, (), True),
    ("dmlexecutionprovider", DML_BUILD, (DIRECTML, CPU), DIRECTML, (), True),
    # A provider kensa has no short name for, taken as named.
    ("TensorrtExecutionProvider,cuda", GPU_BUILD,
     ("TensorrtExecutionProvider", CUDA, CPU), "TensorrtExecutionProvider", (), True),
    # CPU named before a GPU still ends the list: nothing after it would ever be used.
    ("cpu,cuda", GPU_BUILD, (CUDA, CPU), CPU, (), True),
]


@pytest.mark.parametrize(("setting", "available", "providers", "wanted", "missing", "explicit"),
                         CASES, ids=[f"{c[0] or 'empty'}@{len(c[1])}:{c[1][-2]}" for c in CASES])
def test_choice(setting: str, available: list[str], providers: tuple[str, ...], wanted: str,
                missing: tuple[str, ...], explicit: bool) -> None:
    choice = choose(parse(setting), available)
    assert choice.providers == providers
    assert choice.providers[-1] == CPU
    assert (choice.wanted, choice.unavailable, choice.explicit) == (wanted, missing, explicit)


@pytest.mark.parametrize("setting", ["gpu", "cuda,tpu", "cpu;cuda", "Execution", ","])
def test_unknown_names_are_refused_by_name(setting: str) -> None:
    with pytest.raises(ProviderSettingInvalid, match="unknown execution provider") as err:
        parse(setting)
    assert err.value.status_code == 400 and "provider" in err.value.detail


@pytest.mark.parametrize(("providers", "expected"), [
    ((CPU,), [(CPU,)]),
    ((), [(CPU,)]),
    ((CUDA, CPU), [(CUDA, CPU), (CPU,)]),
    ((DIRECTML, CPU), [(DIRECTML, CPU), (CPU,)]),
])
def test_a_provider_that_fails_at_session_creation_falls_back_to_the_cpu(
        providers: tuple[str, ...], expected: list[tuple[str, ...]]) -> None:
    assert attempts(providers) == expected


def test_the_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KENSA_ORT_PROVIDER", "DirectML, CPU")
    assert RuntimeConfig.from_env().provider == "directml,cpu"
    monkeypatch.setenv("KENSA_ORT_PROVIDER", "npu")
    with pytest.raises(ProviderSettingInvalid, match="'npu'"):
        RuntimeConfig.from_env()


def _identity(tmp_path: Path) -> str:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "id",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                             ir_version=8).SerializeToString()
    sha = hashlib.sha256(data).hexdigest()
    (tmp_path / sha).write_bytes(data)
    return f"sha256:{sha}"


@pytest.mark.skipif(CUDA in ort.get_available_providers(), reason="CUDA starts here")
def test_a_gpu_asked_for_on_a_cpu_build_runs_on_the_cpu_and_says_so(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ref = _identity(tmp_path)
    config = RuntimeConfig(provider="cuda", warmup=False)
    assert requested_providers(config) == [CPU]
    with caplog.at_level(logging.WARNING, logger="kensa.pipeline"):
        loaded = SessionPool(ModelStore(roots=[tmp_path]), config).get(ref)
    assert loaded.provider == CPU == loaded.session.get_providers()[0]
    assert any("CUDAExecutionProvider asked for" in r.getMessage()
               and f"runs on {CPU}" in r.getMessage() for r in caplog.records), caplog.text


def test_auto_on_this_machine_records_the_provider_the_session_got(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ref = _identity(tmp_path)
    with caplog.at_level(logging.WARNING, logger="kensa.pipeline"):
        loaded = SessionPool(ModelStore(roots=[tmp_path]), RuntimeConfig(warmup=False)).get(ref)
    assert loaded.provider == loaded.session.get_providers()[0]
    assert loaded.provider == requested_providers(RuntimeConfig())[0]
    assert not caplog.records  # auto asks only for what this build has: nothing to report


def test_the_sidecar_refuses_to_start_with_an_unknown_provider(tmp_path: Path) -> None:
    env = {**os.environ, "KENSA_TOKEN": "t" * 24, "KENSA_DATA_DIR": str(tmp_path / "data"),
           "KENSA_PLAINTEXT": "1", "KENSA_ORT_PROVIDER": "cuda,npu"}
    proc = subprocess.run([sys.executable, "-m", "sidecar"], env=env, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""  # no ready line
    assert "KENSA_ORT_PROVIDER: unknown execution provider 'npu'" in proc.stderr
    assert not (tmp_path / "data").exists()  # refused before anything was made


def test_a_judgment_on_this_build_names_the_provider_its_model_ran_on(tmp_path: Path) -> None:
    """Through the real sidecar: the V-SCRATCH classifier judges a photo, the result records the
    provider its session got (on a build without a GPU provider, the CPU), and the log says which
    ONNX Runtime build the engine runs on."""
    from scripts.devkit import synthetic
    from tests.support.ai_jobs import analyse
    from tests.support.seed import PASSWORD, QR_JSON
    from tests.support.sidecar import SidecarProcess

    seed_device(tmp_path / "kensa.db")
    proc = SidecarProcess(tmp_path, env={"KENSA_LOG_LEVEL": "INFO", "KENSA_ORT_PROVIDER": ""})
    proc.start()
    try:
        with proc.client() as client:
            login = client.post("/auth/login", json={"username": "tanaka", "password": PASSWORD})
            assert login.status_code == 200, login.text
            client.headers["X-Kensa-Session"] = login.json()["token"]
            started = client.post("/sessions", json={"qr_code": QR_JSON})
            assert started.status_code == 201, started.text
            sid = started.json()["id"]
            item = next(i["item_id"] for i in started.json()["items"]
                        if i["item_code"] == "V-SCRATCH")
            photo = synthetic.encode(synthetic.make_surface(11, "scratch"), ".png")
            up = client.post(f"/sessions/{sid}/items/{item}/images", content=photo,
                             headers={"Content-Type": "image/png"})
            assert up.status_code == 201, up.text
            result = analyse(client, sid, item, up.json()["id"])
    finally:
        proc.kill()
    got = result["provenance"]["execution_provider"]
    assert got == requested_providers(RuntimeConfig())[0]
    if not {CUDA, DIRECTML, COREML} & set(ort.get_available_providers()):
        assert got == CPU
    log = proc.stderr_path.read_text(encoding="utf-8")
    assert f"AI engine: onnxruntime {ort.__version__}; sessions ask for {got}" in log, log[-2000:]
