"""Development tooling: never part of the product (the wheel packages only ``sidecar``, ``sync``
and ``schema``; ``scripts/build-sidecar`` excludes this package from the tablet's bundle).

- ``models/``: the demo data of SCENARIO.md's BRK-100 — two ONNX models, four pipeline
  definitions, the five items with their criteria, and ``manifest.json`` (hashes, accuracy). It
  reaches a tablet as real models do: :mod:`.seed_demo` publishes it to a sync server, and the
  tablet pulls it into ``<data_dir>/models``.
- :mod:`.synthetic` draws part images with known answers (tests, benchmarks, training).
- :mod:`.modelgen` builds the demo models (``scripts/make-demo-models``; needs the dev extras'
  ``onnx`` and scikit-learn).
- :mod:`.seed_demo` seeds a sync server with the demo site (``scripts/dev``, the UI's e2e run).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sidecar.pipeline.store import ModelStore

DEMO_MODELS_DIR = Path(__file__).resolve().parent / "models"


def ocr_models_dir() -> Path | None:
    """The PP-OCR models rapidocr's wheel ships (the demo's text pipeline names them by hash)."""
    from sidecar.pipeline.store import package_models_dir

    return package_models_dir("rapidocr")


def demo_store(*extra_roots: Path) -> ModelStore:
    """A model store over the demo models, for running the demo pipelines outside a tablet."""
    from sidecar.pipeline.store import ModelStore

    return ModelStore.for_device(DEMO_MODELS_DIR, extra_roots)
