"""First run: enrollment codes on the real sync server, and a fresh sidecar's two ways in.

The server runs as its own process on an embedded SQLite database (fresh per module, or per
test where its throttle state matters); every code comes from ``kensa-server device add --qr``
as an admin would run it, and the tablet side is the real sidecar process on a fresh store.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import pytest
import zxingcpp

from tests.support.sidecar import SidecarProcess
from tests.support.sync_harness import PYTHON, REPO, ServerProcess, _env

CODE = re.compile(r"enrollment code: ([2-9A-Z]{5}-[2-9A-Z]{5})")


def server_cli(server: ServerProcess, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "sync.server", *args, "--data-dir", str(server.data_dir)],
        capture_output=True, text=True, cwd=REPO, env=_env(env), timeout=120, check=False,
    )


def enroll_code(server: ServerProcess, name: str, *extra: str, **env: str) -> str:
    done = server_cli(server, "device", "add", name, "--qr", "--server-url", server.url,
                      *extra, **env)
    assert done.returncode == 0, done.stderr
    found = CODE.search(done.stdout)
    assert found, done.stdout
    return found.group(1)


def exchange(server: ServerProcess, code: str) -> httpx.Response:
    return httpx.post(f"{server.url}/sync/v1/enroll", json={"code": code}, timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("first-run-server")
    proc = ServerProcess("", root / "server", storage=(root / "files").as_uri(),
                         extra_env={"KENSA_SERVER_ENROLLMENT_BURST": "50"})
    with proc:
        for name, role in (("tanaka", "inspector"), ("chief", "admin")):
            added = server_cli(proc, "user", "add", name, "--role", role,
                               "--password", f"{name}-pass-1")
            assert added.returncode == 0, added.stderr
        yield proc


def test_a_code_is_traded_for_the_device_token_once(server: ServerProcess,
                                                   tmp_path: Path) -> None:
    png = tmp_path / "enroll.png"
    done = server_cli(server, "device", "add", "TAB-31", "--qr", "--server-url", server.url,
                      "--png", str(png))
    assert done.returncode == 0, done.stderr
    code = CODE.search(done.stdout)
    assert code is not None
    assert "token:" not in done.stdout  # the long token is never printed with --qr
    # The terminal art and the PNG carry the server and the code, as the tablet reads them.
    image = cv2.imread(str(png))
    assert image is not None
    # Two readers: the tablet's own (zxing-cpp) and OpenCV's, which needs the full quiet zone.
    [read] = zxingcpp.read_barcodes(image)
    text, _, _ = cv2.QRCodeDetector().detectAndDecode(image)
    assert read.text == text
    assert text.startswith("kensa://enroll?server=http%3A%2F%2F127.0.0.1")
    assert text.endswith(f"&code={code.group(1)}")
    assert "█" in done.stdout or "▀" in done.stdout

    typed = code.group(1).lower().replace("-", " ")  # as a gloved hand types it
    first = exchange(server, typed)
    assert first.status_code == 200, first.text
    answer = first.json()
    assert answer["device_name"] == "TAB-31"
    auth = httpx.post(f"{server.url}/sync/v1/auth",
                      headers={"Authorization": f"Bearer {answer['device_token']}"}, timeout=30)
    assert auth.status_code == 200 and auth.json()["device_name"] == "TAB-31"

    again = exchange(server, code.group(1))
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "enrollment_code_used"
    # The token from the first exchange still works: a replay changed nothing.
    auth = httpx.post(f"{server.url}/sync/v1/auth",
                      headers={"Authorization": f"Bearer {answer['device_token']}"}, timeout=30)
    assert auth.status_code == 200


def test_a_code_raced_from_two_tablets_goes_to_one(server: ServerProcess) -> None:
    from concurrent.futures import ThreadPoolExecutor

    code = enroll_code(server, "TAB-38")
    with ThreadPoolExecutor(4) as pool:
        statuses = sorted(r.status_code for r in pool.map(lambda _: exchange(server, code),
                                                          range(4)))
    assert statuses == [200, 409, 409, 409]


def test_wrong_malformed_and_expired_codes_are_refused(server: ServerProcess) -> None:
    wrong = exchange(server, "ABCDE-FGHJK")
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "enrollment_code_invalid"
    malformed = exchange(server, "0O1IL")
    assert malformed.status_code == 400
    assert malformed.json()["error"]["code"] == "enrollment_code_malformed"

    code = enroll_code(server, "TAB-32", KENSA_SERVER_ENROLLMENT_TTL_S="1")
    time.sleep(1.5)
    expired = exchange(server, code)
    assert expired.status_code == 410
    assert expired.json()["error"]["code"] == "enrollment_code_expired"


def test_issuing_and_spending_codes_is_in_the_servers_audit_chain(server: ServerProcess) -> None:
    code = enroll_code(server, "TAB-33")
    assert exchange(server, code).status_code == 200
    verified = server_cli(server, "audit", "verify", "--device", "server")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    listed = server_cli(server, "device", "list")
    assert "TAB-33" in listed.stdout


def test_a_reinstalled_tablet_gets_a_new_code_for_its_registration(server: ServerProcess) -> None:
    assert server_cli(server, "device", "add", "TAB-37").returncode == 0
    # The QR needs the address tablets reach the server at: refused without one, nothing made.
    nowhere = server_cli(server, "device", "enroll", "TAB-37")
    assert nowhere.returncode == 2 and "--server-url" in nowhere.stderr
    done = server_cli(server, "device", "enroll", "TAB-37",
                      KENSA_SERVER_PUBLIC_URL=server.url)
    assert done.returncode == 0, done.stderr
    found = CODE.search(done.stdout)
    assert found is not None
    assert exchange(server, found.group(1)).json()["device_name"] == "TAB-37"
    unknown = server_cli(server, "device", "enroll", "NOPE", "--server-url", server.url)
    assert unknown.returncode != 0 and "NOPE" in unknown.stderr


def test_an_admin_issues_a_code_over_the_admin_api(server: ServerProcess) -> None:
    assert server_cli(server, "device", "add", "TAB-36").returncode == 0
    url = f"{server.url}/admin/v1/devices/TAB-36/enrollment"
    assert httpx.post(url, auth=("tanaka", "tanaka-pass-1"), timeout=30).status_code in (401, 403)
    issued = httpx.post(url, auth=("chief", "chief-pass-1"), timeout=30)
    assert issued.status_code == 201, issued.text
    body = issued.json()
    assert body["device_name"] == "TAB-36"
    assert re.fullmatch(r"[2-9A-Z]{5}-[2-9A-Z]{5}", body["code"])
    assert body["qr_text"] is None  # this server was not told its public address
    assert exchange(server, body["code"]).json()["device_name"] == "TAB-36"
    missing = httpx.post(f"{server.url}/admin/v1/devices/NOPE/enrollment",
                         auth=("chief", "chief-pass-1"), timeout=30)
    assert missing.status_code == 404


def test_wrong_codes_are_throttled(tmp_path: Path) -> None:
    env = {"KENSA_SERVER_ENROLLMENT_BURST": "3", "KENSA_SERVER_ENROLLMENT_REFILL_S": "60"}
    with ServerProcess("", tmp_path / "server", storage=(tmp_path / "f").as_uri(),
                       extra_env=env) as server:
        code = enroll_code(server, "TAB-34")
        for _ in range(3):
            assert exchange(server, "ZZZZZ-ZZZZZ").status_code == 401
        # Even the right code waits now: a guesser cannot tell it found one.
        throttled = exchange(server, code)
        assert throttled.status_code == 429
        assert throttled.json()["error"]["code"] == "enrollment_throttled"
        assert int(throttled.headers["Retry-After"]) >= 1
        # ...and it was not spent by the refused attempt.
        server.restart()  # a restart forgets the throttle, not the code
        assert exchange(server, code).status_code == 200


# --- the sidecar's first run ---------------------------------------------------------------


@pytest.fixture
def tablet(tmp_path: Path) -> Iterator[SidecarProcess]:
    sidecar = SidecarProcess(tmp_path / "tablet", env={"KENSA_PLAINTEXT": "1"})
    sidecar.start()
    try:
        yield sidecar
    finally:
        sidecar.kill()


def login(client: httpx.Client, username: str, password: str) -> httpx.Response:
    return client.post("/auth/login", json={"username": username, "password": password})


def test_connecting_with_the_enrollment_qr_pulls_the_users(
    server: ServerProcess, tablet: SidecarProcess
) -> None:
    code = enroll_code(server, "TAB-35")
    with tablet.client() as client:
        assert client.get("/setup").json() == {"first_run": True}
        # Without the launch token the first-run routes are closed like every other.
        assert httpx.get(f"{tablet.base_url}/setup", timeout=10).status_code == 401

        wrong = client.post("/setup/connect",
                            json={"server_url": server.url, "code": "ABCDE-FGHJK"})
        assert wrong.status_code == 400, wrong.text
        assert wrong.json()["error"]["code"] == "enrollment_code_invalid"
        assert client.get("/setup").json() == {"first_run": True}
        assert client.get("/sync/status").json()["server_url"] is None

        qr = f"kensa://enroll?server={server.url.replace(':', '%3A').replace('/', '%2F')}" \
             f"&code={code}"
        done = client.post("/setup/connect", json={"qr": qr})
        assert done.status_code == 200, done.text
        assert done.json()["device_name"] == "TAB-35"
        assert done.json()["users"] >= 1 and done.json()["pulled"] is True
        assert client.get("/setup").json() == {"first_run": False}
        assert login(client, "tanaka", "tanaka-pass-1").status_code == 200

        # Closed now: neither a second connection nor a local admin without a login.
        again = client.post("/setup/connect", json={"server_url": server.url, "code": code})
        assert again.status_code == 409 and again.json()["error"]["code"] == "setup_done"
        admin = client.post("/setup/local-admin", json={"username": "boss"})
        assert admin.status_code == 409 and admin.json()["error"]["code"] == "setup_done"


def test_stand_alone_makes_the_local_admin_once(tablet: SidecarProcess) -> None:
    with tablet.client() as client:
        weak = client.post("/setup/local-admin",
                           json={"username": "chief", "password": "chief12345"})
        assert weak.status_code == 400 and "username" in weak.json()["error"]["message"]
        short = client.post("/setup/local-admin", json={"username": "chief", "password": "x1"})
        assert short.status_code == 400
        assert client.get("/setup").json() == {"first_run": True}

        made = client.post("/setup/local-admin", json={"username": "chief"})
        assert made.status_code == 201, made.text
        password = made.json()["password"]
        assert made.json()["role"] == "admin" and len(password) >= 10
        assert client.get("/setup").json() == {"first_run": False}
        me = login(client, "chief", password)
        assert me.status_code == 200 and me.json()["user"]["role"] == "admin"

        second = client.post("/setup/local-admin",
                             json={"username": "other", "password": "a-long-passphrase"})
        assert second.status_code == 409 and second.json()["error"]["code"] == "setup_done"
        connect = client.post("/setup/connect",
                              json={"server_url": "https://example.invalid", "code": "AAAAA-BBBBB"})
        assert connect.status_code == 409


def test_a_chosen_password_is_not_echoed(tablet: SidecarProcess) -> None:
    with tablet.client() as client:
        made = client.post("/setup/local-admin",
                           json={"username": "chief", "password": "Werk-Halle-7"})
        assert made.status_code == 201 and made.json()["password"] is None
        assert login(client, "chief", "Werk-Halle-7").status_code == 200

