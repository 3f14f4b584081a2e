"""Degraded camera frames of codes with a known text, generated from a seed.

Each frame is a grey 8-bit picture of a code (a label on a bench, or a mark on metal) as a tablet
camera sees it on the line: every frame has a base of what any camera adds (a little defocus, sensor
noise, JPEG at the camera's quality, a turn in the plane, a small tilt) and then one condition at a
severity drawn from the range the line produces. The same seed gives the same frames on every
machine, so a decode rate measured here can be compared across changes; a second seed gives frames
the decoder was never tuned on.

    from tests.support.qr_corpus import CONDITIONS, generate
    for frame in generate(seed=2, per_condition=40): ...

Symbols come from zxing-cpp's writer; payloads are random labels in the spellings
``sidecar.qr.payload`` accepts (legacy, JSON, work-order CSV/JSON, GS1 element strings). Frames
are 800x600; QR codes get error correction L, M, Q or H (10/50/30/10 %).

=============  ==================================================================================
condition      what, at what severity (drawn uniformly)
=============  ==================================================================================
blur           defocus (a disk 0.4-0.9 modules wide), hand shake (a line 0.5-1.3 modules), or both
glare          a saturating specular highlight over 8-25 % of the label's width and height
lowlight       6-20 % of the light, shot and read noise, then 1-2.5x gain
perspective    tilted 25-45 degrees out of the plane
cylinder       wrapped round a part over 35-90 degrees of its circumference, light falling off
jpeg           JPEG quality 20-35
occlusion      an opaque patch over 2-6 % of the label, within its middle
inverted       light modules on a dark label
small          1.3-2.0 px per module
uneven         a light ramp from 25 to 100 % and a hard shadow (25-50 % light) across the code
laser          laser-darkened modules with ragged edges on brushed or blasted metal, 25-55 % darker
dotpeen        round dimples (dark with a lit rim) on metal, one per dark module
datamatrix     Data Matrix (half of them GS1) dot-peened or lasered on metal (70 %) or printed
code128        Code 128 labels (half GS1-128), 1.4-3 px per module, within 20 degrees of level
nocode         a blank label, printed text, bare metal, a chequered sticker, random blocks
=============  ==================================================================================

Every frame also gets: 2.5-7 px per module (unless said otherwise), any turn in the plane, up to 12
degrees of tilt, a Gaussian blur of 0.4-0.9 px, noise of 1-4 grey levels, JPEG quality 70-91.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
import zxingcpp

Gray = npt.NDArray[np.uint8]
Rng = np.random.Generator

WIDTH, HEIGHT = 800, 600
# Everything is drawn at twice the frame size and area-averaged down, so that edges are
# anti-aliased the way a lens and a sensor make them (nearest-neighbour drawing at the final size
# gives razor edges no camera produces, and flatters every decoder).
_SS = 2

CONDITIONS: tuple[str, ...] = (
    "blur", "glare", "lowlight", "perspective", "cylinder", "jpeg", "occlusion", "inverted",
    "small", "uneven", "laser", "dotpeen", "datamatrix", "code128", "nocode",
)
"""Conditions in the order reports list them; ``nocode`` frames hold no code at all."""

SYMBOLOGIES = ("QR_CODE", "DATA_MATRIX", "CODE_128")
_WRITER = {
    "QR_CODE": zxingcpp.BarcodeFormat.QRCode,
    "DATA_MATRIX": zxingcpp.BarcodeFormat.DataMatrix,
    "CODE_128": zxingcpp.BarcodeFormat.Code128,
}


@dataclass(frozen=True, slots=True)
class Frame:
    """One generated frame: ``text`` is what the code carries (GS1 in its bracketed form), or
    ``None`` for a frame with no code."""

    name: str
    condition: str
    image: Gray
    text: str | None
    symbology: str | None


# --- payloads ----------------------------------------------------------------------------------

_ALNUM = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"


def _ident(rng: Rng, prefix: str, digits: int) -> str:
    return prefix + "".join(str(int(d)) for d in rng.integers(0, 10, digits))


def _word(rng: Rng, n: int) -> str:
    return "".join(_ALNUM[int(i)] for i in rng.integers(0, len(_ALNUM), n))


def _stamp(rng: Rng) -> tuple[str, str]:
    month, day = int(rng.integers(1, 13)), int(rng.integers(1, 29))
    hour, minute = int(rng.integers(0, 24)), int(rng.integers(0, 60))
    return (f"2026{month:02d}{day:02d}T{hour:02d}{minute:02d}", f"2026-{month:02d}-{day:02d}")


def gtin(rng: Rng) -> str:
    """A random GTIN-14 with a correct check digit."""
    body = "0" + "".join(str(int(d)) for d in rng.integers(0, 10, 12))
    total = sum(int(c) * (3 if i % 2 == 0 else 1) for i, c in enumerate(reversed(body)))
    return body + str((10 - total % 10) % 10)


def gs1_payload(rng: Rng) -> str:
    """A GS1 element string in its bracketed (HRI) form: GTIN, expiry, batch, often a serial."""
    month, day = int(rng.integers(1, 13)), int(rng.integers(1, 29))
    text = f"(01){gtin(rng)}(17)27{month:02d}{day:02d}(10){_word(rng, int(rng.integers(4, 9)))}"
    if rng.random() < 0.6:
        text += f"(21){_word(rng, int(rng.integers(5, 11)))}"
    return text


def payload(rng: Rng, symbology: str = "QR_CODE") -> str:
    """A random label text in one of the product's spellings (short ones for 1-D codes)."""
    product = f"BRK-{int(rng.integers(100, 1000))}"
    batch = f"{_word(rng, 1)}{int(rng.integers(10, 100))}-{_ident(rng, '', 4)}"
    stamp, day = _stamp(rng)
    if symbology == "CODE_128":
        return gs1_payload(rng) if rng.random() < 0.5 else f"{product}_{batch}"
    if symbology == "DATA_MATRIX" and rng.random() < 0.5:
        return gs1_payload(rng)
    kind = int(rng.integers(0, 4))
    if kind == 0:
        return f"{product}_{batch}_{stamp}"
    if kind == 1:
        serial = _ident(rng, "", 7)
        return f'{{"product_id": "{product}", "batch_id": "{batch}", "serial": "{serial}"}}'
    order, instr, machine = _ident(rng, "WO-", 6), _ident(rng, "IN-", 5), _ident(rng, "M", 2)
    seq = int(rng.integers(1, 999))
    if kind == 2:
        return f"{order},{instr},{product},{machine},{day},{seq}"
    return (f'{{"workOrderId": "{order}", "instructionId": "{instr}", "productCode": "{product}",'
            f' "machineNumber": "{machine}", "productionDate": "{day}", "monthlySequence": {seq}}}')


