"""Post-processing ops on model outputs: softmax, argmax / top-k ranking, threshold, NMS."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from sidecar.pipeline.nodes.base import RunContext, as_tensor, declared, op


def softmax(x: np.ndarray[Any, Any], axis: int = -1) -> np.ndarray[Any, Any]:
    z = x.astype(np.float32, copy=False)
    z = z - z.max(axis=axis, keepdims=True)  # shift for numerical stability
    e = np.exp(z)
    out: np.ndarray[Any, Any] = e / e.sum(axis=axis, keepdims=True)
    return out


def _softmax(
    inputs: Mapping[str, Any], params: Mapping[str, Any], ctx: RunContext
) -> dict[str, Any]:
    return {"probs": softmax(as_tensor(inputs["x"]), params["axis"])}


op(declared(
    "softmax", stage="post", run=_softmax,
    doc="Softmax along an axis (logits → probabilities).",
))


def _scores_1d(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Class scores of one sample: drop leading batch axes of size 1 ([1, C] → [C])."""
    while x.ndim > 1 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 1:
        raise ValueError(f"expected class scores of one sample, got shape {x.shape}")
    return x


def rank(
    scores: np.ndarray[Any, Any], k: int, labels: list[str] | None
) -> list[dict[str, Any]]:
    """Top-k as seed 001's ranked results: rank 1, 2, ... with label, index and score."""
    s = _scores_1d(scores)
    if labels is not None and len(labels) != s.shape[0]:
        raise ValueError(f"{len(labels)} labels for {s.shape[0]} classes")
    k = min(k, s.shape[0])
    # argpartition then sort the k: O(C) rather than sorting all classes (detectors have thousands).
    idx = np.argpartition(-s, k - 1)[:k] if k < s.shape[0] else np.arange(s.shape[0])
    idx = idx[np.argsort(-s[idx], kind="stable")]
    return [
        {"rank": r + 1, "index": int(i), "label": labels[int(i)] if labels else str(int(i)),
         "score": float(s[i])}
        for r, i in enumerate(idx)
    ]


def _topk(inputs: Mapping[str, Any], params: Mapping[str, Any], ctx: RunContext) -> dict[str, Any]:
    ranked = rank(as_tensor(inputs["x"]), params["k"], params["labels"])
    top = ranked[0]
    return {"ranked": ranked, "label": top["label"], "index": top["index"], "score": top["score"]}


_TOPK_OUT = ("ranked", "label", "index", "score")
op(declared(
    "topk", stage="post", run=_topk,
    doc="Ranked labels (rank 1..k) with scores.",
))
op(declared(
    "argmax", stage="post", run=lambda i, p, c: _topk(i, {"k": 1, "labels": p["labels"]}, c),
    doc="The best class: label, index, score.",
))

_COMPARE = {
    "GT": np.greater, "GE": np.greater_equal, "LT": np.less, "LE": np.less_equal,
}


def _threshold(
    inputs: Mapping[str, Any], params: Mapping[str, Any], ctx: RunContext
) -> dict[str, Any]:
    x = as_tensor(inputs["x"])
    mask = _COMPARE[params["operator"]](x, params["value"])
    if mask.ndim == 0:
        return {"result": bool(mask), "mask": mask, "any": bool(mask), "count": int(mask)}
    return {"result": bool(mask.any()), "mask": mask, "any": bool(mask.any()),
            "count": int(mask.sum())}


op(declared(
    "threshold", stage="post", run=_threshold,
    doc="Compare a value or tensor with a threshold: a boolean, a mask and a count.",
))


def iou_matrix(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """IoU of every box in ``a`` against every box in ``b`` (xyxy)."""
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    out: np.ndarray[Any, Any] = inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)
    return out


