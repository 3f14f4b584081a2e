"""CPU time by part of a run, read from ``/proc``: what each part of the system spends per row.

A figure such as "rows per second" on a shared machine says little about where the time goes.
Counting each process's user and system time, and the time of the children it has reaped, split
by which part of the system the process belongs to, says how much work a row costs each part and
so how many rows per second the machine's cores could carry at best.

Parts are told by process: a process belongs to a part when it or one of its ancestors is one of
the part's root pids, or when its command name is one of the part's names (PostgreSQL's server
processes are daemons, children of init). A process that ended and was reaped by a counted parent
is in that parent's children time; one that ended otherwise (a PostgreSQL killed by a restart) is
lost, so figures under chaos are a lower bound.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Part:
    roots: frozenset[int] = frozenset()
    names: frozenset[str] = frozenset()
    # The bench's own process reaps the worker processes it started: its children's time is
    # theirs, not its own.
    children_time: bool = True


@dataclass(frozen=True)
class Sample:
    by_part: dict[str, float] = field(default_factory=dict)
    machine_busy: float = 0.0


def _stat(pid: str) -> tuple[str, int, float, float] | None:
    try:
        text = (Path("/proc") / pid / "stat").read_text()
    except OSError:
        return None
    name = text[text.index("(") + 1: text.rindex(")")]
    fields = text[text.rindex(")") + 2:].split()
    own = (int(fields[11]) + int(fields[12])) / _TICKS
    children = (int(fields[13]) + int(fields[14])) / _TICKS
    return name, int(fields[1]), own, children


def _machine_busy() -> float:
    """Seconds of CPU the whole machine spent busy since boot (all but idle and iowait)."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(v) for v in first[:8]]
    return (sum(ticks) - ticks[3] - ticks[4]) / _TICKS


def sample(parts: Mapping[str, Part]) -> Sample:
    stats = {pid: found for pid in os.listdir("/proc") if pid.isdigit()
             if (found := _stat(pid)) is not None}
    parent = {int(pid): st[1] for pid, st in stats.items()}

    def part_of(pid: int, name: str) -> str | None:
        for label, part in parts.items():
            if name in part.names:
                return label
        seen = 0
        while pid > 1 and seen < 64:
            for label, part in parts.items():
                if pid in part.roots:
                    return label
            pid = parent.get(pid, 0)
            seen += 1
        return None

    totals = {label: 0.0 for label in parts}
    for pid, (name, _, own, children) in stats.items():
        label = part_of(int(pid), name)
        if label is not None:
            totals[label] += own + (children if parts[label].children_time else 0.0)
    return Sample(totals, _machine_busy())


def spent(before: Sample, after: Sample) -> dict[str, float | None]:
    """CPU seconds each part spent between two samples, and ``machine`` for the whole machine
    (this includes what no part names: the kernel's own threads, other work on the machine).
    A part whose count went down lost processes that nobody reaped (a restarted PostgreSQL):
    its figure is not known, None."""
    out: dict[str, float | None] = {}
    for label, total in after.by_part.items():
        delta = total - before.by_part.get(label, 0.0)
        out[label] = delta if delta >= 0 else None
    out["machine"] = max(0.0, after.machine_busy - before.machine_busy)
    return out