# --- symbols -----------------------------------------------------------------------------------


def symbol(text: str, symbology: str, rng: Rng | None = None) -> Gray:
    """The bare symbol, one pixel per module (one pixel per bar module for Code 128), black on
    white, with its quiet zone. QR codes get a random error-correction level, as labels do."""
    fmt = _WRITER[symbology]
    gs1 = text.startswith("(")
    options: dict[str, object] = {}
    if gs1:
        options["gs1"] = True
    if symbology == "QR_CODE" and rng is not None:
        options["ec_level"] = "LMQH"[int(rng.choice(4, p=[0.1, 0.5, 0.3, 0.1]))]
    barcode = zxingcpp.create_barcode(text, fmt, **options)
    image = np.array(zxingcpp.write_barcode_to_image(barcode, add_quiet_zones=True))
    return np.ascontiguousarray(image, dtype=np.uint8)


# --- drawing helpers ---------------------------------------------------------------------------


def _f32(array: object) -> npt.NDArray[np.float32]:
    return np.asarray(array, dtype=np.float32)


def _noise(rng: Rng, shape: tuple[int, ...]) -> npt.NDArray[np.float32]:
    return rng.standard_normal(shape).astype(np.float32)


def _smooth_noise(rng: Rng, shape: tuple[int, int], scale: float) -> npt.NDArray[np.float32]:
    """Low-frequency noise in [-1, 1]: shading of a table, a wall, a hand."""
    h, w = shape
    small = rng.standard_normal((max(2, int(h / scale)), max(2, int(w / scale))))
    big = cv2.resize(small.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    peak = float(np.abs(big).max()) or 1.0
    return np.asarray(big / peak, dtype=np.float32)


def _metal(rng: Rng, shape: tuple[int, int]) -> npt.NDArray[np.float32]:
    """Brushed or blasted metal: a grey base, streaks along one direction, fine grain."""
    h, w = shape
    base = float(rng.uniform(90, 170))
    grain = rng.standard_normal((h, w)).astype(np.float32)
    if rng.random() < 0.6:  # brushed: streaks along a random direction
        length = int(rng.integers(15, 60))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0 / length
        angle = float(rng.uniform(0, 180))
        rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), angle, 1.0)
        kernel = _f32(cv2.warpAffine(kernel, rot, (length, length)))
        kernel /= max(float(kernel.sum()), 1e-6)
        streaks = cv2.filter2D(grain, -1, kernel) * float(rng.uniform(25, 45))
        texture = streaks + grain * float(rng.uniform(3, 8))
    else:  # blasted: a coarse grain
        texture = cv2.GaussianBlur(grain, (0, 0), float(rng.uniform(0.8, 1.6))) * float(
            rng.uniform(12, 25))
    shade = _smooth_noise(rng, shape, float(rng.uniform(150, 400))) * float(rng.uniform(10, 35))
    return np.asarray(base + texture + shade, dtype=np.float32)


