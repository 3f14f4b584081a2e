"""The move table is the only list of states: the sidecar's OpenAPI document (from which the UI's
types are generated) and the UI's words for each state name exactly the table's states."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from schema.formats.workflow import ITEM_STATES, SESSION_STATES
from sidecar.app import create_app
from sidecar.settings import Settings

UI = Path(__file__).resolve().parents[1] / "tauri-app" / "src"

FIELDS = {
    "SessionPublic": SESSION_STATES,
    "InterruptedPublic": SESSION_STATES,
    "HistoryRowPublic": SESSION_STATES,
    "SessionItemPublic": ITEM_STATES,
    "ItemProgressPublic": ITEM_STATES,
}


@pytest.mark.parametrize(("model", "states"), FIELDS.items(), ids=FIELDS.keys())
def test_the_api_document_lists_the_move_tables_states(
    model: str, states: tuple[str, ...]
) -> None:
    doc = create_app(Settings(token="x", ui_dist=None)).openapi()
    assert doc["components"]["schemas"][model]["properties"]["status"]["enum"] == list(states)


def _record_keys(source: str, name: str) -> set[str]:
    body = re.search(rf"const {name}: Record<\w+, \w+> = \{{(.*?)\n\}};", source, re.S)
    assert body is not None, f"{name} is not in lib/inspection.ts"
    return set(re.findall(r"^\s*(\w+):", body.group(1), re.M))


@pytest.mark.parametrize(
    ("record", "prefix", "states"),
    [("SESSION_STATE_KEYS", "sstatus", SESSION_STATES),
     ("ITEM_STATE_KEYS", "istatus", ITEM_STATES)],
    ids=["session", "item"],
)
def test_the_ui_has_words_for_exactly_the_move_tables_states(
    record: str, prefix: str, states: tuple[str, ...]
) -> None:
    assert _record_keys((UI / "lib" / "inspection.ts").read_text(encoding="utf-8"), record) == set(
        states)
    for dictionary in ("ja.ts", "en.ts"):
        text = (UI / "i18n" / dictionary).read_text(encoding="utf-8")
        assert set(re.findall(rf"'{prefix}\.(\w+)':", text)) == set(states), dictionary
