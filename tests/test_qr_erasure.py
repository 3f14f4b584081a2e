"""QR codes past their error correction as read, restored by taking a covered patch as erasures;
1-D labels turned and blurred, read upright; and reads that are refused rather than risked."""

from __future__ import annotations

import math
from typing import Any, cast

import cv2
import numpy as np
import numpy.typing as npt
import pytest
import zxingcpp

from sidecar.qr import erasure
from sidecar.qr.decode import Code, decode_gray, decode_image, trusted
from tests.support.qr_corpus import generate

Gray = npt.NDArray[np.uint8]
TEXT = "BRK-100_A12-3456_20261127T0800"


def _label(text: str, level: str, scale: int = 6) -> Gray:
    barcode = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode, ec_level=level)
    image = np.array(zxingcpp.write_barcode_to_image(barcode, scale=scale, add_quiet_zones=True))
    return np.ascontiguousarray(image, dtype=np.uint8)


def _turn(image: Gray, degrees: float) -> Gray:
    h, w = image.shape
    size = int(math.hypot(h, w)) + 20
    canvas = np.full((size, size), 255, np.uint8)
    y, x = (size - h) // 2, (size - w) // 2
    canvas[y:y + h, x:x + w] = image
    turn = cv2.getRotationMatrix2D((size / 2, size / 2), degrees, 1.0)
    turned = cv2.warpAffine(canvas, turn, (size, size), flags=cv2.INTER_LINEAR, borderValue=255)
    return np.ascontiguousarray(cv2.GaussianBlur(turned, (0, 0), 0.8))


def _cover(image: Gray, box: tuple[int, int, int, int], grey: int) -> Gray:
    out = image.copy()
    x, y, w, h = box
    out[y:y + h, x:x + w] = grey
    return out


def _corners(image: Gray) -> tuple[list[tuple[float, float]], dict[str, Any]]:
    barcode = next(b for b in zxingcpp.read_barcodes(image, return_errors=True)
                   if b.format == zxingcpp.BarcodeFormat.QRCode)
    p = barcode.position
    corners = [(float(c.x), float(c.y))
               for c in (p.top_left, p.top_right, p.bottom_right, p.bottom_left)]
    return corners, cast(dict[str, Any], barcode.extra)


def _occluded(level: str = "M") -> Gray:
    # Version 3 at 6 px a module (29 modules, 4 of quiet zone each side): a grey patch of 11x11
    # modules over the data area takes more of its 70 codewords than the 13 errors level M
    # corrects, and fewer than the 25 erasures it restores.
    label = _label(TEXT, level)
    assert label.shape == (222, 222)
    return _turn(_cover(label, (90, 120, 66, 66), 150), 17.0)


def test_a_covered_patch_defeats_zxing_alone() -> None:
    frame = _occluded()
    assert zxingcpp.read_barcodes(frame) == []
    [barcode] = [b for b in zxingcpp.read_barcodes(frame, return_errors=True)
                 if b.format == zxingcpp.BarcodeFormat.QRCode]
    assert barcode.error is not None and barcode.error.type == zxingcpp.ErrorType.Checksum


def test_the_chain_reads_it_with_the_patch_as_erasures() -> None:
    codes, stage = decode_gray(_occluded(), budget_s=None)
    assert codes == [Code(TEXT, "QR_CODE")]
    assert stage is not None and stage.endswith("erasure")


@pytest.mark.parametrize("grey", [0, 255, 90])
def test_repair_redraws_the_symbol_clean(grey: int) -> None:
    frame = _turn(_cover(_label(TEXT, "M"), (100, 100, 60, 60), grey), 17.0)
    assert zxingcpp.read_barcodes(frame) == []
    corners, extra = _corners(frame)
    clean = erasure.repair(frame, corners, int(str(extra["Version"])), str(extra["ECLevel"]),
                           int(str(extra["DataMask"])))
    assert clean is not None
    [read] = zxingcpp.read_barcodes(clean)
    assert read.text == TEXT
    assert cast(dict[str, Any], read.extra)["UEC"] == 1.0  # a clean drawing: nothing to correct


