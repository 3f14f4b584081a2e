"""The Linux package as a tablet gets it: the .deb that ``tauri build`` made, unpacked with
``dpkg-deb -x`` into a temporary folder and launched from there (a virtual display, a real Secret
Service on a private D-Bus session, a fresh home).

What it checks is what installing it would give: the shell finds the one-folder sidecar bundle
among its resources (``usr/lib/kensa/kensa-sidecar/``), starts it with a new data key, the sidecar
answers ``/health`` over an encrypted store, the embedded UI reaches it and shows the first-run
setup screen, the shell writes its own log; and when the shell is told to stop, neither it nor the
sidecar is left running.

The .deb is built by ``scripts/build-desktop`` (``scripts/build-sidecar`` and ``tauri build
--bundles deb``; ``scripts/test`` builds it with ``--debug``); without one (``KENSA_DEB`` or the
build's output folder, see ``tests/support/desktop.py``) the test is skipped and says so.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.desktop import built_deb, pids_inside

REPO = Path(__file__).resolve().parents[1]
IDENTIFIER = "com.kensa.client"
READY = re.compile(r"sidecar #(\d+) ready on 127\.0\.0\.1:(\d+) \(pid (\d+)\)")
SHOWN = re.compile(r"ui: the (\w+) screen is shown, ([0-9.]+) s after launch")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the .deb is Linux's"),
]


def _deb() -> Path:
    deb = built_deb()
    if deb is None:
        pytest.skip("no .deb built: scripts/build-desktop builds it")
    return deb


def _need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (scripts/bootstrap)")


@pytest.fixture
def unpacked(tmp_path: Path) -> Path:
    _need("dpkg-deb")
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(_deb()), str(root)], check=True, timeout=300)
    return root


@pytest.fixture
def display() -> Iterator[str]:
    _need("Xvfb")
    read, write = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as numbers:
        number = numbers.readline().strip()
    try:
        assert number, "Xvfb did not start"
        yield f":{number}"
    finally:
        xvfb.terminate()
        xvfb.wait(10)


def _wait_for(pattern: re.Pattern[str], log: Path, timeout: float) -> re.Match[str] | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists():
            found = pattern.search(log.read_text(errors="replace"))
            if found:
                return found
        time.sleep(0.1)
    return None


def test_the_deb_unpacked_starts_its_sidecar_shows_setup_and_leaves_nothing(
    unpacked: Path, display: str, tmp_path: Path
) -> None:
    _need("dbus-run-session", "gnome-keyring-daemon")
    shell = unpacked / "usr" / "bin" / "kensa"
    sidecar = unpacked / "usr" / "lib" / "kensa" / "kensa-sidecar" / "kensa-sidecar"
    assert shell.is_file() and os.access(shell, os.X_OK)
    assert sidecar.is_file() and os.access(sidecar, os.X_OK), "the sidecar bundle is missing"
    assert (sidecar.parent / "_internal").is_dir(), "the sidecar is not the one-folder bundle"
    assert b"KENSA-PLACEHOLDER-SIDECAR" not in sidecar.read_bytes()[:4096]
    assert (unpacked / "usr" / "share" / "applications" / "kensa.desktop").is_file()

    home = tmp_path / "home"
    home.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("KENSA_", "DBUS_"))},
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_RUNTIME_DIR": str(tmp_path / "run"),
        "DISPLAY": display,
        "WEBKIT_DISABLE_COMPOSITING_MODE": "1",
    }
    (tmp_path / "run").mkdir(mode=0o700)
    # The login keyring gnome-keyring makes and unlocks with this password, then the app itself.
    script = (
        'printf kensa-test | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1'
        ' && exec "$0"'
    )
    stderr = tmp_path / "shell-stderr.log"
    with stderr.open("wb") as err:
        session = subprocess.Popen(
            ["dbus-run-session", "--", "sh", "-c", script, str(shell)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    log = home / ".local" / "share" / IDENTIFIER / "logs" / "shell.log"
    try:
        ready = _wait_for(READY, log, timeout=120)
        assert ready, f"no ready sidecar in the shell's log:\n{stderr.read_text()[-3000:]}"
        port, sidecar_pid = int(ready.group(2)), int(ready.group(3))
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)
        assert health.status_code == 200, health.text
        assert health.json()["status"] == "ok"
        assert health.json()["encrypted"] is True
        running = pids_inside(unpacked)
        assert str(shell) in running.values() and running.get(sidecar_pid) == str(sidecar)

        shown = _wait_for(SHOWN, log, timeout=60)
        assert shown, f"the UI showed no first screen:\n{log.read_text()}"
        assert shown.group(1) == "setup"  # a fresh install: no users, no server

        shell_pids = [pid for pid, exe in running.items() if exe == str(shell)]
        for pid in shell_pids:
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while pids_inside(unpacked) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert pids_inside(unpacked) == {}, "processes of the package are still running"
        text = log.read_text()
        assert "sidecar start #1" in text and "kensa shell" in text, text
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(session.pid, signal.SIGKILL)
        session.wait(10)
        for pid in pids_inside(unpacked):
            os.kill(pid, signal.SIGKILL)
