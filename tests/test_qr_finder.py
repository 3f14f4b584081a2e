"""sidecar.qr.finder on generated QR symbols with one finder pattern washed out, and on frames
that hold no code."""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt
import pytest
import zxingcpp

from sidecar.errors import ImageInvalid
from sidecar.qr.finder import find_finders, repairs
from tests.support.qr_corpus import generate

Gray = npt.NDArray[np.uint8]
TEXT = "WO-104233,IN-55012,BRK-381,M07,2026-05-14,118"
MODULE = 6  # pixels per module
QUIET = 4  # modules of quiet zone the writer adds


def read(image: Gray) -> list[str]:
    found = zxingcpp.read_barcodes(image, text_mode=zxingcpp.TextMode.Plain)
    return [str(code.text) for code in found]


def photo(text: str, angle: float, washed: str | None, seed: int = 0, *, tilt: float = 0.0,
          cover: str = "glare") -> Gray:
    """A QR label photographed turned by ``angle`` degrees, its far edge ``tilt`` (a share)
    shorter than its near one as when the label leans back, with the ``washed`` finder
    ("top-left", "top-right", "bottom-left"; None: none) lost under a saturated highlight
    (``cover="glare"``) or a grey patch (``cover="patch"``: a finger, a strip of tape)."""
    barcode = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode, ec_level="M")
    symbol = np.array(zxingcpp.write_barcode_to_image(barcode, scale=1, add_quiet_zones=True))
    side = symbol.shape[0] * MODULE
    label = cv2.resize(symbol, (side, side), interpolation=cv2.INTER_NEAREST)
    label = (40 + label.astype(np.float32) * (200 - 40) / 255).astype(np.float32)
    canvas = int(side * 1.5)
    centre = canvas / 2
    square = np.array([[0, 0], [side, 0], [side, side], [0, side]], np.float32)
    shrink = tilt * side / 2
    leaning = square + np.array([[shrink, 0], [-shrink, 0], [0, 0], [0, 0]], np.float32)
    turn = cv2.getRotationMatrix2D((side / 2, side / 2), angle, 1.0)
    placed = leaning @ turn[:, :2].T + turn[:, 2] + (centre - side / 2)
    warp = cv2.getPerspectiveTransform(square, placed.astype(np.float32))
    image = cv2.warpPerspective(label, warp, (canvas, canvas), flags=cv2.INTER_LINEAR,
                                borderValue=120.0)
    if washed is not None:
        n = symbol.shape[0] - 2 * QUIET
        col, row = {"top-left": (3.5, 3.5), "top-right": (n - 3.5, 3.5),
                    "bottom-left": (3.5, n - 3.5)}[washed]
        spot = np.array([[[(QUIET + col) * MODULE, (QUIET + row) * MODULE]]], np.float32)
        cx, cy = cv2.perspectiveTransform(spot, warp)[0, 0]
        if cover == "glare":
            yy, xx = np.mgrid[:canvas, :canvas].astype(np.float32)
            sigma = 3.0 * MODULE
            image = image + 600.0 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
        else:
            patch = ((float(cx), float(cy)), (9.0 * MODULE, 8.0 * MODULE), 35.0 - angle)
            cv2.fillPoly(image, [cv2.boxPoints(patch).astype(np.int32)], 130.0)
    image = cv2.GaussianBlur(image, (0, 0), 0.8)
    image = image + 2 * np.random.default_rng(seed).standard_normal(image.shape, np.float32)
    return np.ascontiguousarray(np.clip(image, 0, 255).astype(np.uint8))


@pytest.mark.parametrize("washed", ["top-left", "top-right", "bottom-left"])
@pytest.mark.parametrize("angle", [23.0, -61.0])
def test_a_washed_out_finder_is_painted_back_and_the_code_reads(washed: str,
                                                                 angle: float) -> None:
    image = photo(TEXT, angle, washed)
    assert read(image) == []  # zxing-cpp cannot locate the symbol on its own
    fixed = repairs(image)
    assert fixed, "no repair offered for a symbol with two finders showing"
    assert all(r.shape == image.shape and r.dtype == np.uint8 for r in fixed)
    assert any(read(r) == [TEXT] for r in fixed)
    # Nothing but the exact text comes out of any repair.
    assert all(read(r) in ([], [TEXT]) for r in fixed)


