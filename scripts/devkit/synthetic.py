"""Synthetic inspection photographs with known ground truth.

Used twice: ``scripts/make-demo-models`` trains and scores the demo models on these images, and the
tests feed freshly generated ones through the demo pipelines and check the judgments. Everything is
driven by an explicit seed so that a given ``(kind, seed)`` is the same image on every machine.

The scene is a patch of brushed, machined metal (the caliper's face) with four bolt heads, the way a
fixed inspection camera would see it: same framing each time, give or take a few pixels of jitter
and some lighting drift. Defects are drawn on top: scratches, foreign-matter spots, dents, and a
missing bolt. Two further generators draw the stamped lot marking (TEXT items) and the bore
(DIMENSION items).
"""

from __future__ import annotations

from typing import Final, Literal

import cv2
import numpy as np
from numpy.typing import NDArray

Image = NDArray[np.uint8]
Defect = Literal["scratch", "spot", "dent", "missing"]
DEFECTS: Final[tuple[Defect, ...]] = ("scratch", "spot", "dent", "missing")

SURFACE_SIZE: Final = 256
MARKING_FONT: int = cv2.FONT_HERSHEY_DUPLEX
# Bolt heads sit near the corners, as fractions of the image side.
_BOLTS: Final = ((0.2, 0.2), (0.8, 0.2), (0.2, 0.8), (0.8, 0.8))


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def metal_texture(rng: np.random.Generator, height: int, width: int) -> NDArray[np.float32]:
    """Brushed metal as float grey levels (0..255): streaks along x, lighting drift, fine grain."""
    white = rng.normal(0.0, 1.0, (height, width)).astype(np.float32)
    # A long horizontal kernel turns white noise into the grain left by a brushing wheel.
    blurred = np.asarray(cv2.blur(white, (41, 1)), dtype=np.float32)
    streaks = (blurred * (18.0 / max(float(blurred.std()), 1e-6))).astype(np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx / width + np.sin(angle) * yy / height) * rng.uniform(8, 22)
    grain = rng.normal(0.0, 3.0, (height, width)).astype(np.float32)
    base = rng.uniform(135, 160)
    out = base + streaks + ramp + grain
    return np.asarray(out, dtype=np.float32)


def _to_bgr(grey: NDArray[np.float32], rng: np.random.Generator) -> Image:
    # Steel under cool factory light: a slight blue cast, varying a little from shot to shot.
    tint = np.array([1.04, 1.0, 0.96], dtype=np.float32) + rng.normal(0, 0.01, 3).astype(np.float32)
    bgr = grey[..., None] * tint[None, None, :]
    return np.asarray(np.clip(bgr, 0, 255), dtype=np.uint8)


def _draw_bolt(img: Image, cx: float, cy: float, r: float) -> None:
    centre = (round(cx * 16), round(cy * 16))
    # Dark recess, bright hex head, darker socket: enough structure for features to key on.
    cv2.circle(img, centre, round(r * 1.35 * 16), (70, 70, 72), -1, cv2.LINE_AA, 4)
    hexagon = np.array(
        [
            (cx + r * np.cos(a), cy + r * np.sin(a))
            for a in np.linspace(0, 2 * np.pi, 6, endpoint=False) + np.pi / 6
        ],
        dtype=np.float32,
    )
    cv2.fillPoly(img, [np.round(hexagon * 16).astype(np.int32)], (196, 198, 200), cv2.LINE_AA, 4)
    cv2.circle(img, centre, round(r * 0.45 * 16), (60, 60, 62), -1, cv2.LINE_AA, 4)


def _draw_hole(img: Image, cx: float, cy: float, r: float) -> None:
    centre = (round(cx * 16), round(cy * 16))
    cv2.circle(img, centre, round(r * 1.35 * 16), (70, 70, 72), -1, cv2.LINE_AA, 4)
    cv2.circle(img, centre, round(r * 0.8 * 16), (25, 25, 28), -1, cv2.LINE_AA, 4)


