"""The fault shift, short form (the long form is ``scripts/fault-shift``).

A device process records inspections and images through the product's services while the test
SIGKILLs it again and again, restarts the server (SIGKILL or SIGTERM), and a proxy between them
drops, delays, resets, answers 5xx/429 and cuts bodies short. Afterwards the server's tables equal
the device's history — nothing lost, nothing twice — every image is stored under its hash, and
that history is one the product's rules allow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.fault_shift import run_fault_shift

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.postgres
@pytest.mark.slow
def test_fault_shift_loses_nothing_and_duplicates_nothing(pg_url: str, tmp_path: Path) -> None:
    report = run_fault_shift(pg_url, tmp_path, kills=10, server_restarts=3, seed=11,
                             pause=(0.8, 1.8))
    assert report.problems == [], report.as_dict()
    assert report.kills == 10 and report.server_restarts == 3
    assert report.inspections > 0 and report.images > 0
    # The proxy really did get in the way.
    injected = sum(n for fault, n in report.faults.items() if fault != "pass")
    assert injected > 0, report.faults


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize("folder", ["sync", "schema", "scripts/devkit", "tests/support"])
def test_only_the_sidecar_writes_the_device_outbox(folder: str) -> None:
    """Device records and their outbox rows are written by the sidecar's services alone: a device
    process or a test harness that wrote them itself would be checking its own copy of the
    workflow, not the product."""
    writers = [
        str(path.relative_to(REPO))
        for path in sorted((REPO / folder).rglob("*.py"))
        if "sidecar.outbox" in _imports(path)
    ]
    assert writers == []
