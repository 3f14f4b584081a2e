"""The fault shift, short form (the long form is ``scripts/fault-shift``).

A device process records inspections and images while the test SIGKILLs it again and again,
restarts the server (SIGKILL or SIGTERM), and a proxy between them drops, delays, resets, answers
5xx/429 and cuts bodies short. Afterwards the server's tables equal the device's history — nothing
lost, nothing twice — and every image is stored under its hash.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.fault_shift import run_fault_shift

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_fault_shift_loses_nothing_and_duplicates_nothing(pg_url: str, tmp_path: Path) -> None:
    report = run_fault_shift(pg_url, tmp_path, kills=10, server_restarts=3, seed=11,
                             pause=(0.8, 1.8))
    assert report.problems == [], report.as_dict()
    assert report.kills == 10 and report.server_restarts == 3
    assert report.inspections > 0 and report.images > 0
    # The proxy really did get in the way.
    injected = sum(n for fault, n in report.faults.items() if fault != "pass")
    assert injected > 0, report.faults