def _scratch(img: Image, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    length = rng.uniform(0.25, 0.6) * w
    angle = rng.uniform(0, np.pi)
    cx, cy = rng.uniform(0.25, 0.75) * w, rng.uniform(0.25, 0.75) * h
    bend = rng.uniform(-0.15, 0.15) * length
    t = np.linspace(-0.5, 0.5, 24)
    xs = cx + t * length * np.cos(angle) - bend * (t**2) * np.sin(angle)
    ys = cy + t * length * np.sin(angle) + bend * (t**2) * np.cos(angle)
    pts = np.round(np.stack([xs, ys], axis=1) * 16).astype(np.int32)
    bright = rng.random() < 0.6
    colour = (235, 236, 238) if bright else (55, 55, 58)
    thickness = int(rng.integers(2, 4))
    cv2.polylines(img, [pts], False, colour, thickness, cv2.LINE_AA, 4)


def _spot(img: Image, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    cx, cy = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h
    # Foreign matter: a dark, brownish, irregular blob (oil, chip, dirt).
    for _ in range(int(rng.integers(2, 5))):
        ox, oy = rng.normal(0, 3, 2)
        axes = (round(rng.uniform(4, 10) * 16), round(rng.uniform(3, 8) * 16))
        colour = tuple(float(c) for c in rng.uniform([20, 35, 50], [50, 60, 80]))
        cv2.ellipse(
            img,
            (round((cx + ox) * 16), round((cy + oy) * 16)),
            axes,
            float(rng.uniform(0, 180)),
            0,
            360,
            colour,
            -1,
            cv2.LINE_AA,
            4,
        )


def _dent(img: Image, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    cx, cy = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h
    r = rng.uniform(9, 16)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = (xx - cx) / r, (yy - cy) / r
    d2 = dx * dx + dy * dy
    # A dent reflects light like a shallow bowl: lit on one side, shaded on the other.
    light = np.array([np.cos(rng.uniform(0, 2 * np.pi)), 0.0])
    light[1] = np.sqrt(1 - light[0] ** 2) * (1 if rng.random() < 0.5 else -1)
    shade = (dx * light[0] + dy * light[1]) * np.exp(-d2) * rng.uniform(120, 150)
    out = img.astype(np.float32) + shade[..., None]
    img[...] = np.clip(out, 0, 255).astype(np.uint8)


def make_surface(
    seed: int, defect: Defect | None = None, size: int = SURFACE_SIZE
) -> Image:
    """A photograph of the caliper's face (BGR, ``size``×``size``), with at most one defect."""
    rng = _rng(seed)
    img = _to_bgr(metal_texture(rng, size, size), rng)
    jitter = rng.uniform(-3, 3, 2)
    missing = int(rng.integers(0, len(_BOLTS))) if defect == "missing" else -1
    r = size * 0.055
    for i, (fx, fy) in enumerate(_BOLTS):
        cx, cy = fx * size + jitter[0], fy * size + jitter[1]
        (_draw_hole if i == missing else _draw_bolt)(img, cx, cy, r)
    if defect == "scratch":
        _scratch(img, rng)
    elif defect == "spot":
        _spot(img, rng)
    elif defect == "dent":
        _dent(img, rng)
    # Sensor noise last, so defects get it too.
    noise = rng.normal(0, 2.0, img.shape)
    return np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def make_marking(
    text: str, seed: int, size: tuple[int, int] = (480, 160), legible: bool = True
) -> Image:
    """A stamped marking (e.g. ``"LOT A12-3456"``) on a metal plate, BGR, ``size`` = (w, h)."""
    rng = _rng(seed)
    width, height = size
    img = _to_bgr(metal_texture(rng, height, width), rng)
    if legible:
        font = MARKING_FONT
        scale = height / 110.0
        thickness = max(2, round(scale * 2.2))
        words = text.split(" ")
        sizes = [cv2.getTextSize(w, font, scale, thickness)[0] for w in words]
        # Punched markings leave a clear gap between fields; a proportional font's space is narrow.
        gap = int(sizes[0][1] * 0.9)
        total = sum(w for w, _ in sizes) + gap * (len(words) - 1)
        th = max(h for _, h in sizes)
        x = int((width - total) / 2 + rng.uniform(-6, 6))
        oy = int((height + th) / 2 + rng.uniform(-4, 4))
        for word, (tw, _) in zip(words, sizes, strict=True):
            # A dark engraving with a light lower edge where the punch raised the metal.
            cv2.putText(img, word, (x + 1, oy + 1), font, scale, (205, 206, 208), thickness,
                        cv2.LINE_AA)
            cv2.putText(img, word, (x, oy), font, scale, (40, 40, 44), thickness, cv2.LINE_AA)
            x += tw + gap
    noise = rng.normal(0, 2.0, img.shape)
    return np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def make_bore(
    diameter_mm: float,
    seed: int,
    mm_per_px: float = 0.05,
    size: tuple[int, int] = (400, 400),
) -> Image:
    """A backlit bore seen from above: a dark disc of ``diameter_mm`` on machined metal, BGR."""
    rng = _rng(seed)
    width, height = size
    img = _to_bgr(metal_texture(rng, height, width), rng)
    radius_px = diameter_mm / mm_per_px / 2.0
    cx = width / 2 + rng.uniform(-10, 10)
    cy = height / 2 + rng.uniform(-10, 10)
    # A chamfer ring, then the hole itself, with exact area coverage at the edge: OpenCV's
    # anti-aliased discs come out ~0.6 px too wide, which would bias a ±1 px tolerance check.
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    dist = np.hypot(xx - cx, yy - cy)
    out = img.astype(np.float32)
    for radius, level in ((radius_px + 6, 96.0), (radius_px, 18.0)):
        cover = np.clip(radius - dist + 0.5, 0.0, 1.0)[..., None]
        out = out * (1 - cover) + level * cover
    img = out.astype(np.uint8)
    noise = rng.normal(0, 2.0, img.shape)
    return np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def make_checkerboard(
    square_mm: float,
    seed: int,
    mm_per_px: float = 0.05,
    squares: tuple[int, int] = (8, 6),
    size: tuple[int, int] = (960, 720),
    slant: float = 0.0,
) -> Image:
    """A printed calibration board of ``squares`` (columns, rows) with sides of ``square_mm``,
    photographed at ``mm_per_px`` on a grey bench, BGR; ``slant`` foreshortens its far edge by
    that fraction (a board not flat to the camera). Its inner corners: one fewer each way."""
    rng = _rng(seed)
    width, height = size
    side = square_mm / mm_per_px
    cols, rows = squares
    # Drawn at 4× and reduced with area averaging: the square edges fall between pixels as a
    # camera sees them, so the corners are not on the pixel grid.
    k = 4
    big = np.full((height * k, width * k), 150, np.uint8)
    x0 = width / 2 - cols * side / 2 + rng.uniform(-8, 8)
    y0 = height / 2 - rows * side / 2 + rng.uniform(-8, 8)
    margin = side * 0.6
    cv2.rectangle(big, (int((x0 - margin) * k), int((y0 - margin) * k)),
                  (int((x0 + cols * side + margin) * k), int((y0 + rows * side + margin) * k)),
                  235, -1)
    for r in range(rows):
        for c in range(cols):
            if (r + c) % 2 == 0:
                cv2.rectangle(big, (round((x0 + c * side) * k), round((y0 + r * side) * k)),
                              (round((x0 + (c + 1) * side) * k) - 1,
                               round((y0 + (r + 1) * side) * k) - 1), 25, -1)
    if slant:
        h4, w4 = big.shape
        src = np.float32([[0, 0], [w4, 0], [w4, h4], [0, h4]])
        inset = w4 * slant / 2
        dst = np.float32([[inset, 0], [w4 - inset, 0], [w4, h4], [0, h4]])
        big = cv2.warpPerspective(big, cv2.getPerspectiveTransform(src, dst), (w4, h4),
                                  borderValue=150)
    img = cv2.resize(big, (width, height), interpolation=cv2.INTER_AREA)
    img = cv2.GaussianBlur(img, (3, 3), 0.6)
    noisy = img.astype(np.float32) + rng.normal(0, 2.0, img.shape)
    return cv2.cvtColor(np.clip(noisy, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


def encode(img: Image, ext: str = ".png", quality: int = 95) -> bytes:
    """Encode as a camera or upload would deliver it (PNG by default, JPEG with ``ext=".jpg"``)."""
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, img, params)
    if not ok:
        raise ValueError(f"could not encode image as {ext}")
    return bytes(buf.tobytes())
