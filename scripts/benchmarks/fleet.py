"""The fleet: hundreds of tablets, each with its own device token and a shift of inspections,
syncing at once against several API processes and several queue processors on one PostgreSQL
and one S3 store (SeaweedFS).

    scripts/bench fleet [--devices 500] [--inspections 100] [--servers 2] [--processors 2]
                        [--clients 4] [--scaling-devices N] [--chaos]

Each tablet enrolls with a one-time code, pulls its masters and records a shift through the
product's services (an inspection: the unit, five items, photos, AI results, verdicts), offline;
then every tablet's own sync code (``SyncService``: push, pull, upload) runs at once, a thread
per tablet in ``--clients`` worker processes (``tests/support/fleet.py``).

Three phases in one run, each on tablets of its own: ``--scaling-devices`` tablets against one
API process, as many against ``--servers``, then ``--devices`` against ``--servers`` (with
``--chaos``: an API process and a processor SIGKILLed and PostgreSQL restarted while it runs).
At the end every tablet's records are checked on the server exactly once, nothing pending or
refused, and its photos in the store with bodies that hash to their names.

Figures: ``devices``, ``servers``, ``processors``, ``rows_s`` (rows accepted and applied per
second, first push to last row applied), ``push_p50_ms``/``push_p99_ms`` (one push request as the
tablet sees it), ``lag_p99_s`` (received → applied), ``images_s``, ``scaling`` (rows/s with
``--servers`` API processes ÷ with one), ``pending_index_max_kb`` (the partial index on pending
rows, at its largest during the run), ``cpus``; and where the CPU went (``tests/support/cpu.py``):
``cpu_us_per_row`` by part (the tablets' sync code, the server's API and processor processes,
PostgreSQL, SeaweedFS, the bench's own polling, the whole machine),
``cpu_ceiling_rows_s`` (the rows per second the cores could carry at that cost per row) and
``tablets_ceiling_rows_s`` (the same for the tablets' own code alone).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.fleet import Chaos, Phase, fleet  # noqa: E402


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench fleet",
                                     description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--inspections", type=int, default=100, help="per tablet")
    parser.add_argument("--servers", type=int, default=2, help="API processes")
    parser.add_argument("--processors", type=int, default=2, help="queue processor processes")
    parser.add_argument("--clients", type=int, default=min(8, max(2, (os.cpu_count() or 2))),
                        help="worker processes driving the tablets")
    parser.add_argument("--scaling-devices", type=int, default=None,
                        help="tablets of each scaling phase (default: devices / 4; 0: skip)")
    parser.add_argument("--chaos", action="store_true",
                        help="kill an API process and a processor, restart PostgreSQL")
    args = parser.parse_args(argv)
    if args.devices < 1 or args.inspections < 1 or args.servers < 1 or args.processors < 1:
        parser.error("--devices, --inspections, --servers and --processors must be >= 1")
    if args.scaling_devices is None:
        args.scaling_devices = max(1, args.devices // 4)
    return args


def _say(what: str, phase: Phase) -> None:
    print(f"{what}: {phase.devices} tablets, {phase.rows:,} rows and {phase.images:,} photos "
          f"in {phase.seconds:.1f} s = {phase.rows_s:,.0f} rows/s, {phase.images_s:,.0f} "
          f"photos/s; push p50 {phase.push_p50_ms:.0f} ms p99 {phase.push_p99_ms:.0f} ms; "
          f"lag p99 {phase.lag_p99_s:.2f} s; pending index at most "
          f"{phase.pending_index_max_bytes / 1024:,.0f} kB"
          + (f"; refused or failed runs: {phase.failures}" if phase.failures else ""),
          flush=True)
    per_row = phase.cpu_us_per_row()
    if per_row:
        parts = ", ".join(f"{part} {'lost in a restart' if us is None else f'{us:,.0f}'}"
                          for part, us in per_row.items() if part != "machine")
        print(f"  CPU per row, µs: {parts}; whole machine {per_row['machine'] or 0:,.0f}, so "
              f"{_ceiling(per_row['machine']) or 0:,.0f} rows/s at best on {os.cpu_count()} "
              f"cores (the tablets' own code alone: {_ceiling(per_row['tablets']) or 0:,.0f})",
              flush=True)


def _ceiling(us_per_row: float | None) -> float | None:
    """Rows per second the machine's cores could carry if a row cost this much CPU and nothing
    else ran."""
    if us_per_row is None:
        return None
    return (os.cpu_count() or 1) * 1e6 / max(1e-9, us_per_row)


def _rounded(value: float | None) -> int | None:
    return None if value is None else round(value)


def run(argv: list[str] | None = None) -> dict[str, object]:
    args = parse(argv or [])
    figures: dict[str, Any] = {}
    with fleet(args.clients) as f:
        groups = [("main", args.devices)]
        if args.scaling_devices:
            groups += [("one", args.scaling_devices), ("many", args.scaling_devices)]
        started = time.perf_counter()
        with f.server(args.servers, args.processors) as server:
            for group, count in groups:
                f.prepare(server, group, count, args.inspections)
        recorded = sum(t.rows for g in f.tablets.values() for t in g)
        print(f"recorded {sum(len(g) for g in f.tablets.values())} shifts, {recorded:,} outbox "
              f"rows, in {time.perf_counter() - started:.0f} s", flush=True)
        scaling = None
        if args.scaling_devices:
            with f.server(1, args.processors):
                one = f.sync("one")
            _say("1 API process", one)
            with f.server(args.servers, args.processors):
                many = f.sync("many")
            _say(f"{args.servers} API processes", many)
            scaling = many.rows_s / one.rows_s
        with f.server(args.servers, args.processors) as server:
            chaos = Chaos(server, f.cluster) if args.chaos else None
            main = f.sync("main", chaos=chaos)
            if chaos is not None:
                chaos.finish()
                print(f"chaos: {', '.join(chaos.done)}", flush=True)
                # Whatever the last step disturbed settles before the check.
                f.sync("main")
        _say(f"fleet, {args.servers} API + {args.processors} processor processes", main)
        checked = f.check("main", photos="all" if main.images <= 20_000 else "sample")
        print(f"checked: {checked}", flush=True)
        figures = {
            "devices": main.devices, "inspections": args.inspections, "servers": args.servers,
            "processors": args.processors, "rows": main.rows, "rows_s": round(main.rows_s),
            "push_p50_ms": round(main.push_p50_ms, 1), "push_p99_ms": round(main.push_p99_ms, 1),
            "lag_p99_s": round(main.lag_p99_s, 2), "images": main.images,
            "images_s": round(main.images_s, 1),
            "scaling": round(scaling, 2) if scaling is not None else None,
            "pending_index_max_kb": round(main.pending_index_max_bytes / 1024),
            "chaos": chaos.done if chaos is not None else [],
            "checked_photos": checked["photos_hashed"], "cpus": os.cpu_count(),
            "cpu_us_per_row": {k: _rounded(v) for k, v in main.cpu_us_per_row().items()},
            "cpu_ceiling_rows_s": _rounded(_ceiling(main.cpu_us_per_row()["machine"])),
            "tablets_ceiling_rows_s": _rounded(_ceiling(main.cpu_us_per_row()["tablets"])),
        }
    return figures


if __name__ == "__main__":
    print(json.dumps({"bench": "fleet", **run(sys.argv[1:])}))