def test_an_intact_symbol_repairs_to_itself() -> None:
    frame = _turn(_label(TEXT, "L"), 8.0)
    corners, extra = _corners(frame)
    clean = erasure.repair(frame, corners, int(str(extra["Version"])), "L",
                           int(str(extra["DataMask"])))
    assert clean is not None
    assert zxingcpp.read_barcodes(clean)[0].text == TEXT


def test_more_covered_than_the_check_codewords_restore_is_refused() -> None:
    # Rows 8 to 20 of 29 under a grey band: zxing-cpp still finds the three finders, and no
    # level restores that much; a guess would be a wrong read.
    frame = _turn(_cover(_label(TEXT, "M"), (24, 72, 174, 78), 150), 5.0)
    found = [b for b in zxingcpp.read_barcodes(frame, return_errors=True)
             if b.format == zxingcpp.BarcodeFormat.QRCode]
    assert found and all(b.error is not None for b in found)
    for barcode in found:
        p = barcode.position
        corners = [(float(c.x), float(c.y))
                   for c in (p.top_left, p.top_right, p.bottom_right, p.bottom_left)]
        extra = cast(dict[str, Any], barcode.extra)
        assert erasure.repair(frame, corners, int(extra["Version"]), extra["ECLevel"],
                              extra["DataMask"]) is None
    assert decode_gray(frame, budget_s=None) == ([], None)


@pytest.mark.parametrize(("version", "level", "mask"), [
    (0, "M", 1), (41, "M", 1), (3, "X", 1), (3, "M", 8), (3, "M", -1),
])
def test_format_information_out_of_range_is_refused(version: int, level: str, mask: int) -> None:
    frame = _occluded()
    corners, _ = _corners(frame)
    assert erasure.repair(frame, corners, version, level, mask) is None


def test_corners_off_the_symbol_are_refused() -> None:
    # A grid laid over the wrong place does not sample the timing patterns back.
    frame = _occluded()
    assert erasure.repair(frame, [(0, 0), (60, 0), (60, 60), (0, 60)], 3, "M", 1) is None
    assert erasure.repair(np.full((200, 200), 128, np.uint8),
                          [(10, 10), (150, 10), (150, 150), (10, 150)], 3, "M", 1) is None


@pytest.mark.parametrize("index", [0, 7])
def test_a_turned_blurred_code_128_reads_upright(index: int) -> None:
    # GS1-128 labels of the corpus's seed 7 (no stage was chosen on it) at about 1.5 px a module,
    # turned and blurred: zxing-cpp alone finds nothing; turned upright and averaged along its
    # bars, the label reads.
    frame = list(generate(7, index + 1, ("code128",)))[index]
    assert zxingcpp.read_barcodes(frame.image) == []
    codes, stage = decode_gray(frame.image, budget_s=None)
    assert codes == [Code(str(frame.text), "CODE_128")]
    assert stage == "region_bars"


def test_micro_qr_without_error_correction_is_not_trusted() -> None:
    # M1 carries only error detection: any binarised noise can pass for one.
    m1 = zxingcpp.write_barcode_to_image(
        zxingcpp.create_barcode("12345", zxingcpp.BarcodeFormat.MicroQRCode), scale=6)
    assert [b.text for b in zxingcpp.read_barcodes(np.array(m1))] == ["12345"]
    assert decode_image(np.ascontiguousarray(np.array(m1), dtype=np.uint8)) == []
    m3 = zxingcpp.write_barcode_to_image(
        zxingcpp.create_barcode("HELLO123", zxingcpp.BarcodeFormat.MicroQRCode), scale=6)
    assert decode_image(np.ascontiguousarray(np.array(m3), dtype=np.uint8)) == [
        Code("HELLO123", "MICRO_QR_CODE")]


@pytest.mark.parametrize(("fmt", "unused", "ok"), [
    ("MICRO_QR_CODE", 0.0, False), ("MICRO_QR_CODE", None, False), ("MICRO_QR_CODE", 0.5, True),
    ("RMQR_CODE", 0.0, False), ("QR_CODE", 0.0, True), ("DATA_MATRIX", None, True),
])
def test_trusted(fmt: str, unused: float | None, ok: bool) -> None:
    assert trusted(Code("x", fmt, unused_ec=unused)) is ok
