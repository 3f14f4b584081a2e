"""Running schemathesis, the OpenAPI fuzzer, against a running process.

The CLI runs as a child in a scratch directory with a generated ``schemathesis.toml``: seeded,
with a bounded number of examples per operation, no example database carried between runs (so
a run reproduces from its seed alone), and known-real ids offered for path parameters through
dictionaries, so that most requests reach the code behind a lookup instead of its 404.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")

# Every answer is one the document describes: no 5xx, a listed status, a body that matches the
# listed schema, the listed content type.
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "response_schema_conformance",
    "content_type_conformance",
)


@dataclass
class Fuzz:
    """One run: the document at ``base_url + /openapi.json``, tested against ``base_url``."""

    base_url: str
    workdir: Path
    headers: Mapping[str, str] = field(default_factory=dict)
    # Exact path -> headers that replace ``headers`` on that path's operations.
    path_headers: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    basic_auth: tuple[str, str] | None = None
    # Path parameter name -> real values, used for most (not all) generated requests.
    known_ids: Mapping[str, Sequence[str]] = field(default_factory=dict)
    include_path_regex: str | None = None
    exclude_paths: Sequence[str] = ()
    max_examples: int = 20
    seed: int = 20240601
    timeout_s: float = 240

    def config(self) -> str:
        lines = [f"seed = {self.seed}", f"headers = {_inline(self.headers)}", ""]
        lines += ["[generation]", 'database = "none"', ""]
        for name, values in self.known_ids.items():
            lines += [f"[dictionaries.{name}]", f"values = {json.dumps(list(values))}", ""]
        if self.known_ids:
            lines.append("[parameters]")
            for name in self.known_ids:
                lines.append(f'"path.{name}" = {{ dictionary = "{name}", probability = 0.8 }}')
            lines.append("")
        for path, headers in self.path_headers.items():
            lines += ["[[operations]]", f"include-path = {json.dumps(path)}",
                      f"headers = {_inline(headers)}", ""]
        return "\n".join(lines) + "\n"

    def command(self, config: Path) -> list[str]:
        command = [
            str(SCHEMATHESIS), "--config-file", str(config), "--no-color", "run",
            f"{self.base_url}/openapi.json",
            "--checks", ",".join(CHECKS),
            "--max-examples", str(self.max_examples),
            "--workers", "1",
            "--request-timeout", "30",
        ]
        if self.basic_auth is not None:
            command += ["--auth", ":".join(self.basic_auth)]
        if self.include_path_regex is not None:
            command += ["--include-path-regex", self.include_path_regex]
        for path in self.exclude_paths:
            command += ["--exclude-path", path]
        return command

    def run(self) -> subprocess.CompletedProcess[str]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "schemathesis.toml"
        config.write_text(self.config(), encoding="utf-8")
        env = {**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_TELEMETRY": "false"}
        result = subprocess.run(
            self.command(config), cwd=self.workdir, env=env, capture_output=True, text=True,
            timeout=self.timeout_s, check=False,
        )
        (self.workdir / "output.txt").write_text(result.stdout + result.stderr, encoding="utf-8")
        return result


def _inline(table: Mapping[str, str]) -> str:
    """A TOML inline table of strings (JSON's string escapes are TOML's)."""
    return "{ " + ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in table.items()) + " }"


def failures(output: str) -> str:
    """The part of the CLI's report that says what failed and how to reproduce it."""
    start = output.find("FAILURES")
    return output[start - 40:] if start >= 0 else output[-6000:]