def nms(
    boxes: np.ndarray[Any, Any], scores: np.ndarray[Any, Any], iou: float, limit: int
) -> list[int]:
    """Greedy non-maximum suppression; returns kept indices, best first."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size > 0 and len(keep) < limit:
        i = int(order[0])
        keep.append(i)
        if order.size == 1:
            break
        overlaps = iou_matrix(boxes[i : i + 1], boxes[order[1:]])[0]
        order = order[1:][overlaps <= iou]
    return keep


def _nms(inputs: Mapping[str, Any], params: Mapping[str, Any], ctx: RunContext) -> dict[str, Any]:
    boxes = as_tensor(inputs["boxes"]).astype(np.float32)
    scores = as_tensor(inputs["scores"]).astype(np.float32)
    while boxes.ndim > 2 and boxes.shape[0] == 1:
        boxes = boxes[0]
    while scores.ndim > 1 and scores.shape[0] == 1 and scores.shape[0] != boxes.shape[0]:
        scores = scores[0]
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be [N, 4], got {boxes.shape}")
    if params["format"] == "cxcywh":
        cx, cy, w, h = boxes.T
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    if scores.ndim == 2:  # [N, C] class scores: best class per box
        classes = scores.argmax(axis=1)
        best = scores[np.arange(scores.shape[0]), classes]
    else:
        classes = np.zeros(scores.shape[0], dtype=np.int64)
        best = scores
    if best.shape[0] != boxes.shape[0]:
        raise ValueError(f"{boxes.shape[0]} boxes but {best.shape[0]} scores")
    sel = np.flatnonzero(best >= params["score_threshold"])
    boxes, best, classes = boxes[sel], best[sel], classes[sel]
    # Class-aware in one pass: shift each class's boxes apart so they never overlap each other.
    shift = classes[:, None].astype(np.float32) * (float(boxes.max(initial=0.0)) + 1.0)
    shifted = boxes + (shift if params["class_aware"] else 0.0)
    keep = nms(shifted, best, params["iou"], params["max_detections"])
    labels = params["labels"]
    dets = [
        {"box": [float(v) for v in boxes[i]], "score": float(best[i]), "class": int(classes[i]),
         "label": labels[int(classes[i])] if labels else str(int(classes[i]))}
        for i in keep
    ]
    return {"detections": dets, "count": len(dets),
            "boxes": boxes[keep], "scores": best[keep], "classes": classes[keep]}


op(declared(
    "nms", stage="post", run=_nms,
    doc="Non-maximum suppression for detector outputs (boxes [N,4], scores [N] or [N,C]).",
))



def calibrate(x: np.ndarray[Any, Any], params: Mapping[str, Any]) -> tuple[
        np.ndarray[Any, Any], float, int]:
    """Class probabilities of one sample made calibrated, and the calibrated probability of the
    best class (how often the model is right when it says this much), with that class's index.

    ``temperature`` divides the logits (from ``input: probs``, their logarithms) before softmax;
    ``isotonic`` maps the best class's probability through the fitted monotone points, keeping
    the probabilities as they are.
    """
    scores = _scores_1d(x.astype(np.float64))
    if params["input"] == "probs":
        if np.any(scores < 0) or not np.isclose(scores.sum(), 1.0, atol=1e-3):
            raise ValueError("input 'probs' must be probabilities summing to 1")
        logits = np.log(np.clip(scores, 1e-12, None))
    else:
        logits = scores
    if params["method"] == "temperature":
        probs = softmax(logits / params["temperature"])
        index = int(np.argmax(probs))
        return probs, float(probs[index]), index
    probs = softmax(logits)
    index = int(np.argmax(probs))
    confidence = float(np.interp(probs[index], params["points_x"], params["points_y"]))
    return probs, min(max(confidence, 0.0), 1.0), index


def _calibrate(
    inputs: Mapping[str, Any], params: Mapping[str, Any], ctx: RunContext
) -> dict[str, Any]:
    probs, confidence, index = calibrate(as_tensor(inputs["x"]), params)
    labels = params["labels"]
    if labels is not None and len(labels) != probs.shape[0]:
        raise ValueError(f"{len(labels)} labels for {probs.shape[0]} classes")
    return {"probs": probs.astype(np.float32)[None, :], "confidence": confidence,
            "label": labels[index] if labels else str(index), "index": index}


op(declared(
    "calibrate", stage="post", run=_calibrate,
    doc="A classifier's calibrated probabilities and confidence (temperature scaling or "
        "isotonic points fitted on held-out photos; see the model's manifest).",
))
