"""Runs the benchmarks named on the command line (all by default); see scripts/bench.

Options after the names go to the one benchmark named (``scripts/bench fleet --devices 20``).
The fleet runs only when named: at its full size it takes a large machine most of an hour.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ORDER = [
    "qr", "write", "start", "history", "pipeline", "judgment", "push", "pull", "backlog",
    "audit", "apply",
]
ON_REQUEST = ["fleet"]


def load(name: str) -> object:
    path = HERE / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"kensa_bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT))
    available = [n for n in ORDER + ON_REQUEST if (HERE / f"{n}.py").exists()]
    split = next((i for i, a in enumerate(argv) if a.startswith("-")), len(argv))
    names, options = argv[:split], argv[split:]
    if options and len(names) != 1:
        print("options go to one benchmark: scripts/bench NAME --option …", file=sys.stderr)
        return 2
    names = names or [n for n in available if n not in ON_REQUEST]
    unknown = [n for n in names if n not in available]
    if unknown:
        print(
            f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available)}",
            file=sys.stderr,
        )
        return 2
    for name in names:
        print(f"== {name}", flush=True)
        module = load(name)
        figures = module.run(options) if options else module.run()  # type: ignore[attr-defined]
        print(json.dumps({"bench": name, **figures}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
