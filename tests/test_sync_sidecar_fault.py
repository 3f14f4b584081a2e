"""The fault shift with the real sidecar: inspections recorded through its HTTP API while the test
SIGKILLs it, restarts the server, and a fault-injecting proxy sits between them. Afterwards the
server's tables equal the tablet's history — nothing lost, nothing twice — and every photo is
stored under its hash. (``tests/test_sync_fault.py`` and ``scripts/fault-shift`` run the same
comparison with many more kills, driving the device side without HTTP.)"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests.support.fault_shift import FaultReport, _compare
from tests.support.faultproxy import FaultProxy
from tests.support.seed import photo_jpeg
from tests.support.sidecar import SidecarProcess
from tests.support.sync_harness import ServerProcess, queue_facts, seed_site, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

KILLS = 6
KENSA = str(Path(sys.executable).with_name("kensa"))


def _shift(
    sidecar: SidecarProcess,
    password: str,
    rng: random.Random,
    stop: threading.Event,
    done: list[str],
) -> None:
    """An inspector at work until the process dies under them: every call may be the last."""
    try:
        with sidecar.client() as client:
            login = client.post("/auth/login", json={"username": "tanaka", "password": password})
            client.headers["X-Kensa-Session"] = login.json()["token"]
            while not stop.is_set():
                batch = f"A{rng.randint(10, 99)}-{rng.randint(1000, 9999)}"
                qr = json.dumps({"product_id": "BRK-100", "batch_id": batch})
                started = client.post("/sessions", json={"qr_code": qr}).json()
                sid = started["id"]
                for item in started["items"]:
                    path = f"/sessions/{sid}/items/{item['item_id']}"
                    if item["inspection_type"] == "VISUAL":
                        client.post(
                            f"{path}/images",
                            content=photo_jpeg(rng.randint(0, 10**6)),
                            headers={"Content-Type": "image/jpeg"},
                        )
                    if item["required"]:
                        client.post(
                            f"{path}/verification",
                            json={"final_result": "OK", "verification_time": 1.0},
                        )
                    else:
                        client.post(f"{path}/skip")
                client.post(f"/sessions/{sid}/complete")
                done.append(sid)
    except (httpx.HTTPError, KeyError, ValueError):
        return  # killed mid-call: the next start carries on


def test_the_real_sidecar_killed_mid_shift_loses_nothing(pg_url: str, tmp_path: Path) -> None:
    rng = random.Random(5)
    files = tmp_path / "files"
    site = seed_site(pg_url, files.as_uri())
    server = ServerProcess(pg_url, tmp_path / "server", storage=files.as_uri())
    proxy = FaultProxy(0, seed=5)
    device = tmp_path / "tab01"
    sidecar = SidecarProcess(device, env={"KENSA_SYNC_INTERVAL_S": "0.5", "KENSA_AI_WORKERS": "0"})
    report = FaultReport()
    completed: list[str] = []
    try:
        server.start()
        proxy.target_port = server.port
        proxy.enabled = False
        proxy.start()
        # 07:55, on the network: the tablet is connected and pulls users and masters.
        for args in (
            ["connect", "--server", proxy.url, "--token", site.tokens["TAB-01"]],
            ["sync-now"],
        ):
            subprocess.run(
                [KENSA, "device", *args, "--data-dir", str(device)],
                check=True,
                capture_output=True,
                timeout=120,
            )
        proxy.enabled = True
        for kill in range(KILLS):
            sidecar.start()
            stop = threading.Event()
            worker = threading.Thread(
                target=_shift, args=(sidecar, site.passwords["tanaka"], rng, stop, completed)
            )
            worker.start()
            threading.Event().wait(rng.uniform(1.5, 3.0))
            assert sidecar.proc is not None
            sidecar.proc.send_signal(signal.SIGKILL)  # the battery dies, mid-write or mid-push
            sidecar.proc.wait(10)
            stop.set()
            worker.join(30)
            report.kills += 1
            if kill % 2 == 1:
                server.restart(signal.SIGKILL if kill % 4 == 1 else signal.SIGTERM)
                report.server_restarts += 1
        # 16:05, the network is back for good: the sidecar drains everything by itself.
        proxy.enabled = False
        sidecar.start()
        with sidecar.client() as client:

            def drained() -> bool:
                status = client.get("/sync/status").json()
                return bool(status["pending_rows"] == 0 and status["pending_images"] == 0)

            wait_until(drained, 120, what="the tablet's outbox and photos to drain")
        device_id = site.device_ids["TAB-01"]
        wait_until(
            lambda: queue_facts(pg_url, device_id)["unprocessed"] == 0,
            120,
            what="the server's queue to be applied",
        )
        assert sidecar.close_stdin_and_wait() == 0
        report.queue = queue_facts(pg_url, device_id)
        report.faults = dict(proxy.counts)
        _compare(pg_url, device, files, report)
    finally:
        sidecar.kill()
        proxy.stop()
        server.kill()
    assert report.problems == [], report.as_dict()
    assert report.kills == KILLS and report.server_restarts == KILLS // 2
    assert completed, "no inspection was completed between the kills"
    assert report.inspections >= len(completed) and report.images > 0
    # The proxy really did get in the way.
    assert sum(n for fault, n in report.faults.items() if fault != "pass") > 0, report.faults
