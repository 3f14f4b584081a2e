"""PyInstaller sidecar: scripts/build-sidecar builds it; the bundle keeps the launch protocol.

The one-folder bundle's executable is what the Tauri shell spawns on a tablet, so this runs it the
way the shell does (token and data directory in the environment, ``--key-stdin`` and the data key
as the first line on stdin, a pipe the shell holds) and checks what the shell relies on: one ready
line on stdout and nothing else there, nothing unpacked into a temporary folder (the start cost a
one-file bundle pays each time), a served API over the migrated encrypted store (SQLCipher is in
the bundle), a clean exit when stdin closes; and another tablet's key is exit 2 with every file
left as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from schema.migrate import SQLITE_MAGIC
from sidecar.keys import DataKey
from tests.support.seed import PASSWORD, qr_png, seed_device

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once for the tests of this file: a build takes minutes."""
    where = tmp_path_factory.mktemp("bundle")
    return _build(where / "dist", where / "work")


def _build(dist: Path, work: Path) -> Path:
    pytest.importorskip("PyInstaller", reason="PyInstaller is a dev dependency of the bundle")
    env = {**os.environ, "SIDECAR_DIST": str(dist), "SIDECAR_WORK": str(work)}
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "build-sidecar")],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    output = done.stdout[-3000:] + done.stderr[-5000:]
    assert done.returncode == 0, f"build-sidecar failed:\n{output}"
    # Where the shell resolves it among its resources (SIDECAR_DIR / SIDECAR_BINARY in lib.rs).
    folder = dist / "kensa-sidecar"
    exe = folder / ("kensa-sidecar.exe" if sys.platform == "win32" else "kensa-sidecar")
    assert exe.is_file(), f"no {exe}"
    assert (folder / "_internal").is_dir(), "not a one-folder bundle"
    return exe


def _bundled_names(exe: Path) -> set[str]:
    """The files beside the executable (``_internal/``) and what its own archive carries."""
    from PyInstaller.archive.readers import CArchiveReader  # type: ignore[import-untyped]

    internal = exe.parent / "_internal"
    files = {p.relative_to(internal).as_posix() for p in internal.rglob("*") if p.is_file()}
    return files | set(CArchiveReader(str(exe)).toc)


def test_bundle_contents_the_sidecar_loads_by_path_or_late(bundle: Path) -> None:
    """What PyInstaller cannot find by following imports, and a run may not reach."""
    names = _bundled_names(bundle)
    migrations = REPO / "schema" / "migrations"
    for path in [*migrations.rglob("*.py"), *migrations.rglob("*.mako")]:
        if "__pycache__" not in path.parts:
            assert path.relative_to(REPO).as_posix() in names, f"{path} is not in the bundle"
    assert "schema/sql/device.sql" in names
    assert any(n.startswith("onnxruntime/capi/onnxruntime_pybind11_state") for n in names)
    assert any(n.startswith("zxingcpp/zxingcpp") for n in names)
    if sys.platform.startswith("linux") and any(Path("/usr/lib").glob("*/libzbar.so.0")):
        assert "libzbar.so.0" in names
    # The dev-only model generator's dependencies stay out (they would add ~60 MB).
    assert not any(n.startswith(("scipy/", "sklearn/", "onnx/")) for n in names)


def _bundled_modules(exe: Path) -> set[str]:
    """Every name in the bundle, the Python modules of its PYZ archive included."""
    from PyInstaller.archive.readers import pkg_archive_contents

    return set(pkg_archive_contents(str(exe)))


# What a tablet never runs: the dev tooling (demo models, model generation, synthetic images,
# demo seeding, the shift driver) and what only it needs, the tests, and the sync server; and
# httpx's command-line client with the terminal rendering it brings (loaded at start otherwise).
NOT_BUNDLED = ["scripts", "tests", "onnx", "sklearn", "scipy", "sync.server",
               "sidecar.pipeline.modelgen", "sidecar.pipeline.synthetic", "sync.device.shiftsim",
               "httpx._main", "rich", "pygments", "markdown_it"]


@pytest.mark.parametrize("module", NOT_BUNDLED)
def test_the_bundle_carries_no_dev_tooling_and_no_server(bundle: Path, module: str) -> None:
    names = _bundled_modules(bundle)
    assert "sidecar.app" in names and "sync.device.service" in names  # the PYZ was read
    assert sorted(n for n in names if n == module or n.startswith(module + ".")) == []


def test_the_bundle_carries_no_demo_data(bundle: Path) -> None:
    names = _bundled_names(bundle)
    assert [n for n in names if n.endswith((".onnx", "manifest.json", "brk-100-items.json"))] == []


