"""Where model files are: a content-addressed store keyed by SHA-256.

Definitions name models as ``sha256:<hex>`` so that a result can say exactly which bytes judged it,
and a file that does not hash to its name is refused rather than silently used. A store looks in:

- directories of files named by their hash (``<hex>`` or ``<hex>.onnx``) — the sync layer's cache;
- ``manifest.json`` files listing ``{"file", "sha256"}`` entries (a folder of models named
  explicitly, such as the demo models of the dev tooling);
- directories of arbitrary ``*.onnx`` files, hashed once when first needed (a wheel's models
  folder);
- explicit ``{hex: path}`` mappings.

Hashes are verified once per file (path, size, mtime) and remembered, so runs pay nothing for it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sidecar.pipeline.errors import ModelCorrupt, ModelUnavailable
from sidecar.pipeline.nodes.base import MODEL_REF


def parse_ref(ref: str) -> str:
    """``sha256:<hex>`` → ``<hex>``."""
    m = MODEL_REF.fullmatch(ref.strip().lower())
    if m is None:
        raise ModelUnavailable(f"{ref!r} is not a model reference 'sha256:<64 hex digits>'",
                               model=ref)
    return m.group(1)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def package_models_dir(package: str, sub: str = "models") -> Path | None:
    """The models folder a wheel installs (e.g. rapidocr's PP-OCR files), without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / sub
    return path if path.is_dir() else None


@dataclass(frozen=True)
class StoredModel:
    sha256: str
    path: Path
    size: int


class ModelStore:
    def __init__(
        self,
        roots: Iterable[Path | str] = (),
        files: Mapping[str, Path | str] | None = None,
        scan: Iterable[Path | str] = (),
    ) -> None:
        self._roots = [Path(r) for r in roots]
        self._scan_dirs = [Path(d) for d in scan]
        self._known: dict[str, Path] = {k.lower(): Path(v) for k, v in (files or {}).items()}
        self._verified: dict[tuple[str, int, int], str] = {}
        self._scanned = False
        self._lock = threading.Lock()
        for root in self._roots:
            self._read_manifest(root)

    @classmethod
    def for_device(cls, models_dir: Path, extra_dirs: Iterable[Path | str] = ()) -> ModelStore:
        """The models a tablet runs: those sync pulled into ``models_dir`` (``<data_dir>/models``,
        named by hash), any folders named explicitly, and the PP-OCR models rapidocr's wheel
        ships (a run-time dependency whose files the pipelines name by hash)."""
        scan = [d for d in (package_models_dir("rapidocr"),) if d is not None]
        return cls(roots=[models_dir, *extra_dirs], scan=scan)

    def _read_manifest(self, root: Path) -> None:
        manifest = root / "manifest.json"
        if not manifest.is_file():
            return
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # an unreadable manifest only hides models; lookups then say "not found"
        for entry in data.get("models", []):
            sha, name = entry.get("sha256"), entry.get("file")
            if isinstance(sha, str) and isinstance(name, str) and (root / name).is_file():
                self._known.setdefault(sha.lower(), root / name)

    def _scan(self) -> None:
        if self._scanned:
            return
        for d in self._scan_dirs:
            for p in sorted(d.glob("*.onnx")):
                self._known.setdefault(self._hash_cached(p), p)
        self._scanned = True

    def _hash_cached(self, path: Path) -> str:
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        digest = self._verified.get(key)
        if digest is None:
            digest = sha256_file(path)
            self._verified[key] = digest
        return digest

    def locate(self, ref: str) -> Path:
        """The file for a reference, not yet verified; ``ModelUnavailable`` if none."""
        hexd = parse_ref(ref)
        with self._lock:
            path = self._known.get(hexd)
            if path is None:
                for root in self._roots:
                    for cand in (root / hexd, root / f"{hexd}.onnx"):
                        if cand.is_file():
                            path = cand
                            break
                    if path is not None:
                        break
            if path is None:
                self._scan()
                path = self._known.get(hexd)
        if path is None or not path.is_file():
            raise ModelUnavailable(
                f"model sha256:{hexd[:12]}… is not on this device (looked in "
                f"{', '.join(str(p) for p in [*self._roots, *self._scan_dirs]) or 'no folders'})",
                model=f"sha256:{hexd}",
            )
        return path

    def get(self, ref: str) -> StoredModel:
        """The verified file for a reference: ``ModelCorrupt`` if its bytes do not match."""
        hexd = parse_ref(ref)
        path = self.locate(ref)
        with self._lock:
            actual = self._hash_cached(path)
        if actual != hexd:
            raise ModelCorrupt(
                f"model file {path.name} is corrupt: its SHA-256 is {actual[:12]}…, "
                f"expected {hexd[:12]}…",
                model=f"sha256:{hexd}", path=str(path), actual=actual,
            )
        return StoredModel(sha256=hexd, path=path, size=path.stat().st_size)

    def entries(self) -> list[tuple[str, Path]]:
        """Every model the store can see (for ``kensa doctor``)."""
        with self._lock:
            self._scan()
            found = dict(self._known)
        for root in self._roots:
            if root.is_dir():
                for p in root.iterdir():
                    stem = p.name.removesuffix(".onnx")
                    if p.is_file() and len(stem) == 64 and all(c in "0123456789abcdef"
                                                               for c in stem):
                        found.setdefault(stem, p)
        return sorted(found.items(), key=lambda kv: str(kv[1]))
