"""Each op of the node library, run directly on small inputs with known answers."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from scripts.devkit import synthetic
from sidecar.errors import ImageInvalid
from sidecar.pipeline.nodes import REGISTRY
from sidecar.pipeline.runtime import SessionPool
from sidecar.pipeline.store import ModelStore, package_models_dir


class Ctx:
    """A RunContext over an optional session pool, recording stage attributions."""

    def __init__(self, pool: SessionPool | None = None) -> None:
        self.pool = pool
        self.stages: dict[str, float] = {}

    def session(self, model_ref: str) -> Any:
        assert self.pool is not None, "this op should not need a model"
        return self.pool.get(model_ref)

    def add_stage_time(self, stage: str, ms: float) -> None:
        self.stages[stage] = self.stages.get(stage, 0.0) + ms

    def calibration(self, camera: str) -> float | None:
        return None


def run(op: str, inputs: Mapping[str, Any], ctx: Ctx | None = None, **params: Any
        ) -> dict[str, Any]:
    spec = REGISTRY[op]
    full = {k: p.default for k, p in spec.params.items()}
    full.update(params)
    return spec.run(inputs, full, ctx or Ctx())


def gradient(h: int = 40, w: int = 60) -> np.ndarray[Any, Any]:
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = np.arange(w, dtype=np.uint8)[None, :]  # B grows along x
    img[..., 1] = np.arange(h, dtype=np.uint8)[:, None]  # G grows along y
    img[..., 2] = 200
    return img


# -- decode ------------------------------------------------------------------------------------

@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".webp"])
def test_decode_formats(ext: str) -> None:
    img = synthetic.make_surface(1)
    out = run("decode", {"data": synthetic.encode(img, ext)})
    assert out["image"].shape == (256, 256, 3) and out["width"] == 256
    if ext in (".png", ".bmp"):
        assert np.array_equal(out["image"], img)


def test_decode_grayscale() -> None:
    out = run("decode", {"data": synthetic.encode(gradient())}, mode="grayscale")
    assert out["image"].shape == (40, 60)


@pytest.mark.parametrize("data", [b"", b"not an image at all", synthetic.encode(gradient())[:40]])
def test_decode_rejects_non_images(data: bytes) -> None:
    with pytest.raises(ImageInvalid):
        run("decode", {"data": data})


# -- crop / resize / colour / normalize --------------------------------------------------------

def test_crop_absolute_is_a_view() -> None:
    img = gradient()
    out = run("crop", {"image": img}, x=10, y=5, w=20, h=10)
    assert out["image"].shape == (10, 20, 3) and out["box"] == [10, 5, 30, 15]
    assert out["image"][0, 0, 0] == 10 and out["image"][0, 0, 1] == 5
    assert np.shares_memory(out["image"], img)


def test_crop_relative_and_clamped() -> None:
    out = run("crop", {"image": gradient()}, x=0.5, y=0.5, w=1.0, h=1.0, relative=True)
    assert out["box"] == [30, 20, 60, 40]


def test_crop_outside_the_image_fails() -> None:
    with pytest.raises(ValueError, match="outside"):
        run("crop", {"image": gradient()}, x=100, y=0, w=10, h=10)


def test_resize_stretch() -> None:
    out = run("resize", {"image": gradient()}, width=30, height=80)
    assert out["image"].shape == (80, 30, 3)
    assert out["scale"] == [0.5, 2.0] and out["offset"] == [0.0, 0.0]


def test_resize_letterbox_keeps_aspect_and_maps_back() -> None:
    img = np.full((50, 100, 3), 255, np.uint8)
    out = run("resize", {"image": img}, width=64, height=64, mode="letterbox")
    res = out["image"]
    assert res.shape == (64, 64, 3) and out["scale"] == [0.64, 0.64]
    assert out["offset"] == [0.0, 16.0]
    assert (res[:16] == 114).all() and (res[48:] == 114).all() and (res[16:48] == 255).all()
    # A point maps back to the source through scale and offset.
    assert (32 - out["offset"][1]) / out["scale"][1] == pytest.approx(25)


def test_color_conversions() -> None:
    img = gradient()
    rgb = run("color", {"image": img}, to="rgb")["image"]
    assert np.array_equal(rgb, img[..., ::-1])
    grey = run("color", {"image": img}, to="gray")["image"]
    assert grey.shape == (40, 60)
    back = run("color", {"image": grey}, to="bgr")["image"]  # grey input is detected
    assert back.shape == (40, 60, 3)
    assert run("color", {"image": img}, to="bgr")["image"] is img


def test_normalize_nchw_values() -> None:
    img = np.zeros((2, 3, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 0, 128, 255
    t = run("normalize", {"image": img}, mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])["tensor"]
    assert t.shape == (1, 3, 2, 3) and t.dtype == np.float32 and t.flags.c_contiguous
    assert t[0, 0].max() == pytest.approx(-1.0)
    assert t[0, 1].max() == pytest.approx(128 / 255 * 2 - 1, abs=1e-6)
    assert t[0, 2].min() == pytest.approx(1.0)


def test_normalize_matches_the_textbook_formula() -> None:
    img = synthetic.make_surface(3)[:20, :30]
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    want = ((img.astype(np.float32) / 255 - mean) / std).transpose(2, 0, 1)[None]
    got = run("normalize", {"image": img}, mean=mean, std=std)["tensor"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_normalize_nhwc_float16_no_batch() -> None:
    t = run("normalize", {"image": gradient()}, layout="NHWC", dtype="float16", batch=False)
    assert t["tensor"].shape == (40, 60, 3) and t["tensor"].dtype == np.float16


def test_normalize_grey_image() -> None:
    t = run("normalize", {"image": np.full((4, 4), 255, np.uint8)}, mean=[0.0], std=[1.0])
    assert t["tensor"].shape == (1, 1, 4, 4) and float(t["tensor"].max()) == pytest.approx(1.0)


# -- tensor post-processing --------------------------------------------------------------------

def test_softmax() -> None:
    p = run("softmax", {"x": np.array([[1.0, 2.0, 3.0]])})["probs"]
    np.testing.assert_allclose(p.sum(), 1.0, rtol=1e-6)
    assert p.argmax() == 2
    big = run("softmax", {"x": np.array([1000.0, 1000.0])})["probs"]  # no overflow
    np.testing.assert_allclose(big, [0.5, 0.5])


def test_topk_ranks_with_labels() -> None:
    out = run("topk", {"x": np.array([[0.1, 0.6, 0.05, 0.25]])}, k=3,
              labels=["ok", "scratch", "dent", "spot"])
    assert [r["rank"] for r in out["ranked"]] == [1, 2, 3]
    assert [r["label"] for r in out["ranked"]] == ["scratch", "spot", "ok"]
    assert out["label"] == "scratch" and out["index"] == 1 and out["score"] == pytest.approx(0.6)


def test_topk_k_larger_than_classes_and_no_labels() -> None:
    out = run("topk", {"x": [0.2, 0.8]}, k=10)
    assert [r["label"] for r in out["ranked"]] == ["1", "0"]


def test_argmax() -> None:
    out = run("argmax", {"x": np.array([[0.7, 0.3]])}, labels=["ok", "ng"])
    assert out["label"] == "ok" and out["ranked"] == [
        {"rank": 1, "index": 0, "label": "ok", "score": pytest.approx(0.7)}]


def test_topk_label_count_must_match() -> None:
    with pytest.raises(ValueError, match="2 labels for 3 classes"):
        run("topk", {"x": [0.1, 0.2, 0.7]}, labels=["a", "b"])


def test_threshold_scalar_and_tensor() -> None:
    assert run("threshold", {"x": 0.7}, value=0.5)["result"] is True
    assert run("threshold", {"x": 0.5}, value=0.5, operator="GT")["result"] is False
    out = run("threshold", {"x": np.array([[0.1, 0.9], [0.6, 0.2]])}, value=0.5)
    assert out["count"] == 2 and out["any"] is True and out["mask"].shape == (2, 2)


def test_nms_suppresses_overlaps_per_class() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 10]],
                     np.float32)
    scores = np.array([[0.9, 0.0], [0.8, 0.0], [0.7, 0.0], [0.0, 0.6]], np.float32)
    out = run("nms", {"boxes": boxes, "scores": scores}, labels=["bolt", "chip"])
    assert out["count"] == 3
    assert [d["label"] for d in out["detections"]] == ["bolt", "bolt", "chip"]
    assert out["detections"][0]["box"] == [0, 0, 10, 10]
    # Class-agnostic: the chip box coincides with the first bolt and goes too.
    agnostic = run("nms", {"boxes": boxes, "scores": scores}, class_aware=False)
    assert agnostic["count"] == 2


def test_nms_cxcywh_score_threshold_and_limit() -> None:
    boxes = np.array([[[5, 5, 10, 10], [100, 100, 10, 10], [200, 200, 10, 10]]], np.float32)
    scores = np.array([[0.9, 0.1, 0.8]], np.float32)
    out = run("nms", {"boxes": boxes, "scores": scores}, format="cxcywh", max_detections=5)
    assert out["count"] == 2 and out["detections"][0]["box"] == [0, 0, 10, 10]
    one = run("nms", {"boxes": boxes, "scores": scores}, format="cxcywh", max_detections=1)
    assert one["count"] == 1


# -- anomaly heat map --------------------------------------------------------------------------

def test_heatmap_stats() -> None:
    amap = np.zeros((1, 1, 10, 10), np.float32)
    amap[0, 0, 2, 7] = 9.0
    amap[0, 0, 3, 7] = 6.0
    img = np.zeros((100, 200, 3), np.uint8)
    out = run("heatmap_stats", {"map": amap, "image": img}, threshold=5.0)
    assert out["score"] == 9.0 and out["mean"] == pytest.approx(0.15)
    assert out["peak"] == [pytest.approx(0.75), pytest.approx(0.25)]
    assert out["area"] == pytest.approx(0.02)
    assert out["bbox"] == [pytest.approx(0.7), pytest.approx(0.2), pytest.approx(0.8),
                           pytest.approx(0.4)]
    assert out["heatmap"].shape == (100, 200, 3) and out["heatmap"].dtype == np.uint8


def test_heatmap_stats_without_threshold_or_image() -> None:
    out = run("heatmap_stats", {"map": np.ones((4, 4), np.float32)}, heatmap=False)
    assert out["area"] is None and out["bbox"] is None and out["heatmap"] is None


# -- measurement -------------------------------------------------------------------------------

@pytest.mark.parametrize("diameter", [11.9, 12.0, 12.04, 12.1])
@pytest.mark.parametrize("method", ["contour", "hough"])
def test_measure_circle_sub_pixel(diameter: float, method: str) -> None:
    img = synthetic.make_bore(diameter, seed=int(diameter * 100), mm_per_px=0.05)
    out = run("measure_circle", {"image": img}, mm_per_px=0.05, method=method,
              min_diameter_mm=8.0, max_diameter_mm=16.0)
    assert out["found"] is True
    assert out["diameter_mm"] == pytest.approx(diameter, abs=0.01)
    assert out["roundness"] > 0.95


def test_measure_circle_calibration_scales() -> None:
    img = synthetic.make_bore(12.0, seed=5, mm_per_px=0.04, size=(480, 480))
    out = run("measure_circle", {"image": img}, mm_per_px=0.04)
    assert out["diameter_px"] == pytest.approx(300, abs=0.3)
    assert out["diameter_mm"] == pytest.approx(12.0, abs=0.012)


def test_measure_circle_not_found() -> None:
    blank = synthetic.make_marking("", seed=1, legible=False)
    out = run("measure_circle", {"image": blank}, mm_per_px=0.05, min_diameter_mm=8.0,
              max_diameter_mm=16.0)
    assert out["found"] is False and out["diameter_mm"] is None


# -- models ------------------------------------------------------------------------------------

def two_input_model(dir_: Path) -> str:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["sum"]), helper.make_node("Mul", ["a", "b"],
                                                                          ["prod"])],
        "two", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 4]),
                helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("sum", TensorProto.FLOAT, [1, 4]),
         helper.make_tensor_value_info("prod", TensorProto.FLOAT, [1, 4])],
    )
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                             ir_version=8).SerializeToString()
    assert onnx.load_from_string(data)
    sha = hashlib.sha256(data).hexdigest()
    (dir_ / sha).write_bytes(data)  # the sync cache's naming: bare hash, no extension
    return f"sha256:{sha}"


def test_onnx_named_inputs_and_outputs(tmp_path: Path) -> None:
    ref = two_input_model(tmp_path)
    ctx = Ctx(SessionPool(ModelStore(roots=[tmp_path])))
    a = np.array([[1, 2, 3, 4]], np.float32)
    b = np.array([[10, 20, 30, 40]], np.float32)
    out = run("onnx", {"a": a, "b": b}, ctx, model=ref)
    np.testing.assert_array_equal(out["sum"], a + b)
    np.testing.assert_array_equal(out["prod"], a * b)
    assert out["output"] is out["sum"] and set(out["outputs"]) == {"sum", "prod"}
    with pytest.raises(ValueError, match="model input"):
        run("onnx", {"a": a}, ctx, model=ref)


OCR_DIR = package_models_dir("rapidocr")


@pytest.mark.skipif(OCR_DIR is None, reason="rapidocr (its PP-OCR models) is not installed")
def test_ocr_reads_a_stamped_marking() -> None:
    assert OCR_DIR is not None
    store = ModelStore(scan=[OCR_DIR])
    det = hashlib.sha256((OCR_DIR / "PP-OCRv6_det_small.onnx").read_bytes()).hexdigest()
    rec = hashlib.sha256((OCR_DIR / "PP-OCRv6_rec_small.onnx").read_bytes()).hexdigest()
    ctx = Ctx(SessionPool(store))
    img = synthetic.make_marking("LOT K47-0815", seed=9_000_123)
    out = run("ocr", {"image": img}, ctx, det_model=f"sha256:{det}", rec_model=f"sha256:{rec}",
              limit_side=640)
    assert out["text"] == "LOT K47-0815" and out["count"] == 1
    assert 0.5 < out["score"] <= 1.0
    box = np.array(out["lines"][0]["box"])
    assert box.shape == (4, 2) and box[:, 0].min() >= 0 and box[:, 0].max() < img.shape[1]
    assert set(ctx.stages) == {"pre", "infer", "post"}
    blank = run("ocr", {"image": synthetic.make_marking("", 3, legible=False)}, ctx,
                det_model=f"sha256:{det}", rec_model=f"sha256:{rec}")
    assert blank["text"] == "" and blank["count"] == 0


def test_every_registered_op_is_covered() -> None:
    assert set(REGISTRY) == {
        "decode", "crop", "resize", "color", "normalize", "onnx", "softmax", "topk", "argmax",
        "threshold", "nms", "heatmap_stats", "measure_circle", "ocr",
        "calibrate"}  # covered in test_calibrate_node.py


def test_surface_generator_is_deterministic() -> None:
    a = synthetic.make_surface(42, "scratch")
    assert np.array_equal(a, synthetic.make_surface(42, "scratch"))
    assert not np.array_equal(a, synthetic.make_surface(42, None))
    assert cv2.imdecode(np.frombuffer(synthetic.encode(a, ".jpg"), np.uint8), 1).shape == a.shape