def _background(rng: Rng, shape: tuple[int, int]) -> npt.NDArray[np.float32]:
    """A bench, a tray, a machine: grey shading and some edges that are not a code."""
    h, w = shape
    bg = float(rng.uniform(40, 170)) + _smooth_noise(rng, shape, 200) * float(rng.uniform(10, 40))
    bg = bg + rng.standard_normal((h, w)).astype(np.float32) * 3
    for _ in range(int(rng.integers(0, 5))):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = int(rng.integers(0, w)), int(rng.integers(0, h))
        cv2.line(bg, (x0, y0), (x1, y1), float(rng.uniform(0, 255)), int(rng.integers(2, 12)))
    return np.asarray(bg, dtype=np.float32)


def _homography(rng: Rng, size: tuple[int, int], module_px: float, tilt_deg: float,
                centre: tuple[float, float], upright: bool) -> npt.NDArray[np.float64]:
    """Map a symbol of ``size`` (w, h in modules) onto the canvas: scaled to ``module_px`` canvas
    pixels per module, turned in the plane by any angle, tilted out of it by ``tilt_deg`` about a
    random axis and seen by a pinhole camera. An ``upright`` symbol (a long 1-D label, which
    would not fit the frame turned) stays within 20 degrees of level, either way up."""
    w, h = size
    half = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
    pts = half * module_px
    spin = math.radians(float(rng.uniform(-20, 20) + 180 * rng.integers(0, 2) if upright
                              else rng.uniform(0, 360)))
    axis = math.radians(float(rng.uniform(0, 180)))
    tilt = math.radians(tilt_deg)
    focal = WIDTH * _SS * 1.1
    out = []
    for x, y in pts:
        xs, ys = x * math.cos(spin) - y * math.sin(spin), x * math.sin(spin) + y * math.cos(spin)
        # Tilt about the in-plane axis at angle `axis`: the component across the axis leaves the
        # plane.
        along = xs * math.cos(axis) + ys * math.sin(axis)
        across = -xs * math.sin(axis) + ys * math.cos(axis)
        z = across * math.sin(tilt)
        across *= math.cos(tilt)
        xr = along * math.cos(axis) - across * math.sin(axis)
        yr = along * math.sin(axis) + across * math.cos(axis)
        depth = focal + z
        out.append((centre[0] + xr * focal / depth, centre[1] + yr * focal / depth))
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    return np.asarray(cv2.getPerspectiveTransform(src, np.array(out, np.float32)), np.float64)


