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
from ctypes import c_int, c_uint, c_void_p, string_at
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
    return [text for text, _, _ in decode(gray, code128=False)]


def decode(gray: Gray, *, code128: bool) -> list[tuple[str, str, bool]]:
    """``(text, symbology, gs1)`` of the QR codes (and with ``code128`` the Code 128 symbols)
    ZBar finds in a grey frame, in ZBar's order. ``gs1`` says the symbol began with FNC1: its
    text is then a bare GS1 element string (variable-length elements ended by ASCII 29)."""
    if _zbar is None:
        return []
    # ZBar reads the frame in place: it must be one contiguous block, alive until the scan ends.
    gray = np.ascontiguousarray(gray)
    height, width = gray.shape
    scanner = _zbar.zbar_image_scanner_create()
    if not scanner:
        raise MemoryError("zbar_image_scanner_create failed")
    try:
        _configure(scanner, code128)
        image = _zbar.zbar_image_create()
        if not image:
            raise MemoryError("zbar_image_create failed")
        try:
            _zbar.zbar_image_set_format(image, _FOURCC_Y800)
            _zbar.zbar_image_set_size(image, width, height)
            _zbar.zbar_image_set_data(image, gray.ctypes.data_as(c_void_p), gray.nbytes, None)
            if _zbar.zbar_scan_image(scanner, image) <= 0:
                return []
            return [(bytes_to_text(raw), kind, gs1) for raw, kind, gs1 in _symbol_data(image)]
        finally:
            _zbar.zbar_image_destroy(image)
    finally:
        _zbar.zbar_image_scanner_destroy(scanner)


def _configure(scanner: Any, code128: bool) -> None:
    assert _zbar is not None
    qr = _zbar.ZBarSymbol.QRCODE
    enable = _zbar.ZBarConfig.CFG_ENABLE
    # Symbol type 0 addresses every symbology: off, then QR (and Code 128) back on. The other
    # linear symbologies are not on the product's labels and scanning for them only costs time
    # (and finds stripes in textures).
    _zbar.zbar_image_scanner_set_config(scanner, 0, enable, 0)
    _zbar.zbar_image_scanner_set_config(scanner, qr, enable, 1)
    _zbar.zbar_image_scanner_set_config(scanner, qr, _CFG_BINARY, 1)
    if code128:
        _zbar.zbar_image_scanner_set_config(scanner, _zbar.ZBarSymbol.CODE128, enable, 1)


# zbar.h: the symbol's type and modifiers, which pyzbar's wrapper does not bind.
_MOD_GS1 = 1 << 0
_get_type = _get_modifiers = None
if _zbar is not None:
    _get_type = _zbar.zbar_function("zbar_symbol_get_type", c_int,
                                    _zbar.POINTER(_zbar.zbar_symbol))
    _get_modifiers = _zbar.zbar_function("zbar_symbol_get_modifiers", c_uint,
                                         _zbar.POINTER(_zbar.zbar_symbol))


def _symbol_data(image: Any) -> list[tuple[bytes, str, bool]]:
    assert _zbar is not None and _get_type is not None and _get_modifiers is not None
    out: list[tuple[bytes, str, bool]] = []
    symbol = _zbar.zbar_image_first_symbol(image)
    while symbol:
        length = _zbar.zbar_symbol_get_data_length(symbol)
        kind = "CODE_128" if _get_type(symbol) == _zbar.ZBarSymbol.CODE128 else "QR_CODE"
        gs1 = bool(_get_modifiers(symbol) & _MOD_GS1)
        out.append((bytes(string_at(_zbar.zbar_symbol_get_data(symbol), length)), kind, gs1))
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
