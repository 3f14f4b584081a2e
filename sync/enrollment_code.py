"""Enrollment codes and QR text, as both the server and the tablet read them.

A code is ten characters of an alphabet without 0/O, 1/I/L (typeable with gloves), shown as
``ABCDE-FGHJK``; the enrollment QR carries ``kensa://enroll?server=<url>&code=<code>``.
"""

from __future__ import annotations

import secrets
from urllib.parse import parse_qs, quote, urlsplit

from sync.errors import InvalidRequest

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 10
QR_SCHEME = "kensa://enroll"


def new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    return f"{raw[:5]}-{raw[5:]}"


def normalise(code: str) -> str:
    """What was typed, as the code was made: case, spaces and dashes do not matter."""
    text = "".join(ch for ch in code.upper() if ch not in " -\t")
    if len(text) != CODE_LENGTH or any(ch not in ALPHABET for ch in text):
        raise InvalidRequest(
            f"an enrollment code is {CODE_LENGTH} letters and digits (e.g. ABCDE-FGHJK)",
            code="enrollment_code_malformed",
        )
    return f"{text[:5]}-{text[5:]}"


def qr_text(server_url: str, code: str) -> str:
    return f"{QR_SCHEME}?server={quote(server_url, safe='')}&code={code}"


def parse_qr(text: str) -> tuple[str, str]:
    """(server URL, code) from an enrollment QR's text."""
    parts = urlsplit(text.strip())
    if f"{parts.scheme}://{parts.netloc}" != QR_SCHEME:
        raise InvalidRequest("not a kensa enrollment QR", code="not_enrollment_qr")
    query = parse_qs(parts.query)
    server, code = query.get("server", [""])[0], query.get("code", [""])[0]
    if not server or not code:
        raise InvalidRequest("the enrollment QR lacks its server or code", code="not_enrollment_qr")
    return server, normalise(code)
