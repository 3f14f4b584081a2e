"""sidecar.qr.decode on real photos, generated Japanese codes, and things that are not images."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
import zxingcpp

from sidecar.errors import ImageInvalid
from sidecar.qr import zbar
from sidecar.qr.decode import Code, decode_image
from sidecar.qr.payload import parse_payload

DATA = Path(os.environ.get("KENSA_QR_DATA")
            or Path(__file__).resolve().parents[1].parent / "shared/data/qr-zxing")


def expected_text(name: str) -> str:
    return normalise((DATA / name).with_suffix(".txt").read_text(encoding="utf-8"))


def normalise(text: str) -> str:
    return text.replace("\r\n", "\n")


def texts(codes: list[Code]) -> list[str]:
    return [normalise(code.text) for code in codes]


def qr_image(text: str, scale: int = 4) -> npt.NDArray[np.uint8]:
    """A clean, grey QR code with quiet zone, made by zxing-cpp's writer (a runtime dependency)."""
    barcode = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode)
    return np.ascontiguousarray(np.array(zxingcpp.write_barcode_to_image(barcode, scale=scale)))


def png(image: npt.NDArray[np.uint8]) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize("name", [
    "qrcode-1/1.png",
    "qrcode-3/01.png",
    "qrcode-2/17.png",  # Shift_JIS half-width katakana in byte mode (ZBar's own guess garbles it)
    "qrcode-2/30.png",  # kanji
    "qrcode-2/33.png",  # control characters, which zxing-cpp's default text mode rewrites
    "qrcode-2/28.png",  # print on a rice cracker: zxing-cpp misses it, the ZBar stage reads it
    "qrcode-2/12.png",  # photo-textured modules: only ZBar on the half-size frame reads it
])
def test_real_photos_decode_to_their_text(name: str) -> None:
    assert expected_text(name) in texts(decode_image((DATA / name).read_bytes()))


@pytest.mark.parametrize("rotation", [cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_180,
                                      cv2.ROTATE_90_COUNTERCLOCKWISE])
@pytest.mark.parametrize("name", ["qrcode-1/5.png", "qrcode-2/28.png"])
def test_rotated_frames_decode(name: str, rotation: int) -> None:
    image = cv2.imread(str(DATA / name), cv2.IMREAD_COLOR)
    assert image is not None
    frame = cv2.rotate(image, rotation)
    assert expected_text(name) in texts(decode_image(frame))  # a non-contiguous BGR array


def test_result_is_frozen_code_with_format() -> None:
    codes = decode_image(qr_image("BRK-100_A12-3456_20261127T0800"))
    assert codes == [Code("BRK-100_A12-3456_20261127T0800", "QR_CODE")]
    with pytest.raises(AttributeError):
        codes[0].text = "x"  # type: ignore[misc]


def test_every_code_in_the_frame_is_returned_once() -> None:
    a, b = qr_image("BRK-100_A12-3456_20261127T0800"), qr_image("BRK-200_B7_20261127T0900")
    frame = np.hstack([a, b, a])
    assert sorted(c.text for c in decode_image(frame)) == [
        "BRK-100_A12-3456_20261127T0800", "BRK-200_B7_20261127T0900"]


# --- Japanese text ---------------------------------------------------------------------------

KANJI = "検査工程品質管"


def test_generated_code_is_in_kanji_mode() -> None:
    # 7 double-byte characters take 124 bits in byte mode but 103 in Kanji mode; a version-1
    # symbol at level Q holds 104, so a 21-module 1-Q symbol can only be Kanji mode.
    barcode = zxingcpp.create_barcode(KANJI, zxingcpp.BarcodeFormat.QRCode)
    bare = np.array(zxingcpp.write_barcode_to_image(barcode, add_quiet_zones=False))
    assert bare.shape == (21, 21) and barcode.ec_level == "Q"


@pytest.mark.parametrize("text", [
    KANJI,                                    # Kanji mode
    "ﾃﾞｻﾞｲﾝQR",                               # Shift_JIS half-width katakana, byte mode
    "検査ロット BRK-100",                      # Shift_JIS double-byte and ASCII, byte mode
    '{"product_id": "ブレーキ-100", "batch_id": "第3ロット"}',
])
def test_shift_jis_and_kanji_text(text: str) -> None:
    image = qr_image(text)
    assert texts(decode_image(png(image))) == [text]
    # The ZBar fallback must read the same text: it is what answers when zxing-cpp cannot.
    assert zbar.decode_qr(image) == [text]


def test_japanese_json_label_parses_end_to_end() -> None:
    text = '{"product_id": "ブレーキ-100", "batch_id": "第3ロット", "serial": "0098172"}'
    [code] = decode_image(png(qr_image(text)))
    unit = parse_payload(code.text)
    assert (unit.product_code, unit.batch_id) == ("ブレーキ-100", "第3ロット")
    assert unit.serial == "0098172"


