"""Pipeline engine benchmark: engine vs hand-written code, throughput, anomaly, OCR, cold load.

Figures (all on the demo models in ``scripts/devkit/models``, CPU unless
``KENSA_ORT_PROVIDER=cuda``):

- ``ratio``: the engine running the V-SCRATCH pipeline against a hand-written baseline doing the
  same work (cv2.imdecode, cv2.resize, cvtColor, numpy normalisation, ``session.run``, numpy
  argmax) with the *same* session (so the same model and threads) on the same images in the same
  process; rounds alternate between the two and the median of per-round ratios is reported (target
  ≤ 1.10);
- ``classifier_img_s``: images per second on one core (one ORT thread, 256 px PNGs → 224 px
  classifier, decode included; target ≥ 100);
- ``anomaly_ms``: V-FOREIGN per image, median, default threads (target ≤ 40);
- ``ocr_line_ms``: T-MARKING per text line (detector + recogniser + post-processing), median
  (target ≤ 50);
- ``cold_load_ms``: session creation + warm-up of the largest demo model ≤ 25 MB (target ≤ 500).

    python scripts/benchmarks/pipeline.py
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from scripts.devkit import DEMO_MODELS_DIR, demo_store, synthetic  # noqa: E402
from sidecar.pipeline.engine import PipelineEngine  # noqa: E402
from sidecar.pipeline.runtime import RuntimeConfig, SessionPool, usable_cores  # noqa: E402

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def _pipeline(pid: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (DEMO_MODELS_DIR / "pipelines" / f"{pid}.json").read_text(encoding="utf-8"))
    return data


def _baseline(session: Any, data: bytes) -> tuple[float, str]:
    """What one would write by hand for the classifier."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    small = cv2.resize(img, (224, 224), interpolation=cv2.INTER_LINEAR)
    rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
    x = ((rgb.astype(np.float32) / 255.0 - MEAN) / STD).transpose(2, 0, 1)[None]
    probs = session.run(None, {"image": np.ascontiguousarray(x)})[0]
    return float(probs[0, 1]), ("ok", "ng")[int(probs[0].argmax())]


def _images(n: int, seed: int) -> list[bytes]:
    kinds = (None, None, "scratch", "spot", "dent", "missing")
    return [synthetic.encode(synthetic.make_surface(seed + i, kinds[i % len(kinds)]))
            for i in range(n)]


def bench_ratio(images: list[bytes], rounds: int) -> dict[str, Any]:
    cfg = RuntimeConfig(intra_op_threads=1, provider="cpu")
    engine = PipelineEngine(demo_store(), cfg)
    d = _pipeline("brk100-v-scratch")
    plan = engine.compile(d)
    session = engine.pool.get(plan.models[0]).session  # same session: same model, same threads
    for data in images[:4]:  # warm both paths
        assert abs(engine.run(plan, data).outputs["defect_probability"]
                   - _baseline(session, data)[0]) < 1e-4
    ratios, eng_s, base_s = [], [], []
    for r in range(rounds):
        order = (0, 1) if r % 2 == 0 else (1, 0)
        spent = [0.0, 0.0]
        for which in order:
            t0 = time.perf_counter()
            if which == 0:
                for data in images:
                    engine.run(plan, data)
            else:
                for data in images:
                    _baseline(session, data)
            spent[which] = time.perf_counter() - t0
        ratios.append(spent[0] / spent[1])
        eng_s.append(spent[0])
        base_s.append(spent[1])
    n = len(images)
    engine.close()
    return {
        "ratio": round(statistics.median(ratios), 3),
        "engine_ms": round(statistics.median(eng_s) / n * 1000, 2),
        "baseline_ms": round(statistics.median(base_s) / n * 1000, 2),
        # One ORT thread and a single-threaded Python loop: images/s on one core.
        "classifier_img_s": round(n / statistics.median(eng_s), 1),
    }


