"""The desktop app end to end, as a tablet runs it: the built package (``tauri build``'s .deb, the
UI inside the shell, the one-folder sidecar bundle among its resources), unpacked with
``dpkg-deb -x``, driven through ``tauri-driver`` and WebKitGTK's
WebDriver (Debian's ``webkit2gtk-driver``) on a virtual display, with a real Secret Service for
its data key and a real ``kensa-server``.

A fresh install shows the setup screen; a mistyped code is refused, and the enrollment QR the
server's admin made, read into the scan field, connects it and pulls the users and the site's
masters; the inspector logs in; the sidecar is SIGKILLed and the window carries on
with the restarted one (same login); closing the window leaves no process of the app behind.
Screenshots go to ``artifacts/desktop/``.

The package is built by ``scripts/build-desktop`` (``scripts/test`` builds it with ``--debug``);
without it, or without tauri-driver, Xvfb or gnome-keyring (``scripts/bootstrap`` installs them),
the test is skipped and says so.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.support.desktop import built_deb, pids_inside

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "artifacts" / "desktop"
IDENTIFIER = "com.kensa.client"
READY = re.compile(r"sidecar #(\d+) ready on 127\.0\.0\.1:(\d+) \(pid (\d+)\)")
PASSWORD = "tanaka-demo"  # scripts/devkit/seed_demo.py
# BRK-100's five items (scripts/devkit/models/brk-100-items.json) and the photo each gets.
ITEMS = [
    ("V-SCRATCH", "photo-1.jpg"),
    ("V-FOREIGN", "photo-2.jpg"),
    ("T-MARKING", "photo-3.jpg"),
    ("D-BORE", "bore.jpg"),
    ("F-PISTON", None),
]
LABEL = '{"product_id": "BRK-100", "batch_id": "D-0001", "serial": "S-DESKTOP"}'

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="tauri-driver: Linux here"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _tool(name: str) -> str:
    found = shutil.which(name) or (
        str(Path.home() / ".cargo/bin" / name)
        if (Path.home() / ".cargo/bin" / name).exists()
        else None
    )
    if found is None:
        pytest.skip(f"{name} is not installed (scripts/bootstrap)")
    return found


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Callable[..., str], Path]]:
    data, port = tmp_path / "server", _free_port()
    exe = str(REPO / ".venv/bin/kensa-server")

    def cli(*args: str) -> str:
        done = subprocess.run(
            [exe, *args, "--data-dir", str(data)], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    # The demo site: users with their roles, BRK-100 with its items, pipelines and models,
    # published through the server's own masters, as a tablet pulls real ones.
    seeded = subprocess.run(
        [str(REPO / ".venv/bin/python"), "-m", "scripts.devkit.seed_demo", "--data-dir", str(data)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert seeded.returncode == 0, seeded.stderr[-3000:]
    proc = subprocess.Popen(
        [exe, "run", "--data-dir", str(data), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "server-stderr.log").open("wb"),
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if b'"ready"' in line:
                break
        else:
            pytest.fail((tmp_path / "server-stderr.log").read_text()[-3000:])
        yield f"http://127.0.0.1:{port}", cli, data / "server.db"
    finally:
        proc.terminate()
        proc.wait(20)


@pytest.fixture
def display() -> Iterator[str]:
    xvfb_exe = _tool("Xvfb")
    read, write = os.pipe()
    xvfb = subprocess.Popen(
        [xvfb_exe, "-displayfd", str(write), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
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


class WebDriver:
    """The W3C WebDriver protocol over HTTP, as much of it as the test needs."""

    def __init__(self, base: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=120)
        self.session = ""

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        url = f"/session/{self.session}{path}" if self.session else path
        r = self.http.request(method, url, json=body)
        value = r.json().get("value") if r.content else None
        if r.status_code != 200:
            raise AssertionError(f"{method} {url}: {r.status_code} {value}")
        return value

    def start(self, application: Path) -> None:
        options = {"tauri:options": {"application": str(application)}}
        caps = {"capabilities": {"alwaysMatch": options}}
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def find(self, testid: str, timeout: float = 60) -> str:
        return self.find_css(f'[data-testid="{testid}"]', timeout)

    def find_css(self, css: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        query = {"using": "css selector", "value": css}
        while True:
            found = self.call("POST", "/elements", query)
            if found:
                return str(next(iter(found[0].values())))
            if time.monotonic() > deadline:
                self.shot("missing-" + re.sub(r"[^a-zA-Z0-9-]+", "-", css).strip("-"))
                raise AssertionError(f"no {css} within {timeout} s")
            time.sleep(0.2)

    def present(self, css: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.call("POST", "/elements", {"using": "css selector", "value": css}):
                return True
            time.sleep(0.2)
        return False

    def first_of(self, *css: str, timeout: float) -> str:
        """Whichever of the selectors matches first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for one in css:
                if self.call("POST", "/elements", {"using": "css selector", "value": one}):
                    return one
            time.sleep(0.2)
        raise AssertionError(f"none of {css} within {timeout} s")

    def click_css(self, css: str) -> None:
        self.call("POST", f"/element/{self.find_css(css)}/click", {})

    def gone(self, testid: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        query = {"using": "css selector", "value": f'[data-testid="{testid}"]'}
        while self.call("POST", "/elements", query):
            if time.monotonic() > deadline:
                raise AssertionError(f"[data-testid={testid}] still there after {timeout} s")
            time.sleep(0.2)

    def click(self, testid: str) -> None:
        self.call("POST", f"/element/{self.find(testid)}/click", {})

    def type(self, testid: str, text: str) -> None:
        element = self.find(testid)
        self.call("POST", f"/element/{element}/clear", {})
        if text:
            self.call("POST", f"/element/{element}/value", {"text": text})

    def value(self, testid: str) -> str:
        return str(self.call("GET", f"/element/{self.find(testid)}/property/value"))

    def text(self, testid: str) -> str:
        return str(self.call("GET", f"/element/{self.find(testid)}/text"))

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        png = base64.b64decode(self.call("GET", "/screenshot"))
        (ARTIFACTS / f"{name}.png").write_bytes(png)

    def quit(self) -> None:
        if self.session:
            with contextlib.suppress(Exception):
                self.call("DELETE", "")
            self.session = ""


def _rows(db: Path, table: str, timeout: float, at_least: int = 1) -> int:
    """Rows in one of the server's tables (with a condition), waiting for the first (the sync
    runs on its own)."""
    import sqlite3

    deadline = time.monotonic() + timeout
    while True:
        with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
            count: int = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        if count >= at_least or time.monotonic() > deadline:
            return count
        time.sleep(0.5)


def _ready(log: Path, generation: int, timeout: float = 120) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists():
            for found in READY.finditer(log.read_text(errors="replace")):
                if int(found.group(1)) == generation:
                    return int(found.group(2)), int(found.group(3))
        time.sleep(0.2)
    text = log.read_text() if log.exists() else "(no log)"
    raise AssertionError(f"sidecar #{generation} not ready:\n{text}")


def test_fresh_install_enrolls_logs_in_survives_a_sidecar_kill_and_leaves_nothing(
    server: tuple[str, Callable[..., str], Path], display: str, tmp_path: Path
) -> None:
    deb = built_deb()
    if deb is None:
        pytest.skip("no .deb built: scripts/build-desktop builds it")
    driver_exe = _tool("tauri-driver")
    native = _tool("WebKitWebDriver")
    _tool("dbus-run-session")
    _tool("gnome-keyring-daemon")
    _tool("dpkg-deb")
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True, timeout=300)
    app = root / "usr" / "bin" / "kensa"
    assert app.is_file()

    url, cli, server_db = server
    photos = tmp_path / "photos"
    subprocess.run(
        [str(REPO / ".venv/bin/python"), "-m", "tests.support.seed_cli", str(tmp_path / "unused"),
         "--fixtures", str(photos)],
        cwd=REPO, check=True, capture_output=True, timeout=300,
    )
    made = cli("device", "add", "TAB-DESKTOP", "--qr", "--server-url", url)
    code = re.search(r"enrollment code: (\S+)", made)
    assert code, made

    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "run").mkdir(mode=0o700)
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("KENSA_", "DBUS_"))},
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_RUNTIME_DIR": str(tmp_path / "run"),
        "DISPLAY": display,
        "WEBKIT_DISABLE_COMPOSITING_MODE": "1",
    }
    script = (
        "printf kensa-test | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1"
        ' && exec "$0" --port "$1" --native-driver "$2"'
    )
    driver_log = tmp_path / "tauri-driver.log"
    with driver_log.open("wb") as out:
        session = subprocess.Popen(
            ["dbus-run-session", "--", "sh", "-c", script, driver_exe, str(port), native],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    log = home / ".local/share" / IDENTIFIER / "logs" / "shell.log"
    wd = WebDriver(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if wd.http.get("/status").status_code == 200:
                    break
            assert time.monotonic() < deadline, driver_log.read_text()[-3000:]
            time.sleep(0.2)
        wd.start(app)

        # A fresh install: the setup screen, connected by the admin's enrollment code.
        wd.find("setup-screen", timeout=120)
        wd.shot("01-setup")
        wd.click("setup-connect")
        # A mistyped code is refused in words and leaves the tablet as it was.
        wd.type("setup-server-url", url)
        wd.type("setup-code", "ABCDE-FGHJK")
        wd.click("setup-connect-submit")
        wd.find("setup-error")
        # The admin's QR, read by a wedge scanner into the scan field, fills server and code.
        wd.type("setup-server-url", "")
        wd.type("setup-code", "")
        qr = f"kensa://enroll?server={quote(url, safe='')}&code={code.group(1)}"
        wd.type("setup-scan", qr + "\ue007")
        assert wd.value("setup-server-url") == url
        assert wd.value("setup-code") == code.group(1)
        wd.shot("02-connect")
        wd.click("setup-connect-submit")
        wd.find("login-screen", timeout=120)
        wd.type("username", "tanaka")
        wd.type("password", PASSWORD)
        wd.click("login-submit")
        assert wd.text("user-name").startswith("田中")
        wd.shot("03-logged-in")

        # One whole inspection: each photo judged by the on-device AI, every verdict OK (signed
        # where it overrides the AI), completed, and synced to the server.
        wd.type("wedge", LABEL + "\ue007")  # a wedge scanner: the label's text, then Enter
        wd.find("target-screen")
        wd.click("start")
        dialog = '[data-testid="signature-dialog"]'
        for n, (code_, photo_file) in enumerate(ITEMS):
            panel = f'[data-testid="item-panel"][data-code="{code_}"]'
            wd.find_css(panel, timeout=120)
            if photo_file is not None:
                photo = wd.find_css(f'{panel} [data-testid="photo-file"]')
                wd.call("POST", f"/element/{photo}/value", {"text": str(photos / photo_file)})
                result = f'{panel} [data-testid="ai-result"]'
                if not wd.present(result, timeout=15):
                    # An item whose photo does not start its AI by itself.
                    wd.click_css(f'{panel} [data-testid="analyse"]')
                wd.find_css(result, timeout=180)
                if n == 0:
                    wd.shot("04-ai-judgment")
            ok = wd.find_css(f'{panel} [data-testid="verdict-OK"]')
            if wd.call("GET", f"/element/{ok}/attribute/aria-pressed") != "true":
                wd.call("POST", f"/element/{ok}/click", {})
            wd.click_css(f'{panel} [data-testid="submit-verdict"]')
            following = (
                f'[data-testid="item-panel"][data-code="{ITEMS[n + 1][0]}"]'
                if n + 1 < len(ITEMS)
                else '[data-testid="complete"]'
            )
            if wd.first_of(dialog, following, timeout=120) == dialog:
                # The AI said otherwise: the override is signed.
                wd.type("signature-password", PASSWORD)
                wd.click("signature-sign")
        complete = wd.find("complete")
        deadline = time.monotonic() + 60
        while wd.call("GET", f"/element/{complete}/property/disabled") and (
            time.monotonic() < deadline
        ):
            time.sleep(0.2)
        wd.click("complete")
        if wd.first_of(dialog, '[data-testid="summary-screen"]', timeout=120) == dialog:
            wd.type("signature-password", PASSWORD)
            wd.click("signature-sign")
        assert wd.text("summary-result") in ("合格", "OK")
        assert _rows(server_db, "ai_inspection_results", timeout=120, at_least=4) >= 4
        completed = _rows(
            server_db, "inspection_sessions WHERE status = 'completed'", timeout=120
        )
        assert completed == 1, "the completed inspection did not reach the server"
        wd.shot("05-completed-and-synced")

        # The sidecar dies: the shell starts another, the window carries on with it.
        _, pid = _ready(log, 1)
        os.kill(pid, signal.SIGKILL)
        _ready(log, 2)
        wd.find("conn-back", timeout=60)  # "reconnected", in place of the lost banner
        wd.gone("conn-banner", timeout=60)
        assert wd.text("user-name").startswith("田中")
        wd.shot("06-after-sidecar-kill")
        text = log.read_text()
        assert "sidecar #1 ended" in text and "SIGKILL" in text, text
        assert "restart attempt 1" in text, text

        # Closing the window ends the app and its sidecar.
        wd.quit()
        deadline = time.monotonic() + 30
        while pids_inside(root) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert pids_inside(root) == {}, "the app or its sidecar is still running"
    finally:
        wd.quit()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(session.pid, signal.SIGKILL)
        session.wait(10)
        for pid in pids_inside(root):
            os.kill(pid, signal.SIGKILL)
