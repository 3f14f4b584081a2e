"""What ships: the wheel holds the product's packages and nothing of the dev tooling (demo
models, model generation, synthetic images, demo seeding, the shift simulation), none of its
modules imports what only the tooling needs, and it installs the tablet's and the server's
commands apart."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PRODUCT = ("sidecar", "sync", "schema")
# Modules the product must not carry, by their last name wherever they would sit.
DEV_MODULES = ("modelgen", "synthetic", "shiftsim", "demo", "seed_demo", "devkit")
# Packages only the dev tooling installs (scikit-learn pulls SciPy) or only the repository has.
DEV_IMPORTS = ("onnx", "sklearn", "scipy", "scripts", "tests")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """Built from a copy of the sources, so that no stale ``build/`` of the working tree (where
    setuptools would also write) can add or hide a file."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    # The dev tooling and the tests travel too: what keeps them out must be the packaging
    # configuration, not this copy.
    for package in (*PRODUCT, "scripts", "tests"):
        shutil.copytree(REPO / package, src / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".cache"))
    # No build isolation: the build backend is the one the dev extras installed, so the test
    # fetches nothing.
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
         "-q", "-w", str(base / "out")],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    (built,) = (base / "out").glob("kensa-*.whl")
    return zipfile.ZipFile(built)


def _modules(wheel: zipfile.ZipFile) -> list[str]:
    return [n for n in wheel.namelist() if n.endswith(".py")]


def test_the_wheel_holds_only_the_product_packages(wheel: zipfile.ZipFile) -> None:
    tops = {n.split("/")[0] for n in wheel.namelist() if ".dist-info/" not in n}
    assert tops == set(PRODUCT)
    assert "sidecar/pipeline/engine.py" in wheel.namelist()  # the listing is the real one


@pytest.mark.parametrize("name", DEV_MODULES)
def test_the_wheel_carries_no_dev_module(wheel: zipfile.ZipFile, name: str) -> None:
    found = [n for n in wheel.namelist()
             if Path(n).stem == name or f"/{name}/" in f"/{n}"]
    assert found == []


@pytest.mark.parametrize("suffix", [".onnx", "manifest.json", "brk-100-items.json"])
def test_the_wheel_carries_no_demo_data(wheel: zipfile.ZipFile, suffix: str) -> None:
    assert [n for n in wheel.namelist() if n.endswith(suffix)] == []


def _imported(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", DEV_IMPORTS)
def test_no_shipped_module_imports_dev_tooling(wheel: zipfile.ZipFile, package: str) -> None:
    """Top-level, in a function or under TYPE_CHECKING alike: any of them would be a run-time
    import that the installed product cannot satisfy."""
    offenders = sorted(
        path for path in _modules(wheel)
        if any(name == package or name.startswith(package + ".")
               for name in _imported(wheel.read(path).decode("utf-8")))
    )
    assert offenders == []


def test_the_wheel_installs_the_tablet_and_server_commands_apart(wheel: zipfile.ZipFile) -> None:
    (entry_points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    scripts = {
        key.strip(): value.strip()
        for key, _, value in (line.partition("=") for line in
                              wheel.read(entry_points).decode().splitlines())
        if value
    }
    assert scripts == {"kensa": "sidecar.cli:main", "kensa-server": "sync.server.cli:main"}
