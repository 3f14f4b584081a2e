"""Every error code the sidecar can answer has words in the UI (``tauri-app/src/i18n/errors.ts``),
so an inspector never reads "Something went wrong (some_code)" for a refusal the product knows.

The codes are read from the sidecar's source (each error class's ``code`` and every ``code=``
given when one is raised); the UI's from its table of codes, its special cases and the codes it
words as "AI not available". The few codes that never reach a screen are named here with why.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Codes that end a start or a command, never an answer the UI reads.
NOT_FOR_THE_UI = {
    "signing_key_invalid": "the login-signing key file cannot be read: the sidecar does not start",
    "store_in_use": "kensa db / key commands: another process holds the store",
    "store_plaintext": "kensa key rotate on a plaintext store",
    "users_from_server": "kensa user commands on a tablet whose users come from the server",
    "data_key_unavailable": "no data key at start: the sidecar exits 2 with the message",
    "provider_setting_invalid": "KENSA_ORT_PROVIDER set wrong: refused at start",
}


def sidecar_codes() -> set[str]:
    codes: set[str] = set()
    for path in (ROOT / "sidecar").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if (
                        isinstance(item, ast.Assign)
                        and [t.id for t in item.targets if isinstance(t, ast.Name)] == ["code"]
                        and isinstance(item.value, ast.Constant)
                        and isinstance(item.value.value, str)
                    ):
                        codes.add(item.value.value)
            if isinstance(node, ast.Call):
                for keyword in node.keywords:
                    if (
                        keyword.arg == "code"
                        and isinstance(keyword.value, ast.Constant)
                        and isinstance(keyword.value.value, str)
                    ):
                        codes.add(keyword.value.value)
    return codes


def ui_codes() -> set[str]:
    text = (ROOT / "tauri-app" / "src" / "i18n" / "errors.ts").read_text(encoding="utf-8")
    simple = text[text.index("const SIMPLE"):]
    simple = simple[: simple.index("};")]
    ai = text[text.index("AI_UNAVAILABLE_CODES"):]
    ai = ai[: ai.index("]);")]
    return (
        set(re.findall(r"^\s+([a-z_]+): 'err\.", simple, re.MULTILINE))
        | set(re.findall(r"case '([a-z_]+)':", text))
        | set(re.findall(r"'([a-z_]+)'", ai))
    )


def test_the_scan_finds_the_codes_it_should() -> None:
    found = sidecar_codes()
    # A class attribute, a keyword when raised, and a subclass's own.
    assert {"forbidden", "not_your_inspection", "qr_decode_failed", "photo_missing"} <= found
    assert {"bad_credentials", "items_open", "photo_unreadable"} <= ui_codes()


def test_every_code_the_sidecar_answers_has_words_in_the_ui() -> None:
    missing = sorted(sidecar_codes() - ui_codes() - set(NOT_FOR_THE_UI))
    assert missing == [], f"codes the UI would show raw: {missing}"


def test_the_codes_kept_from_the_ui_are_still_codes_of_the_sidecar() -> None:
    assert set(NOT_FOR_THE_UI) <= sidecar_codes()
