"""Where the built desktop package is: ``scripts/build-desktop`` (release, as it ships) or
``scripts/build-desktop --debug`` (what ``scripts/test`` builds: the same app with the UI and the
sidecar inside, without the optimizer's minutes). The newer .deb of the two is the one tested;
``KENSA_DEB`` names another. The tests run the app unpacked from it, never ``target/*/kensa``,
which a plain ``cargo build`` replaces with one that loads the UI from the Vite dev server."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TARGET = REPO / "tauri-app" / "src-tauri" / "target"
PROFILES = ("release", "debug")


def _newest(paths: list[Path]) -> Path | None:
    existing = [p for p in paths if p.is_file()]
    return max(existing, key=lambda p: p.stat().st_mtime) if existing else None


def built_deb() -> Path | None:
    named = os.environ.get("KENSA_DEB")
    if named:
        return Path(named)
    debs = [d for p in PROFILES for d in (TARGET / p / "bundle" / "deb").glob("kensa_*.deb")]
    return _newest(debs)


def pids_inside(root: Path) -> dict[int, str]:
    """Every process whose executable lies inside ``root`` (the unpacked package): the shell's
    and its sidecar's, by pid."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            exe = os.readlink(entry / "exe")
        except OSError:
            continue
        if exe.startswith(str(root) + os.sep):
            found[int(entry.name)] = exe
    return found
