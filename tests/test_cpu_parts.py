"""The fleet benchmark's CPU accounting (``tests/support/cpu.py``): a process's time lands in
the part it belongs to, a reaped child's in its parent's part, and nothing in a part it does not
belong to. Each child reports its own CPU time, which the samples are held against: no wall
clock is timed."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support import cpu

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

_BUSY = ("import time\nend = time.process_time() + {seconds}\n"
         "while time.process_time() < end: pass\n")

# Busy for a while, report the CPU it spent, then wait until told to go (stdin closed), so it is
# still alive when sampled.
_CHILD = _BUSY + "import sys\nprint(time.process_time(), flush=True)\nsys.stdin.read()\n"

# Runs a busy grandchild to its end (reaped: its time becomes this process's children time),
# reports the grandchild's CPU as the grandchild saw it, then waits.
_PARENT = (
    "import subprocess, sys\n"
    "out = subprocess.run([sys.executable, '-c', {busy!r} + 'print(time.process_time())'],"
    " capture_output=True, text=True, check=True).stdout\n"
    "print(out.strip(), flush=True)\nsys.stdin.read()\n"
)


@contextmanager
def _running(code: str) -> Iterator[tuple[subprocess.Popen[str], float]]:
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        reported = float(proc.stdout.readline())
        yield proc, reported
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)


def test_a_process_time_is_counted_in_its_own_part_and_no_other() -> None:
    before = cpu.sample({})
    with _running(_CHILD.format(seconds=0.3)) as (proc, reported):
        parts = {"child": cpu.Part(roots=frozenset({proc.pid})),
                 "nobody": cpu.Part(roots=frozenset({2**22 + 1}))}
        after = cpu.sample(parts)
    spent = cpu.spent(cpu.Sample({"child": 0.0, "nobody": 0.0}, before.machine_busy), after)
    # The child's own count and /proc's are the same clock ticks, give or take start-up.
    assert reported >= 0.3
    assert reported - 0.05 <= spent["child"] <= reported + 0.5
    assert spent["nobody"] == 0.0
    assert spent["machine"] >= spent["child"] - 0.05


def test_a_reaped_child_counts_for_its_parent_part_unless_told_not_to() -> None:
    with _running(_PARENT.format(busy=_BUSY.format(seconds=0.3))) as (proc, reported):
        counted = cpu.sample({"parent": cpu.Part(roots=frozenset({proc.pid}))})
        own_only = cpu.sample({"parent": cpu.Part(roots=frozenset({proc.pid}),
                                                  children_time=False)})
    assert reported >= 0.3
    assert counted.by_part["parent"] >= reported - 0.05
    assert own_only.by_part["parent"] < counted.by_part["parent"] - 0.2


def test_a_part_by_command_name_takes_processes_of_that_name_only() -> None:
    with _running(_CHILD.format(seconds=0.2)) as (proc, reported):
        name = Path(f"/proc/{proc.pid}/comm").read_text().strip()
        by_name = cpu.sample({"named": cpu.Part(names=frozenset({name}))})
        other = cpu.sample({"named": cpu.Part(names=frozenset({name + "-not"}))})
    assert by_name.by_part["named"] >= reported - 0.05
    assert other.by_part["named"] == 0.0


# Starts the busy child and leaves it running (not reaped), relaying what it reports.
_GRANDPARENT = (
    "import subprocess, sys\n"
    "child = subprocess.Popen([sys.executable, '-c', {child!r}], stdin=subprocess.PIPE,"
    " stdout=subprocess.PIPE, text=True)\n"
    "print(child.stdout.readline().strip(), flush=True)\nsys.stdin.read()\n"
    "child.stdin.close()\nchild.wait()\n"
)


def test_a_live_descendant_counts_for_the_root_it_runs_under() -> None:
    code = _GRANDPARENT.format(child=_CHILD.format(seconds=0.3))
    with _running(code) as (proc, reported):
        found = cpu.sample({"root": cpu.Part(roots=frozenset({proc.pid}))})
    assert reported >= 0.3
    assert found.by_part["root"] >= reported - 0.05


def test_a_part_whose_count_went_down_is_unknown_not_zero() -> None:
    # PostgreSQL restarted between the samples: its old processes' time is gone with them.
    before = cpu.Sample({"postgresql": 5.0, "tablets": 1.0}, machine_busy=10.0)
    after = cpu.Sample({"postgresql": 1.5, "tablets": 3.0}, machine_busy=14.0)
    assert cpu.spent(before, after) == {"postgresql": None, "tablets": 2.0, "machine": 4.0}