def _cylinder(flat: npt.NDArray[np.float32], arc: float
              ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Wrap a flat label around a cylinder whose axis runs along the label's columns, seen from
    the front: modules shrink towards both sides. Returns the warped label and, per column, how
    much light the surface there sends back (it falls off with the surface angle)."""
    h, w = flat.shape
    radius = w / arc
    out_w = int(2 * radius * math.sin(arc / 2))
    u = np.arange(out_w, dtype=np.float32) - out_w / 2
    angle = np.arcsin(np.clip(u / radius, -1, 1))
    map_x = np.tile((radius * angle + w / 2).astype(np.float32), (h, 1))
    map_y = np.tile(np.arange(h, dtype=np.float32)[:, None], (1, out_w))
    warped = cv2.remap(flat, map_x, map_y, cv2.INTER_LINEAR, borderValue=0.0)
    return np.asarray(warped, np.float32), np.asarray(np.cos(angle), np.float32)


def _disk_kernel(radius: float) -> npt.NDArray[np.float32]:
    size = math.ceil(radius) * 2 + 1
    yy, xx = np.mgrid[:size, :size] - size // 2
    kernel = (xx**2 + yy**2 <= radius**2).astype(np.float32)
    return np.asarray(kernel / kernel.sum(), dtype=np.float32)


def _motion_kernel(length: float, angle: float) -> npt.NDArray[np.float32]:
    size = math.ceil(length) | 1
    kernel = np.zeros((size, size), np.float32)
    kernel[size // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D((size / 2 - 0.5, size / 2 - 0.5), angle, 1.0)
    kernel = _f32(cv2.warpAffine(kernel, rot, (size, size)))
    return np.asarray(kernel / max(float(kernel.sum()), 1e-6), dtype=np.float32)


def _jpeg(image: npt.NDArray[np.float32], quality: int) -> npt.NDArray[np.float32]:
    ok, buf = cv2.imencode(".jpg", np.clip(image, 0, 255).astype(np.uint8),
                           [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return np.asarray(cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE), dtype=np.float32)


# --- frames ------------------------------------------------------------------------------------


def _mark_layer(sym: Gray, module_px: float, condition: str, rng: Rng
                ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """The symbol drawn at canvas resolution as (ink, extent): ``ink`` in [0, 1] where the mark
    darkens (1 = full mark), ``extent`` 1 over the label/mark area. Dot-peen marks are round
    dots with a highlight; everything else is square modules."""
    scale = max(1, round(module_px))
    h, w = sym.shape
    dark = (sym < 128).astype(np.float32)
    if condition == "dotpeen":
        cell = max(6, scale)
        ink = np.zeros((h * cell, w * cell), np.float32)
        radius = cell * float(rng.uniform(0.30, 0.46))
        for y, x in zip(*np.nonzero(dark), strict=True):
            jitter = rng.normal(0, cell * 0.05, 2)
            cx, cy = (x + 0.5) * cell + jitter[0], (y + 0.5) * cell + jitter[1]
            cv2.circle(ink, (int(cx * 4), int(cy * 4)), int(radius * 4), 1.0, -1,
                       lineType=cv2.LINE_AA, shift=2)
        ink = cv2.GaussianBlur(ink, (0, 0), cell * 0.08)
    else:
        ink = cv2.resize(dark, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST)
        if condition == "laser":  # burnt edges are ragged
            ragged = _smooth_noise(rng, ink.shape, max(2.0, scale / 2)) * 0.35
            ink = np.clip(cv2.GaussianBlur(ink, (0, 0), scale * 0.15) + ragged * ink, 0, 1)
    return _f32(ink), np.ones(ink.shape, np.float32)


def _frame(rng: Rng, condition: str, index: int, text: str | None = None,
           symbology: str | None = None) -> Frame:
    if condition == "nocode":
        return _no_code_frame(rng, index)
    if symbology is None:
        symbology = {"datamatrix": "DATA_MATRIX", "code128": "CODE_128"}.get(condition, "QR_CODE")
    if text is None:
        text = payload(rng, symbology)
    sym = symbol(text, symbology, rng)
    canvas_shape = (HEIGHT * _SS, WIDTH * _SS)
    on_metal = condition in ("laser", "dotpeen") or (condition == "datamatrix"
                                                    and rng.random() < 0.7)
    dpm = condition if condition in ("laser", "dotpeen") else (
        ("dotpeen" if rng.random() < 0.5 else "laser") if on_metal else "print")

    # Module size in final frame pixels: what a tablet held 15-30 cm from a label sees.
    linear = symbology == "CODE_128"
    if condition == "small":
        module = float(rng.uniform(1.3, 2.0))
    elif linear:
        module = float(rng.uniform(1.4, max(1.5, min(3.0, WIDTH * 0.85 / sym.shape[1]))))
    else:
        max_module = min(WIDTH, HEIGHT) * 0.55 / max(sym.shape)
        module = float(rng.uniform(2.5, min(7.0, max(2.6, max_module))))
    ink, extent = _mark_layer(sym, module * _SS, dpm, rng)
    if linear:  # Code 128 bars are tall: a label, not a strip
        rows = int(ink.shape[1] * rng.uniform(0.25, 0.4))
        ink = _f32(cv2.resize(ink, (ink.shape[1], rows), interpolation=cv2.INTER_NEAREST))
        extent = np.ones_like(ink)

    # How much darker the mark is than the metal, or the ink than the paper.
    contrast = float(rng.uniform(0.25, 0.55) if on_metal else rng.uniform(0.70, 0.90))
    light = np.ones_like(ink)
    if condition == "cylinder":
        arc = float(rng.uniform(0.6, 1.6))  # radians of the part the label wraps (35-90 deg)
        ink, column_light = _cylinder(ink, arc)
        extent, _ = _cylinder(extent, arc)
        light = np.tile(column_light ** float(rng.uniform(0.3, 1.0)), (ink.shape[0], 1))

    lh, lw = ink.shape
    tilt = float(rng.uniform(25, 45)) if condition == "perspective" else float(rng.uniform(0, 12))
    centre = (float(rng.uniform(0.35, 0.65)) * canvas_shape[1],
              float(rng.uniform(0.35, 0.65)) * canvas_shape[0])
    hom = _homography(rng, (lw, lh), 1.0, tilt, centre, upright=linear)
    size = (canvas_shape[1], canvas_shape[0])
    ink_c = cv2.warpPerspective(ink, hom, size, flags=cv2.INTER_LINEAR)
    ext_c = cv2.warpPerspective(extent, hom, size, flags=cv2.INTER_LINEAR)
    light_c = cv2.warpPerspective(light, hom, size, flags=cv2.INTER_LINEAR,
                                  borderValue=1.0)

    if on_metal:
        canvas = _metal(rng, canvas_shape)
        if dpm == "dotpeen":
            # A dimple is dark on the side away from the light and bright on the lit side.
            towards = rng.normal(0, 1, 2)
            towards /= np.linalg.norm(towards) + 1e-9
            shift = max(1, int(module * _SS * 0.12))
            lit = np.roll(ink_c, (int(towards[1] * shift), int(towards[0] * shift)), axis=(0, 1))
            canvas = canvas * (1 - contrast * ink_c) + np.clip(lit - ink_c, 0, 1) * 60
        else:
            canvas = canvas * (1 - contrast * ink_c)
    else:
        canvas = _background(rng, canvas_shape)
        paper = float(rng.uniform(185, 245))
        label = paper * light_c + rng.standard_normal(canvas_shape).astype(np.float32) * 2
        canvas = canvas * (1 - ext_c) + label * ext_c
        canvas = canvas * (1 - contrast * ink_c)
        if condition == "inverted":  # light marks on a dark label
            dark_label = float(rng.uniform(10, 60))
            bright = float(rng.uniform(160, 235))
            inner = (dark_label + (bright - dark_label) * ink_c) * light_c
            canvas = canvas * (1 - ext_c) + inner * ext_c

    canvas = _condition(_f32(canvas), condition, rng, module * _SS, _box(_f32(ext_c)))
    image = _camera(canvas, rng, condition, module)
    return Frame(f"{condition}-{index:03d}", condition, image, text, symbology)


def _box(extent: npt.NDArray[np.float32]) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(extent > 0.5)
    if len(xs) == 0:
        return (0, 0, extent.shape[1], extent.shape[0])
    return (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))


def _condition(canvas: npt.NDArray[np.float32], condition: str, rng: Rng, module: float,
               box: tuple[int, int, int, int]) -> npt.NDArray[np.float32]:
    """Apply the condition's own degradation at canvas resolution (before the camera)."""
    h, w = canvas.shape
    x0, y0, x1, y1 = box
    bw, bh = max(1, x1 - x0), max(1, y1 - y0)
    if condition == "glare":
        # A specular highlight: a saturated ellipse over part of the code.
        cx, cy = x0 + float(rng.uniform(0.2, 0.8)) * bw, y0 + float(rng.uniform(0.2, 0.8)) * bh
        sx, sy = float(rng.uniform(0.08, 0.25)) * bw, float(rng.uniform(0.08, 0.25)) * bh
        yy, xx = np.mgrid[:h, :w].astype(np.float32)
        blob = np.exp(-(((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2) / 2)
        return _f32(canvas + blob * float(rng.uniform(150, 320)))
    if condition == "lowlight":
        return canvas * float(rng.uniform(0.06, 0.2))
    if condition == "occlusion":
        # A finger, a tape edge or a scratch over 2-6 % of the label, in its middle: an
        # occluder that hides a whole finder pattern leaves nothing any decoder can locate.
        area = float(rng.uniform(0.02, 0.06)) * bw * bh
        rw = math.sqrt(area * float(rng.uniform(0.4, 2.5)))
        rh = area / rw
        cx, cy = x0 + float(rng.uniform(0.3, 0.7)) * bw, y0 + float(rng.uniform(0.3, 0.7)) * bh
        angle = float(rng.uniform(0, 180))
        rect = cv2.boxPoints(((cx, cy), (rw, rh), angle)).astype(np.int32)
        out = canvas.copy()
        cv2.fillPoly(out, [rect], float(rng.uniform(20, 230)), lineType=cv2.LINE_AA)
        return out
    if condition == "uneven":
        # A hard shadow across the code, and a ramp of light.
        yy, xx = np.mgrid[:h, :w].astype(np.float32)
        angle = float(rng.uniform(0, 2 * math.pi))
        proj = (xx - (x0 + bw / 2)) * math.cos(angle) + (yy - (y0 + bh / 2)) * math.sin(angle)
        span = max(bw, bh)
        ramp = 0.25 + 0.75 * np.clip(proj / span + 0.5, 0, 1)
        edge = float(rng.uniform(-0.3, 0.3)) * span
        shadow = np.where(proj > edge, 1.0, float(rng.uniform(0.25, 0.5))).astype(np.float32)
        shadow = _f32(cv2.GaussianBlur(shadow, (0, 0), module * 0.7))
        return _f32(canvas * ramp * shadow)
    return canvas


def _camera(canvas: npt.NDArray[np.float32], rng: Rng, condition: str,
            module: float) -> Gray:
    """What the camera does to every frame, with the condition's share where it is the camera's
    (blur, noise in the dark, compression)."""
    img = cv2.resize(canvas, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
    if condition == "blur":
        kind = rng.random()
        if kind < 0.4 or kind >= 0.8:  # defocus: a disk as wide as 0.4-0.9 modules
            img = cv2.filter2D(img, -1, _disk_kernel(max(1.0, module * rng.uniform(0.4, 0.9))))
        if kind >= 0.4:  # hand shake: a line 0.5-1.3 modules long
            img = cv2.filter2D(img, -1, _motion_kernel(max(2.0, module * rng.uniform(0.5, 1.3)),
                                                       float(rng.uniform(0, 180))))
    else:
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.4, 0.9)))
    if condition == "lowlight":
        # Shot noise grows with the signal; read noise does not; the camera then applies gain.
        shot = _noise(rng, img.shape) * np.sqrt(np.maximum(img, 0))
        read = _noise(rng, img.shape) * float(rng.uniform(1.5, 3.5))
        img = img + shot * 0.8 + read
        img = img * float(rng.uniform(1.0, 2.5))
    else:
        img = img + _noise(rng, img.shape) * float(rng.uniform(1, 4))
    quality = int(rng.integers(20, 36)) if condition == "jpeg" else int(rng.integers(70, 92))
    img = _jpeg(_f32(img), quality)
    return np.ascontiguousarray(np.clip(img + 0.5, 0, 255).astype(np.uint8))


def _no_code_frame(rng: Rng, index: int) -> Frame:
    """Things the camera sees between labels: a bare label, printed text, metal, a grid of
    holes, a keyboard-like pattern. Any text read here is a wrong read."""
    shape = (HEIGHT * _SS, WIDTH * _SS)
    kind = index % 5
    canvas = _metal(rng, shape) if kind == 2 else _background(rng, shape)
    h, w = shape
    if kind in (0, 1, 3, 4):
        x0, y0 = int(rng.integers(0, w // 3)), int(rng.integers(0, h // 3))
        x1, y1 = x0 + int(rng.integers(w // 4, w // 2)), y0 + int(rng.integers(h // 4, h // 2))
        cv2.rectangle(canvas, (x0, y0), (x1, y1), float(rng.uniform(190, 245)), -1)
        if kind == 1:  # printed text on the label
            mask = np.zeros(shape, np.uint8)
            for line in range(int(rng.integers(3, 9))):
                y = y0 + 40 + line * 50
                if y > y1 - 10:
                    break
                cv2.putText(mask, f"{_word(rng, 8)} {_word(rng, 5)}", (x0 + 20, y),
                            cv2.FONT_HERSHEY_SIMPLEX, float(rng.uniform(0.8, 1.6)), 255, 3)
            canvas[mask > 0] = 30.0
        elif kind == 3:  # a grid of squares, like a keypad or a chequered sticker
            cell = int(rng.integers(10, 40))
            for yy in range(y0, y1 - cell, cell * 2):
                for xx in range(x0 + (yy // cell % 2) * cell, x1 - cell, cell * 2):
                    cv2.rectangle(canvas, (xx, yy), (xx + cell, yy + cell), 40.0, -1)
        elif kind == 4:  # random blocks: the nearest thing to a code that is not one
            cell = int(rng.integers(8, 20))
            blocks = rng.random(((y1 - y0) // cell, (x1 - x0) // cell)) < 0.5
            for (by, bx) in zip(*np.nonzero(blocks), strict=True):
                cv2.rectangle(canvas, (x0 + bx * cell, y0 + by * cell),
                              (x0 + bx * cell + cell - 1, y0 + by * cell + cell - 1), 35.0, -1)
    image = _camera(canvas, rng, "nocode", 4.0)
    return Frame(f"nocode-{index:03d}", "nocode", image, None, None)


def generate(seed: int, per_condition: int,
             conditions: Sequence[str] = CONDITIONS) -> Iterator[Frame]:
    """``per_condition`` frames for each condition, the same for the same seed. Each condition
    draws from its own stream, so asking for fewer conditions does not change the frames."""
    for position, condition in enumerate(CONDITIONS):
        if condition not in conditions:
            continue
        rng = np.random.default_rng([seed, position])
        for index in range(per_condition):
            yield _frame(rng, condition, index)


def printed_photo(text: str, symbology: str, seed: int) -> Gray:
    """One label of ``symbology`` carrying ``text``, printed and photographed: only what every
    camera frame gets (defocus, noise, a turn and a tilt, JPEG), for tests of each symbology."""
    return _frame(np.random.default_rng(seed), "print", 0, text, symbology).image