@pytest.mark.parametrize(("raw", "text"), [
    (b"BRK-100", "BRK-100"),
    ("ブレーキ".encode(), "ブレーキ"),
    ("ブレーキ".encode("shift_jis"), "ブレーキ"),
    ("ﾃﾞｻﾞｲﾝ".encode("shift_jis"), "ﾃﾞｻﾞｲﾝ"),
    ("①".encode("cp932"), "①"),  # NEC extension that Windows label software emits
    (b"Gr\xfc\xdf \x81", "Grü\xdf \x81"),  # neither UTF-8 nor Shift_JIS: ISO-8859-1
])
def test_zbar_bytes_to_text(raw: bytes, text: str) -> None:
    assert zbar.bytes_to_text(raw) == text


# --- image forms -----------------------------------------------------------------------------


def test_transparent_png_is_composited_on_white() -> None:
    # Black modules on a transparent background whose hidden colour is black as well.
    gray = qr_image("BRK-100_A12-3456_20261127T0800")
    bgra = np.zeros((*gray.shape, 4), dtype=np.uint8)
    bgra[:, :, 3] = np.where(gray < 128, 255, 0)
    assert texts(decode_image(png(bgra))) == ["BRK-100_A12-3456_20261127T0800"]
    assert texts(decode_image(bgra)) == ["BRK-100_A12-3456_20261127T0800"]


def test_sixteen_bit_and_single_channel_arrays() -> None:
    gray = qr_image("BRK-100_A12-3456_20261127T0800")
    assert texts(decode_image(gray.astype(np.uint16) * 257)) == ["BRK-100_A12-3456_20261127T0800"]
    assert texts(decode_image(gray[:, :, None])) == ["BRK-100_A12-3456_20261127T0800"]


@pytest.mark.parametrize("image", [
    np.full((480, 640), 255, dtype=np.uint8),
    np.zeros((480, 640, 3), dtype=np.uint8),
    np.full((1, 1), 128, dtype=np.uint8),
    np.full((2, 3000), 255, dtype=np.uint8),
    np.full((3000, 1), 0, dtype=np.uint8),
], ids=["white", "black-bgr", "one-pixel", "wide-strip", "tall-strip"])
def test_image_without_code_gives_empty_list(image: npt.NDArray[np.uint8]) -> None:
    assert decode_image(image) == []
    assert decode_image(png(image)) == []


def test_photo_the_set_labels_differently_reads_as_its_twin() -> None:
    # Dark modules filled with an aerial photo: the chain reads it with 83 % of its error
    # correction unused, and it says what its twin qrcode-2/12 says ("photography"), where the
    # set's text file says "photograph". A Reed-Solomon read with so little corrected is not a
    # misread; the benchmark lists it, the one frame of the set where text file and symbol differ.
    [code] = decode_image((DATA / "qrcode-2/13.png").read_bytes())
    assert code.text == expected_text("qrcode-2/12.png")
    assert code.unused_ec is not None and code.unused_ec > 0.5


# --- not images ------------------------------------------------------------------------------


def test_truncated_png_is_invalid() -> None:
    data = (DATA / "qrcode-1/1.png").read_bytes()
    with pytest.raises(ImageInvalid):
        decode_image(data[: len(data) // 2])


def test_truncated_jpeg_is_invalid() -> None:
    image = cv2.imread(str(DATA / "qrcode-1/1.png"))
    assert image is not None
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    with pytest.raises(ImageInvalid):
        decode_image(buf.tobytes()[:1000])


@pytest.mark.parametrize("data", [
    b"",
    np.random.default_rng(7).bytes(4096),
    b"\x89PNG\r\n\x1a\n",
    b"BRK-100_A12-3456_20261127T0800",
    b"GIF89a" + bytes(64),
], ids=["empty", "random", "png-signature-only", "text", "gif-header-only"])
def test_bytes_that_are_not_an_image_are_invalid(data: bytes) -> None:
    with pytest.raises(ImageInvalid) as caught:
        decode_image(data)
    assert caught.value.code == "image_invalid"


@pytest.mark.parametrize("array", [
    np.zeros((0, 0), dtype=np.uint8),
    np.zeros((10, 10, 5), dtype=np.uint8),
    np.zeros((2, 10, 10, 3), dtype=np.uint8),
    np.zeros((10, 10), dtype=np.float64),
    np.zeros(100, dtype=np.uint8),
], ids=["empty", "five-channels", "4d", "float", "1d"])
def test_arrays_that_are_not_an_image_are_invalid(array: npt.NDArray[np.generic]) -> None:
    with pytest.raises(ImageInvalid):
        decode_image(array)


def test_other_types_are_invalid() -> None:
    with pytest.raises(ImageInvalid):
        decode_image("qrcode.png")  # type: ignore[arg-type]
