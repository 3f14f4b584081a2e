"""Image ops: decode, crop, resize, colour conversion, normalize (image → model tensor).

Images flow as H×W×C uint8 arrays in OpenCV's BGR order unless a ``color`` step says otherwise.
Ops return views where they can (crop) and do one fused pass where they cannot (normalize), because
on a tablet CPU the preprocessing of a 224 px classifier costs about as much as the model itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np

from sidecar.errors import ImageInvalid
from sidecar.pipeline.nodes.base import (
    RunContext,
    as_image,
    declared,
    op,
)

# Images larger than this are refused before decoding (the seed allows 20 MB files; 8 MP cameras
# give ~24 MP at most after demosaicing; this bounds memory on a tablet).
MAX_PIXELS = 64_000_000


def decode_image(data: bytes, grayscale: bool = False) -> np.ndarray[Any, Any]:
    """JPEG/PNG/BMP/TIFF/WebP bytes → BGR (or grey) uint8 array; ``ImageInvalid`` if not one."""
    if not data:
        raise ImageInvalid("image is empty")
    buf = np.frombuffer(data, dtype=np.uint8)
    flags = cv2.IMREAD_GRAYSCALE if grayscale else cv2.IMREAD_COLOR
    try:
        img = cv2.imdecode(buf, flags)
    except cv2.error as exc:  # OpenCV raises on some malformed headers instead of returning None
        raise ImageInvalid(f"image could not be decoded: {exc}") from exc
    if img is None:
        raise ImageInvalid("image could not be decoded (truncated, or not an image format)",
                           size=len(data))
    if img.shape[0] * img.shape[1] > MAX_PIXELS:
        raise ImageInvalid("image has too many pixels", width=img.shape[1], height=img.shape[0])
    return np.asarray(img)


def _decode(
    inputs: Mapping[str, Any], params: Mapping[str, Any], ctx: RunContext
) -> dict[str, Any]:
    data = inputs["data"]
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError("decode expects bytes")
    img = decode_image(bytes(data), grayscale=params["mode"] == "grayscale")
    return {"image": img, "width": img.shape[1], "height": img.shape[0]}


op(declared(
    "decode", stage="decode", run=_decode,
    doc="Decode JPEG/PNG/... bytes into an image (EXIF orientation applied).",
))


def crop_box(
    shape: tuple[int, ...], x: float, y: float, w: float, h: float, relative: bool
) -> tuple[int, int, int, int]:
    """The crop rectangle in pixels, clamped to the image: (x0, y0, x1, y1)."""
    ih, iw = shape[0], shape[1]
    if relative:
        x, w = x * iw, w * iw
        y, h = y * ih, h * ih
    x0 = max(0, round(x))
    y0 = max(0, round(y))
    x1 = min(iw, round(x + w))
    y1 = min(ih, round(y + h))
    return x0, y0, x1, y1


def _crop(inputs: Mapping[str, Any], params: Mapping[str, Any], ctx: RunContext) -> dict[str, Any]:
    img = as_image(inputs["image"])
    x0, y0, x1, y1 = crop_box(img.shape, params["x"], params["y"], params["w"], params["h"],
                              params["relative"])
    if x1 <= x0 or y1 <= y0:
        raise ValueError(
            f"crop region lies outside the {img.shape[1]}×{img.shape[0]} image")
    # A view, not a copy: downstream resize reads it once.
    return {"image": img[y0:y1, x0:x1], "box": [x0, y0, x1, y1]}


op(declared(
    "crop", stage="pre", run=_crop,
    doc="Region of interest, in pixels or (relative=true) as fractions of the image.",
))

_INTERP = {
    "linear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA, "nearest": cv2.INTER_NEAREST,
    "cubic": cv2.INTER_CUBIC,
}


def resize_image(
    img: np.ndarray[Any, Any], width: int, height: int, mode: str = "stretch",
    interpolation: str = "linear", pad: int = 114,
) -> tuple[np.ndarray[Any, Any], list[float], list[float]]:
    """Resize; ``letterbox`` keeps the aspect ratio and pads. Returns (image, scale, offset) so that
    coordinates map back: ``x_src = (x - offset[0]) / scale[0]``."""
    ih, iw = img.shape[:2]
    flag = _INTERP[interpolation]
    if mode == "stretch":
        out = cv2.resize(img, (width, height), interpolation=flag)
        return out, [width / iw, height / ih], [0.0, 0.0]
    s = min(width / iw, height / ih)
    nw, nh = max(1, round(iw * s)), max(1, round(ih * s))
    inner = cv2.resize(img, (nw, nh), interpolation=flag)
    left, top = (width - nw) // 2, (height - nh) // 2
    out = cv2.copyMakeBorder(inner, top, height - nh - top, left, width - nw - left,
                             cv2.BORDER_CONSTANT, value=(pad, pad, pad))
    return out, [s, s], [float(left), float(top)]


def _resize(
    inputs: Mapping[str, Any], params: Mapping[str, Any], ctx: RunContext
) -> dict[str, Any]:
    img = as_image(inputs["image"])
    out, scale, offset = resize_image(img, params["width"], params["height"], params["mode"],
                                      params["interpolation"], params["pad_value"])
    return {"image": out, "scale": scale, "offset": offset}


op(declared(
    "resize", stage="pre", run=_resize,
    doc="Resize to width×height, stretching or letterboxing (aspect kept, padded).",
))

_COLOR = {
    ("bgr", "rgb"): cv2.COLOR_BGR2RGB, ("rgb", "bgr"): cv2.COLOR_RGB2BGR,
    ("bgr", "gray"): cv2.COLOR_BGR2GRAY, ("rgb", "gray"): cv2.COLOR_RGB2GRAY,
    ("gray", "bgr"): cv2.COLOR_GRAY2BGR, ("gray", "rgb"): cv2.COLOR_GRAY2RGB,
    ("bgr", "hsv"): cv2.COLOR_BGR2HSV, ("rgb", "hsv"): cv2.COLOR_RGB2HSV,
}


def _color(inputs: Mapping[str, Any], params: Mapping[str, Any], ctx: RunContext) -> dict[str, Any]:
    img = as_image(inputs["image"])
    src, dst = params["from"], params["to"]
    if img.ndim == 2:
        src = "gray"
    if src == dst:
        return {"image": img}
    code = _COLOR.get((src, dst))
    if code is None:
        raise ValueError(f"no conversion from {src} to {dst}")
    return {"image": cv2.cvtColor(img, code)}


op(declared(
    "color", stage="pre", run=_color,
    doc="Colour conversion (images are BGR as decoded).",
))


def normalize_image(
    img: np.ndarray[Any, Any], mean: list[float], std: list[float], scale: float,
    layout: str, dtype: str, batch: bool,
) -> np.ndarray[Any, Any]:
    """``(img * scale - mean) / std`` per channel as one multiply-add; then layout, batch axis."""
    x = img if img.ndim == 3 else img[:, :, None]
    c = x.shape[2]
    if len(mean) not in (1, c) or len(std) not in (1, c):
        raise ValueError(f"mean/std have {len(mean)}/{len(std)} values for {c} channels")
    alpha = (scale / np.asarray(std, dtype=np.float32)).astype(np.float32)
    beta = (-np.asarray(mean, dtype=np.float32) / np.asarray(std, dtype=np.float32))
    if layout == "NCHW":
        # Transpose the uint8 image first (cheap, 1 byte/px) so the float pass writes contiguously.
        chw = np.ascontiguousarray(x.transpose(2, 0, 1))
        out = chw.astype(np.float32)
        out *= alpha.reshape(-1, 1, 1)
        out += beta.astype(np.float32).reshape(-1, 1, 1)
    else:
        out = x.astype(np.float32)
        out *= alpha
        out += beta.astype(np.float32)
    if dtype != "float32":
        out = out.astype(dtype)
    return out[None] if batch else out


def _normalize(
    inputs: Mapping[str, Any], params: Mapping[str, Any], ctx: RunContext
) -> dict[str, Any]:
    img = as_image(inputs["image"])
    t = normalize_image(img, params["mean"], params["std"], params["scale"], params["layout"],
                        params["dtype"], params["batch"])
    return {"tensor": t}


op(declared(
    "normalize", stage="pre", run=_normalize,
    doc="Image → tensor: scale, subtract mean, divide by std; NCHW or NHWC; batch axis.",
))
