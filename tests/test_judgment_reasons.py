"""A judgment's reason as data (a code and its values) that the UI words in its own language,
and the UI having those words: every reason code, every measurement the Japanese criteria line
names, in both dictionaries of the web UI."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from schema.formats.criteria import REASON_CODES, judge
from schema.formats.criteria_text import MEASUREMENT_NAMES, criteria_texts

REPO = Path(__file__).resolve().parents[1]
I18N = REPO / "tauri-app" / "src" / "i18n"

SCRATCH = {"judgment_type": "THRESHOLD", "measurement": "defect_probability", "operator": "LT",
           "threshold": 0.5, "review_band": [0.3, 0.7]}
BORE = {"judgment_type": "NUMERICAL", "measurement": "bore_mm", "min": 11.95, "max": 12.05,
        "unit": "mm"}
MARKING = {"judgment_type": "PATTERN", "measurement": "text",
           "pattern": "LOT [A-Z][0-9]{2}-[0-9]{4}", "equals": "$target.batch_id",
           "confidence": "text_score", "min_confidence": 0.5}
PISTON = {"judgment_type": "BINARY", "measurement": "ok", "expected": True}
KIND = {"judgment_type": "CATEGORICAL", "measurement": "label", "allowed": ["good"]}
TARGET = {"target": {"batch_id": "A12-3456"}}

# (criteria, measurements, context) → (code, the values the reason names)
CASES: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None, str,
                       dict[str, Any]]] = {
    "threshold met": (SCRATCH, {"defect_probability": 0.1}, None, "threshold_met",
                      {"measurement": "defect_probability", "value": 0.1}),
    "threshold failed": (SCRATCH, {"defect_probability": 1}, None, "threshold_failed",
                         {"measurement": "defect_probability", "value": 1.0}),
    "review band": (SCRATCH, {"defect_probability": 0.4}, None, "in_review_band",
                    {"measurement": "defect_probability", "value": 0.4, "low": 0.3, "high": 0.7,
                     "rule_result": "OK"}),
    "within": (BORE, {"bore_mm": 12.0}, None, "within_range",
               {"measurement": "bore_mm", "value": 12.0, "unit": "mm"}),
    "below": (BORE, {"bore_mm": 11.9}, None, "below_minimum", {"value": 11.9}),
    "above": (BORE, {"bore_mm": 12.1}, None, "above_maximum", {"value": 12.1}),
    "not a number": (BORE, {"bore_mm": "wide"}, None, "not_a_number",
                     {"measurement": "bore_mm"}),
    "no value": (BORE, {}, None, "no_value", {"measurement": "bore_mm"}),
    "not measured": (BORE, {"bore_mm": None}, None, "not_measured", {"measurement": "bore_mm"}),
    "names the lot": (MARKING, {"text": "LOT A12-3456", "text_score": 0.9}, TARGET,
                      "pattern_names", {"text": "LOT A12-3456", "expected": "A12-3456",
                                        "reference": "$target.batch_id"}),
    "another lot": (MARKING, {"text": "LOT B12-3456", "text_score": 0.9}, TARGET,
                    "pattern_not_names", {"expected": "A12-3456"}),
    "no lot at all": (MARKING, {"text": "smudge", "text_score": 0.9}, TARGET,
                      "pattern_not_matched", {"text": "smudge"}),
    "no lot to compare": (MARKING, {"text": "LOT A12-3456", "text_score": 0.9}, None,
                          "context_missing", {"reference": "$target.batch_id"}),
    "unsure reading": (MARKING, {"text": "LOT A12-3456", "text_score": 0.2}, TARGET,
                       "low_confidence", {"confidence": 0.2, "minimum": 0.5,
                                          "rule_result": "OK"}),
    "any lot": ({**MARKING, "equals": None, "min_confidence": None}, {"text": "LOT A12-3456"},
                None, "pattern_matched", {"text": "LOT A12-3456"}),
    "not text": (MARKING, {"text": 7}, TARGET, "not_text", {"measurement": "text"}),
    "works": (PISTON, {"ok": True}, None, "binary_expected", {"value": True, "expected": True}),
    "stuck": (PISTON, {"ok": False}, None, "binary_unexpected", {"value": False}),
    "neither": (PISTON, {"ok": "maybe"}, None, "not_a_boolean", {"measurement": "ok"}),
    "allowed class": (KIND, {"label": "good"}, None, "category_allowed", {"value": "good"}),
    "other class": (KIND, {"label": "bad"}, None, "category_not_allowed",
                    {"value": "bad", "allowed": ["good"]}),
    "no class": (KIND, {"label": 0.5}, None, "not_a_label", {"measurement": "label"}),
}


@pytest.mark.parametrize(("criteria", "measured", "context", "code", "params"), CASES.values(),
                         ids=CASES.keys())
def test_a_judgment_gives_its_reason_as_a_code_and_values(
    criteria: dict[str, Any], measured: dict[str, Any], context: dict[str, Any] | None,
    code: str, params: dict[str, Any],
) -> None:
    j = judge(criteria, measured, context)
    assert j.reason_code == code
    assert {k: j.reason_params.get(k) for k in params} == params
    # What it travels as: JSON, with the code and values beside the English sentence.
    stored = json.loads(json.dumps(j.to_dict()))
    assert stored["reason_code"] == code and stored["reason"] == j.reason


def test_every_reason_code_is_reached() -> None:
    assert {case[3] for case in CASES.values()} == set(REASON_CODES)


def test_a_rule_the_reason_names_comes_in_both_languages() -> None:
    j = judge(BORE, {"bore_mm": 11.9})
    assert j.reason_params["rule"] == {"ja": "穴径 11.95〜12.05 mm",
                                       "en": "Bore diameter 11.95–12.05 mm"}


def _keys(lang: str) -> dict[str, str]:
    text = (I18N / f"{lang}.ts").read_text(encoding="utf-8")
    return dict(re.findall(r"^\s*'([\w.]+)': '((?:[^'\\]|\\.)*)',", text, flags=re.M))


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_the_ui_has_words_for_every_reason_code(lang: str) -> None:
    keys = _keys(lang)
    assert [c for c in REASON_CODES if f"reason.{c}" not in keys] == []


def test_the_ui_names_measurements_as_the_criteria_line_does() -> None:
    # One name for a measurement wherever the inspector reads it: the criteria line under the
    # item (the sidecar's words) and the AI card's table and reason (the UI's).
    for lang in ("ja", "en"):
        keys = _keys(lang)
        for name, words in MEASUREMENT_NAMES[lang].items():
            assert keys.get(f"measure.{name}") == words, (lang, name)


def test_the_criteria_lines_show_no_identifier_or_pattern() -> None:
    for criteria in (SCRATCH, BORE, MARKING, PISTON):
        texts = criteria_texts(criteria)
        assert re.search(r"[A-Za-z_$\[\]{}]", texts["ja"].replace("mm", "")) is None, texts
        assert re.search(r"[_$\[\]{}]|[a-z][A-Z]", texts["en"]) is None, texts