@pytest.mark.parametrize("washed", ["top-left", "top-right", "bottom-left"])
def test_a_covered_finder_on_a_leaning_label_is_painted_back(washed: str) -> None:
    image = photo(TEXT, 31.0, washed, seed=5, tilt=0.04, cover="patch")
    assert read(image) == []
    assert any(read(r) == [TEXT] for r in repairs(image))


def test_the_likeliest_place_comes_first() -> None:
    image = photo(TEXT, 37.0, "bottom-left", seed=3)
    assert read(repairs(image)[0]) == [TEXT]


def test_the_input_frame_is_left_as_it_was() -> None:
    image = photo(TEXT, 23.0, "top-right")
    before = image.copy()
    assert repairs(image)
    assert np.array_equal(image, before)


def test_finders_are_found_with_their_module_size() -> None:
    finders = find_finders(photo(TEXT, 23.0, None))
    assert len(finders) == 3
    for finder in finders:
        assert finder.module == pytest.approx(MODULE, rel=0.15)
        assert math.degrees(finder.angle) % 90 == pytest.approx(90 - 23.0, abs=4)


def test_a_whole_symbol_needs_no_repair() -> None:
    image = photo(TEXT, 23.0, None)
    assert read(image) == [TEXT]
    assert repairs(image) == []


def finder_like_squares_and_blocks(seed: int) -> Gray:
    """Two finder patterns where a symbol's top corners would be, random blocks around them:
    everything a repair looks for, and no code."""
    rng = np.random.default_rng(seed)
    n = 33
    grid = (rng.random((n, n)) < 0.5).astype(np.uint8)
    for col in (0, n - 7):
        grid[0:8, max(0, col - 1):col + 8] = 0
        grid[0:7, col:col + 7] = 1
        grid[1:6, col + 1:col + 6] = 0
        grid[2:5, col + 2:col + 5] = 1
    modules = np.pad(1 - grid, QUIET, constant_values=1) * 255
    side = modules.shape[0] * MODULE
    label = cv2.resize(modules.astype(np.uint8), (side, side), interpolation=cv2.INTER_NEAREST)
    turn = cv2.getRotationMatrix2D((side / 2, side / 2), 17.0, 1.0)
    turn[:, 2] += side / 4
    big = int(side * 1.5)
    image = cv2.warpAffine(label, turn, (big, big), flags=cv2.INTER_LINEAR, borderValue=120)
    return np.ascontiguousarray(cv2.GaussianBlur(image, (0, 0), 0.8))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_two_finders_and_random_blocks_are_painted_but_never_read(seed: int) -> None:
    image = finder_like_squares_and_blocks(seed)
    assert len(find_finders(image)) == 2
    fixed = repairs(image)
    assert fixed  # the pair qualifies: the reader is what must refuse
    assert all(read(r) == [] for r in fixed)


def test_frames_without_a_code_give_no_read() -> None:
    frames = list(generate(seed=1, per_condition=10, conditions=("nocode",)))
    assert len(frames) == 10
    for frame in frames:
        assert all(read(r) == [] for r in repairs(frame.image)), frame.name


@pytest.mark.parametrize("shape", [(0, 0), (1, 1), (5, 40), (20, 20)])
def test_a_tiny_image_gives_nothing(shape: tuple[int, int]) -> None:
    assert repairs(np.zeros(shape, np.uint8)) == []


@pytest.mark.parametrize("value", [0, 128, 255])
def test_a_blank_image_gives_nothing(value: int) -> None:
    assert repairs(np.full((400, 400), value, np.uint8)) == []


@pytest.mark.parametrize("image", [
    np.zeros((50, 50, 3), np.uint8),
    np.zeros((50, 50), np.float32),
    np.zeros(50, np.uint8),
])
def test_anything_but_a_grey_frame_is_refused(image: npt.NDArray[np.generic]) -> None:
    with pytest.raises(ImageInvalid):
        repairs(image)  # type: ignore[arg-type]