def _read_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    line = b""
    try:
        while not line.endswith(b"\n"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no ready line within {timeout} s (got {line!r})")
            if sel.select(timeout=0.2):
                chunk = os.read(proc.stdout.fileno(), 1)
                if not chunk:
                    raise EOFError(f"stdout closed before the ready line (got {line!r})")
                line += chunk
    finally:
        sel.close()
    return line


def test_bundle_prints_ready_serves_and_exits_when_stdin_closes(
    bundle: Path, tmp_path: Path
) -> None:
    data, unpack = tmp_path / "data", tmp_path / "tmp"
    unpack.mkdir()
    # A user and a product to scan, so that the QR route runs inside the bundle: OpenCV,
    # zxing-cpp and ZBar are loaded on first use, not at start.
    data.mkdir()
    key = DataKey.generate()
    seed_device(data / "kensa.db", key)
    token = secrets.token_hex(32)
    env = {
        **_shell_env(),
        "KENSA_TOKEN": token,
        "KENSA_DATA_DIR": str(data),
        # Where a one-file bootloader would unpack itself: a folder bundle must not.
        "TMPDIR": str(unpack),
        "TEMP": str(unpack),
        "TMP": str(unpack),
    }
    stderr_path = tmp_path / "stderr.log"
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [str(bundle), "--key-stdin"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            cwd=tmp_path,
            # Its own group, as the shell does, so a failed test kills the whole bundle.
            start_new_session=sys.platform != "win32",
        )
    try:
        started = time.monotonic()
        assert proc.stdin is not None
        proc.stdin.write(json.dumps({"data_key": key.hex()}).encode() + b"\n")
        proc.stdin.flush()
        try:
            line = _read_line(proc, timeout=180)
        except (TimeoutError, EOFError) as exc:
            pytest.fail(f"{exc}\n{stderr_path.read_text(errors='replace')[-4000:]}")
        ready_s = time.monotonic() - started
        assert list(unpack.iterdir()) == [], "the bundle unpacked itself at start"
        ready: dict[str, Any] = json.loads(line)
        assert ready["event"] == "ready"
        assert isinstance(ready["port"], int) and 0 < ready["port"] < 65536
        assert isinstance(ready["pid"], int)
        assert ready["encrypted"] is True
        print(f"bundle ready in {ready_s:.1f} s")

        base = f"http://127.0.0.1:{ready['port']}"
        with httpx.Client(base_url=base, timeout=30) as client:
            health = client.get("/health")
            assert health.status_code == 200, health.text
            assert health.json()["status"] == "ok"
            assert health.json()["encrypted"] is True
            # The token is accepted (what is missing is a user's login), so the request got past
            # the guard into a route that reads the migrated database.
            client.headers["Authorization"] = f"Bearer {token}"
            r = client.get("/sessions/interrupted")
            assert r.json()["error"]["code"] == "login_required", r.text
            login = client.post("/auth/login", json={"username": "tanaka", "password": PASSWORD})
            assert login.status_code == 200, login.text
            client.headers["X-Kensa-Session"] = login.json()["token"]
            scan = client.post("/scan", files={"file": ("label.png", qr_png(), "image/png")})
            assert scan.status_code == 200, scan.text
            assert scan.json()["unit"]["batch_id"] == "A12-3456"

        assert proc.stdin is not None
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0
        assert proc.stdout is not None
        assert proc.stdout.read() == b"", "stdout carried more than the ready line"
        log = stderr_path.read_text(errors="replace")
        assert "Traceback" not in log, log[-4000:]
        if sys.platform.startswith("linux") and any(Path("/usr/lib").glob("*/libzbar.so.0")):
            # The bundle carries libzbar, so pyzbar must have found it (the scan loaded it).
            assert "ZBar is unavailable" not in log, log[-4000:]
        # The store the bundle migrated and served is still SQLCipher's, not plain SQLite.
        assert not (data / "kensa.db").read_bytes().startswith(SQLITE_MAGIC)
    finally:
        if proc.poll() is None:
            if sys.platform != "win32":
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
            proc.wait(10)


def _shell_env() -> dict[str, str]:
    """The environment the shell gives the bundle: no plaintext store allowed, no key file."""
    return {k: v for k, v in os.environ.items() if k not in ("KENSA_PLAINTEXT", "KENSA_KEY_FILE")}


def _tree(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_the_bundle_refuses_another_tablets_key_and_changes_nothing(
    bundle: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    seed_device(data / "kensa.db", DataKey.generate())
    before = _tree(data)
    done = subprocess.run(
        [str(bundle), "--key-stdin"],
        input=json.dumps({"data_key": DataKey.generate().hex()}).encode() + b"\n",
        env={**_shell_env(), "KENSA_TOKEN": secrets.token_hex(32), "KENSA_DATA_DIR": str(data)},
        capture_output=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr.decode(errors="replace")[-4000:]
    assert done.stdout == b""  # no ready line: the shell shows its error screen
    assert b"cannot be opened" in done.stderr, done.stderr.decode(errors="replace")[-4000:]
    assert _tree(data) == before
