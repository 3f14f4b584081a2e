"""ZBar (through pyzbar's ctypes bindings) in binary mode, with our own choice of text encoding.

``pyzbar.decode`` returns the bytes of ZBar's own text conversion, which guesses the encoding of
byte segments without an ECI and gets Shift_JIS wrong: ``ﾃﾞｻﾞｲﾝQR`` comes back as ``蹬靼翌QR``,
``測試`` as ``皜祈岫``. ``ZBAR_CFG_BINARY`` makes ZBar hand back the raw segment bytes (Kanji-mode
segments as Shift_JIS) and :func:`bytes_to_text` decodes them; on the 388 test frames ZBar then
reads 369 texts right where ``pyzbar.decode`` gets 333. pyzbar's ``decode`` cannot set that
option, hence this module.
"""

from __future__ import annotations

import logging
from ctypes import c_void_p, string_at
from typing import Any

import numpy as np

from sidecar.qr.image import Gray

log = logging.getLogger(__name__)

try:
    from pyzbar import wrapper as _zbar
except ImportError as exc:  # libzbar missing: zxing-cpp still works, so degrade, loudly
    log.warning("ZBar is unavailable (%s); QR decoding falls back to zxing-cpp only", exc)
    _zbar = None

# zbar.h's zbar_config_e: ZBAR_CFG_BINARY follows ZBAR_CFG_ASCII (3) since ZBar 0.23; pyzbar's
# ZBarConfig enum predates it. Older ZBar rejects the setting and keeps converting to UTF-8 text,
# which bytes_to_text also reads correctly.
_CFG_BINARY = 4
# ZBar's fourcc for 8-bit grey ("Y800").
_FOURCC_Y800 = 808466521

AVAILABLE = _zbar is not None


def decode_qr(gray: Gray) -> list[str]:
    """Texts of the QR codes ZBar finds in a grey frame, in ZBar's order."""
    if _zbar is None:
        return []
    # ZBar reads the frame in place: it must be one contiguous block, alive until the scan ends.
    gray = np.ascontiguousarray(gray)
    height, width = gray.shape
    scanner = _zbar.zbar_image_scanner_create()
    if not scanner:
        raise MemoryError("zbar_image_scanner_create failed")
    try:
        _configure(scanner)
        image = _zbar.zbar_image_create()
        if not image:
            raise MemoryError("zbar_image_create failed")
        try:
            _zbar.zbar_image_set_format(image, _FOURCC_Y800)
            _zbar.zbar_image_set_size(image, width, height)
            _zbar.zbar_image_set_data(image, gray.ctypes.data_as(c_void_p), gray.nbytes, None)
            if _zbar.zbar_scan_image(scanner, image) <= 0:
                return []
            return [bytes_to_text(raw) for raw in _symbol_data(image)]
        finally:
            _zbar.zbar_image_destroy(image)
    finally:
        _zbar.zbar_image_scanner_destroy(scanner)


def _configure(scanner: Any) -> None:
    assert _zbar is not None
    qr = _zbar.ZBarSymbol.QRCODE
    enable = _zbar.ZBarConfig.CFG_ENABLE
    # Symbol type 0 addresses every symbology: off, then QR back on. Linear barcodes are not part
    # of the workflow and scanning for them only costs time (and finds stripes in textures).
    _zbar.zbar_image_scanner_set_config(scanner, 0, enable, 0)
    _zbar.zbar_image_scanner_set_config(scanner, qr, enable, 1)
    _zbar.zbar_image_scanner_set_config(scanner, qr, _CFG_BINARY, 1)


def _symbol_data(image: Any) -> list[bytes]:
    assert _zbar is not None
    out: list[bytes] = []
    symbol = _zbar.zbar_image_first_symbol(image)
    while symbol:
        length = _zbar.zbar_symbol_get_data_length(symbol)
        out.append(bytes(string_at(_zbar.zbar_symbol_get_data(symbol), length)))
        symbol = _zbar.zbar_symbol_next(symbol)
    return out


def bytes_to_text(raw: bytes) -> str:
    """Decode QR payload bytes whose encoding the symbol did not declare.

    Order matters: valid UTF-8 with non-ASCII bytes is almost never anything else, so it goes first;
    Japanese labels come next (cp932 is Shift_JIS with the vendor extensions that Windows label
    printers emit; Kanji-mode segments are Shift_JIS by definition); ISO-8859-1, the QR standard's
    default, takes whatever is left and never fails.
    """
    for encoding in ("utf-8", "cp932"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")
