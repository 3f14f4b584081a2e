"""The real sidecar, as the Tauri shell starts it: a subprocess that prints one ready line."""

from __future__ import annotations

import json
import os
import secrets
import selectors
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from sidecar.keys import DataKey


class SidecarProcess:
    def __init__(
        self,
        data_dir: Path,
        token: str | None = None,
        env: dict[str, str] | None = None,
        *,
        key: DataKey | None = None,
        stderr_path: Path | None = None,
        command: list[str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        # Another way to run it, e.g. the PyInstaller bundle's executable.
        self.command = command or [sys.executable, "-m", "sidecar"]
        self.token = token or secrets.token_urlsafe(24)
        self.extra_env = env or {}
        # With a key, the sidecar is started as the shell starts it: --key-stdin, the key as
        # the first line on its stdin, and an encrypted store.
        self.key = key
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, Any] = {}
        self.stderr_path = stderr_path or data_dir / "sidecar-stderr.log"

    def start(self, timeout: float = 30.0) -> dict[str, Any]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            **self.extra_env,
            "KENSA_TOKEN": self.token,
            "KENSA_DATA_DIR": str(self.data_dir),
        }
        args = list(self.command)
        if self.key is not None:
            args.append("--key-stdin")
            env.pop("KENSA_PLAINTEXT", None)
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr_path.open("ab"),
            env=env,
        )
        assert self.proc.stdout is not None
        if self.key is not None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps({"data_key": self.key.hex()}).encode() + b"\n")
            self.proc.stdin.flush()
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.kill()
                raise RuntimeError(
                    f"sidecar did not get ready: {self.stderr_path.read_text()[-2000:]}"
                )
            if sel.select(timeout=0.1):
                chunk = os.read(self.proc.stdout.fileno(), 1)
                if not chunk:
                    continue
                line += chunk
        sel.close()
        self.ready = json.loads(line)
        return self.ready

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.ready['port']}"

    def client(self, **headers: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.token}", **headers},
            timeout=30,
        )

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def close_stdin_and_wait(self, timeout: float = 15) -> int:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.close()
        return self.proc.wait(timeout)
