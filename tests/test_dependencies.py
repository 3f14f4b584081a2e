"""Packages depend one way: the sync server knows nothing of the tablet, and the formats both ends
share import neither a web framework nor a database session."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLET = ("sidecar", "sync.device")


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module a file imports, at the top or inside a function."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
    return found


def _is_tablet(module: str) -> bool:
    return any(module == name or module.startswith(f"{name}.") for name in TABLET)


def test_the_server_imports_nothing_of_the_tablet() -> None:
    files = sorted((ROOT / "sync" / "server").rglob("*.py"))
    assert files
    offending = [f"{path.relative_to(ROOT)}:{line}: {module}"
                 for path in files for line, module in _imports(path) if _is_tablet(module)]
    assert offending == []


def test_the_import_rule_sees_every_form_of_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import sidecar.app\nfrom sync.device import pull\n"
                      "def f():\n    from sidecar.pipeline.store import ModelStore\n"
                      "from sync.protocol import Op\nimport sync.devices_registry\n")
    assert [m for _, m in _imports(sample) if _is_tablet(m)] == [
        "sidecar.app", "sync.device.pull", "sidecar.pipeline.store.ModelStore"]


def _loaded_by(*modules: str) -> list[str]:
    code = ("import importlib, json, sys\n"
            f"for m in {list(modules)!r}:\n    importlib.import_module(m)\n"
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    loaded: list[str] = json.loads(out.stdout)
    return loaded


def test_the_running_server_loads_nothing_of_the_tablet() -> None:
    loaded = _loaded_by("sync.server.app", "sync.server.processor", "sync.server.run")
    assert "sync.server.app" in loaded
    assert [m for m in loaded if _is_tablet(m)] == []


def test_the_shared_formats_need_no_web_framework_or_database() -> None:
    loaded = _loaded_by("schema.formats.criteria", "schema.formats.pipeline",
                        "schema.formats.workflow", "schema.formats.audit",
                        "schema.formats.criteria_text")
    assert "schema.formats.pipeline" in loaded
    banned = ("fastapi", "starlette", "sqlalchemy", "sqlmodel", "sidecar", "sync", "numpy")
    assert [m for m in loaded if m.split(".")[0] in banned] == []


def test_the_sidecar_starts_without_image_or_model_libraries() -> None:
    # OpenCV, NumPy and ONNX Runtime load with the first photo, scan or judgment: at start they
    # would cost the tablet's launch a few hundred milliseconds (scripts/bench start).
    loaded = _loaded_by("sidecar.app", "sidecar.launch")
    assert "sidecar.app" in loaded
    heavy = ("cv2", "numpy", "onnxruntime", "zxingcpp", "pyzbar")
    assert [m for m in loaded if m.split(".")[0] in heavy] == []