def bench_anomaly(images: list[bytes]) -> dict[str, Any]:
    engine = PipelineEngine(demo_store(), RuntimeConfig.from_env())
    plan = engine.compile(_pipeline("brk100-v-foreign"))
    times, infer, got = [], [], set()
    for data in images:
        r = engine.run(plan, data)
        times.append(r.total_ms)
        infer.append(r.stage_ms["infer"])
        got.update(r.providers.values())
    engine.close()
    return {"anomaly_ms": round(statistics.median(times), 2),
            "anomaly_infer_ms": round(statistics.median(infer), 2),
            "anomaly_provider": ",".join(sorted(got))}


def bench_ocr(n: int) -> dict[str, Any]:
    engine = PipelineEngine(demo_store(), RuntimeConfig.from_env())
    plan = engine.compile(_pipeline("brk100-t-marking"))
    rng = np.random.default_rng(3)
    per_line, read, got = [], 0, set()
    for i in range(n):
        text = f"LOT {'ABCDEFGHJKLMNPQRSTUVWXYZ'[i % 24]}{rng.integers(0, 100):02d}-" \
               f"{rng.integers(0, 10000):04d}"
        data = synthetic.encode(synthetic.make_marking(text, 7_000_000 + i))
        r = engine.run(plan, data)
        got.update(r.providers.values())
        lines = max(1, int(r.outputs["text_lines"]))
        per_line.append(r.total_ms / lines)
        read += r.outputs["text"] == text
    engine.close()
    return {"ocr_line_ms": round(statistics.median(per_line), 2), "ocr_exact_reads": read,
            "ocr_images": n, "ocr_provider": ",".join(sorted(got))}


def bench_cold_load() -> dict[str, Any]:
    manifest = json.loads((DEMO_MODELS_DIR / "manifest.json").read_text(encoding="utf-8"))
    figures: dict[str, Any] = {}
    worst = 0.0
    for entry in manifest["models"]:
        pool = SessionPool(demo_store(), RuntimeConfig.from_env())  # a fresh pool each time
        t0 = time.perf_counter()
        m = pool.get(f"sha256:{entry['sha256']}")
        total = (time.perf_counter() - t0) * 1000
        figures[f"cold_load_ms_{entry['kind'].replace('-', '_')}"] = round(total, 1)
        if entry["size"] <= 25_000_000:
            worst = max(worst, total)
        del m
    return {"cold_load_ms": round(worst, 1), **figures}


def run() -> dict[str, Any]:
    quick = "--quick" in sys.argv
    images = _images(24 if quick else 60, 8_000_000)
    # The setting, and below the providers the sessions actually got: a figure is a GPU figure
    # only where the sessions ran on one.
    figures: dict[str, Any] = {"cores": usable_cores(),
                               "provider": RuntimeConfig.from_env().provider}
    figures.update(bench_cold_load())
    figures.update(bench_ratio(images, 3 if quick else 7))
    figures.update(bench_anomaly(images))
    figures.update(bench_ocr(10 if quick else 30))
    print(f"engine vs hand-written (V-SCRATCH, 1 thread): {figures['engine_ms']} vs "
          f"{figures['baseline_ms']} ms/image, ratio {figures['ratio']} (target ≤ 1.10)")
    print(f"classifier throughput: {figures['classifier_img_s']} images/s per core "
          "(target ≥ 100)")
    print(f"anomaly (V-FOREIGN): {figures['anomaly_ms']} ms/image, of which inference "
          f"{figures['anomaly_infer_ms']} ms (target ≤ 40), on {figures['anomaly_provider']} "
          f"(setting {figures['provider']})")
    print(f"OCR (T-MARKING): {figures['ocr_line_ms']} ms per text line, "
          f"{figures['ocr_exact_reads']}/{figures['ocr_images']} read exactly (target ≤ 50), on "
          f"{figures['ocr_provider']}")
    loads = ", ".join(f"{k[13:]} {v}" for k, v in figures.items() if k.startswith("cold_load_ms_"))
    print(f"cold load (create + warm-up): worst {figures['cold_load_ms']} ms for models ≤ 25 MB "
          f"({loads}) (target ≤ 500)")
    return figures


if __name__ == "__main__":
    print(json.dumps({"bench": "pipeline", **run()}))
