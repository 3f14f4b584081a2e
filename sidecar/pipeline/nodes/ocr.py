"""OCR text: a PP-OCR text detector (DB) and recogniser (CTC), run through our own sessions.

This is a thin re-implementation of the det → crop → rec path of PP-OCR (as rapidocr does it), so
that the models go through the engine's session pool, provider choice, timings and model hashes
like any other, and nothing is fetched at run time: the recogniser's character list is read from
the model's own metadata (``character``), which the PP-OCR ONNX exports carry.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np

from sidecar.pipeline.nodes.base import RunContext, as_image, declared, op

_CHARSETS: dict[str, list[str]] = {}


def det_resize(img: np.ndarray[Any, Any], limit_side: int) -> tuple[np.ndarray[Any, Any], float,
                                                                      float]:
    """Scale so the longer side is ≤ ``limit_side``, both sides multiples of 32 (DB's stride)."""
    h, w = img.shape[:2]
    ratio = min(1.0, limit_side / max(h, w))
    rh = max(32, round(h * ratio / 32) * 32)
    rw = max(32, round(w * ratio / 32) * 32)
    return cv2.resize(img, (rw, rh)), rh / h, rw / w


def to_tensor(img: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """PP-OCR's normalisation: (x/255 - 0.5)/0.5, CHW, batch of one."""
    x = np.ascontiguousarray(img.transpose(2, 0, 1)).astype(np.float32)
    x *= 2 / 255
    x -= 1.0
    return x[None]


def order_points(pts: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Corners as top-left, top-right, bottom-right, bottom-left."""
    s = pts.sum(axis=1)
    d = np.diff(pts, axis=1).ravel()
    return np.array([pts[s.argmin()], pts[d.argmin()], pts[s.argmax()], pts[d.argmax()]],
                    dtype=np.float32)


def db_boxes(
    prob: np.ndarray[Any, Any], thresh: float, box_thresh: float, unclip_ratio: float,
    min_size: float, max_candidates: int = 100,
) -> list[tuple[np.ndarray[Any, Any], float]]:
    """Differentiable-binarisation post-processing: probability map → rotated text boxes."""
    binary = (prob > thresh).astype(np.uint8)
    bitmap = cv2.dilate(binary, np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    out: list[tuple[np.ndarray[Any, Any], float]] = []
    h, w = prob.shape
    for c in contours[:max_candidates]:
        rect = cv2.minAreaRect(c)
        if min(rect[1]) < min_size:
            continue
        # "Fast" score: mean probability inside the contour's bounding box, masked by the box.
        x, y, bw, bh = cv2.boundingRect(c)
        mask = np.zeros((bh, bw), np.uint8)
        box = cv2.boxPoints(rect)
        cv2.fillPoly(mask, [np.round(box - [x, y]).astype(np.int32)], 1)
        score = float(cv2.mean(prob[y:y + bh, x:x + bw], mask)[0])
        if score < box_thresh:
            continue
        # Unclip: DB shrinks text regions when training; grow them back by area·ratio/perimeter.
        (cx, cy), (rw, rh), angle = rect
        dist = rw * rh * unclip_ratio / (2 * (rw + rh))
        grown = ((cx, cy), (rw + 2 * dist, rh + 2 * dist), angle)
        if min(grown[1]) < min_size + 2:
            continue
        pts = order_points(cv2.boxPoints(grown))
        pts[:, 0] = np.clip(pts[:, 0], 0, w - 1)
        pts[:, 1] = np.clip(pts[:, 1], 0, h - 1)
        out.append((pts, score))
    # Reading order: top to bottom, then left to right within a line (10 px tolerance).
    out.sort(key=lambda b: (round(float(b[0][0, 1]) / 10), float(b[0][0, 0])))
    return out


def crop_box(img: np.ndarray[Any, Any], pts: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Warp a (rotated) quadrilateral to an upright crop; turn tall crops on their side."""
    w = int(max(np.linalg.norm(pts[0] - pts[1]), np.linalg.norm(pts[2] - pts[3])))
    h = int(max(np.linalg.norm(pts[0] - pts[3]), np.linalg.norm(pts[1] - pts[2])))
    w, h = max(w, 1), max(h, 1)
    dst = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    m = cv2.getPerspectiveTransform(pts.astype(np.float32), dst)
    crop = cv2.warpPerspective(img, m, (w, h), borderMode=cv2.BORDER_REPLICATE,
                               flags=cv2.INTER_CUBIC)
    if h / w >= 1.5:
        crop = np.rot90(crop)
    return np.asarray(crop)


def rec_batch(crops: list[np.ndarray[Any, Any]], height: int, min_width: int) -> np.ndarray[Any,
                                                                                             Any]:
    """Resize crops to ``height``, pad to the widest (at least ``min_width``), normalise."""
    ratios = [c.shape[1] / c.shape[0] for c in crops]
    width = max(min_width, math.ceil(height * max(ratios)))
    batch = np.zeros((len(crops), 3, height, width), dtype=np.float32)
    for i, (c, r) in enumerate(zip(crops, ratios, strict=True)):
        rw = min(width, math.ceil(height * r))
        resized = cv2.resize(c, (rw, height))
        batch[i, :, :, :rw] = to_tensor(resized)[0]
    return batch


def charset(model: Any) -> list[str]:
    """CTC classes: blank, then the model's characters (metadata), then space."""
    cached = _CHARSETS.get(model.sha256)
    if cached is None:
        text = model.info.metadata.get("character")
        if not text:
            raise ValueError("the recognition model carries no 'character' list in its metadata")
        cached = ["", *text.splitlines(), " "]
        _CHARSETS[model.sha256] = cached
    return cached


def ctc_decode(probs: np.ndarray[Any, Any], chars: list[str]) -> list[tuple[str, float]]:
    """Greedy CTC: best class per step, collapse repeats, drop blanks; score = mean kept prob."""
    idx = probs.argmax(axis=2)
    best = probs.max(axis=2)
    out: list[tuple[str, float]] = []
    for seq, conf in zip(idx, best, strict=True):
        keep = np.ones(seq.shape[0], dtype=bool)
        keep[1:] = seq[1:] != seq[:-1]
        keep &= seq != 0
        text = "".join(chars[i] if i < len(chars) else "" for i in seq[keep])
        out.append((text, float(conf[keep].mean()) if keep.any() else 0.0))
    return out


def _run(inputs: Mapping[str, Any], params: Mapping[str, Any], ctx: RunContext) -> dict[str, Any]:
    img = as_image(inputs["image"])
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    det = ctx.session(params["det_model"])
    rec = ctx.session(params["rec_model"])

    t0 = time.perf_counter()
    resized, sy, sx = det_resize(img, params["limit_side"])
    x = to_tensor(resized)
    t1 = time.perf_counter()
    prob = det.run({det.input_names[0]: x})[0][0, 0]
    t2 = time.perf_counter()
    boxes = db_boxes(prob, params["det_thresh"], params["box_thresh"], params["unclip_ratio"],
                     params["min_size"])[: params["max_lines"]]
    crops = []
    for pts, _ in boxes:
        pts[:, 0] /= sx
        pts[:, 1] /= sy
        crops.append(crop_box(img, pts))
    t3 = time.perf_counter()
    decoded: list[tuple[str, float]] = []
    if crops:
        batch = rec_batch(crops, params["rec_height"], params["rec_min_width"])
        t4 = time.perf_counter()
        probs = rec.run({rec.input_names[0]: batch})[0]
        t5 = time.perf_counter()
        decoded = ctc_decode(probs, charset(rec))
    else:
        t4 = t5 = t3
    t6 = time.perf_counter()
    ctx.add_stage_time("pre", (t1 - t0 + t4 - t3) * 1000)
    ctx.add_stage_time("infer", (t2 - t1 + t5 - t4) * 1000)
    ctx.add_stage_time("post", (t3 - t2 + t6 - t5) * 1000)

    lines: list[dict[str, Any]] = [
        {"text": text, "score": score, "box": [[float(v) for v in p] for p in pts],
         "det_score": det_score}
        for (text, score), (pts, det_score) in zip(decoded, boxes, strict=True)
        if text.strip() and score >= params["min_score"]
    ]
    text = params["join"].join(line["text"].strip() for line in lines)
    score = min((line["score"] for line in lines), default=0.0)
    return {"text": text, "lines": lines, "score": score, "count": len(lines)}


op(declared(
    "ocr", stage="infer", run=_run,
    doc="Text lines (PP-OCR detector + recogniser): joined text, per-line text/score/box.",
))
