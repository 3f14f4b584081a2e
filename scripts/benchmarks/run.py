"""Runs the benchmarks named on the command line (all by default); see scripts/bench."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ORDER = [
    "qr", "write", "start", "history", "pipeline", "judgment", "push", "pull", "backlog",
    "audit",
]


def load(name: str) -> object:
    path = HERE / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"kensa_bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT))
    available = [n for n in ORDER if (HERE / f"{n}.py").exists()]
    names = argv or available
    unknown = [n for n in names if n not in available]
    if unknown:
        print(
            f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available)}",
            file=sys.stderr,
        )
        return 2
    for name in names:
        print(f"== {name}", flush=True)
        figures = load(name).run()  # type: ignore[attr-defined]
        print(json.dumps({"bench": name, **figures}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
