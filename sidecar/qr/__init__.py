"""QR codes: reading them from images (:mod:`.decode`) and parsing their text (:mod:`.payload`).

The decoder pulls in OpenCV, zxing-cpp and ZBar, so it is loaded on first use: importing this
package (which ``kensa --help`` does through :mod:`.cli`) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sidecar.qr.payload import ScannedUnit, parse_payload

if TYPE_CHECKING:
    from sidecar.qr.decode import Code, decode_image

__all__ = ["Code", "ScannedUnit", "decode_image", "parse_payload"]


def __getattr__(name: str) -> Any:
    if name in ("Code", "decode_image"):
        from sidecar.qr import decode

        return getattr(decode, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
