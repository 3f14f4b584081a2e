"""An item's criteria in words (``schema.formats.criteria_text``), in both of the UI's languages,
for every judgment type and option the criteria parser knows — and the rule a judgment names
beside its verdict, which is the same English words."""

from __future__ import annotations

from typing import Any

import pytest

from schema.formats.criteria import describe, judge, parse_criteria
from schema.formats.criteria_text import criteria_texts

# criteria JSON → (English, Japanese): both name the pipelines' measurements in words and show no
# pattern, only what the text must name.
CASES: dict[str, tuple[dict[str, Any], str, str]] = {
    "threshold with a review band": (
        {"judgment_type": "THRESHOLD", "measurement": "p", "operator": "LT", "threshold": 0.5,
         "review_band": [0.3, 0.7]},
        "p < 0.5 · review band 0.3–0.7", "p < 0.5 · 要確認帯 0.3〜0.7"),
    "threshold by symbol": (
        {"judgment_type": "threshold", "measurement": "score", "operator": ">=", "threshold": 2},
        "score ≥ 2", "score ≥ 2"),
    "range": (
        {"judgment_type": "NUMERICAL", "measurement": "bore_mm", "min": 11.95, "max": 12.05,
         "unit": "mm"},
        "Bore diameter 11.95–12.05 mm", "穴径 11.95〜12.05 mm"),
    "nominal and tolerance": (
        {"judgment_type": "NUMERICAL", "measurement": "bore_mm", "nominal": 12.0,
         "tolerance": 0.05, "unit": "mm"},
        "Bore diameter 11.95–12.05 mm", "穴径 11.95〜12.05 mm"),
    "lower limit only": (
        {"judgment_type": "NUMERICAL", "measurement": "gap", "min": 0.2},
        "gap ≥ 0.2", "gap ≥ 0.2"),
    "upper limit only": (
        {"judgment_type": "NUMERICAL", "measurement": "gap", "max": 1.5, "unit": "mm"},
        "gap ≤ 1.5 mm", "gap ≤ 1.5 mm"),
    "categorical": (
        {"judgment_type": "CATEGORICAL", "measurement": "class", "allowed": ["ok_part", "rework"]},
        "class ∈ {ok_part, rework}", "class ∈ {ok_part, rework}"),
    "binary": (
        {"judgment_type": "BINARY", "measurement": "has_defect", "expected": False},
        "has_defect: no", "has_defect: いいえ"),
    "pattern": (
        {"judgment_type": "PATTERN", "measurement": "text", "pattern": "LOT [A-Z]{2}"},
        "Text read in the expected form", "読み取った文字が所定の書式"),
    "pattern naming a value, with a confidence floor": (
        {"judgment_type": "PATTERN", "measurement": "text", "pattern": "LOT (?P<value>\\S+)",
         "equals": "$target.batch_id", "confidence": "text_score", "min_confidence": 0.8},
        "Text read in the expected form, naming the lot number · review below confidence 0.8",
        "読み取った文字が所定の書式でロット番号と一致 · 信頼度 0.8 未満は要確認"),
}


@pytest.mark.parametrize(("criteria", "en", "ja"), CASES.values(), ids=CASES.keys())
def test_criteria_in_words(criteria: dict[str, Any], en: str, ja: str) -> None:
    assert criteria_texts(criteria) == {"en": en, "ja": ja}


@pytest.mark.parametrize(("criteria", "en", "ja"), CASES.values(), ids=CASES.keys())
def test_a_judgment_names_its_rule_in_the_same_words(
    criteria: dict[str, Any], en: str, ja: str
) -> None:
    # The rule alone: the line under the item adds the review band and the confidence floor.
    rule = en.split(" · ")[0]
    assert describe(parse_criteria(criteria)) == rule
    assert judge(criteria, {}).expected == rule


BROKEN = {
    "no judgment type": {"measurement": "p"},
    "unknown operator": {"judgment_type": "THRESHOLD", "measurement": "p", "operator": "ABOUT",
                         "threshold": 1},
    "band upside down": {"judgment_type": "THRESHOLD", "measurement": "p", "operator": "LT",
                         "threshold": 1, "review_band": [0.9, 0.1]},
}


@pytest.mark.parametrize("criteria", BROKEN.values(), ids=BROKEN.keys())
def test_criteria_the_parser_refuses_say_so_in_both_languages(criteria: dict[str, Any]) -> None:
    texts = criteria_texts(criteria)
    assert texts["en"].startswith("criteria cannot be read: ")
    assert texts["ja"].startswith("判定基準を読めません: ")
    # The parser's own reason, which names the key, is what the inspector reads.
    assert texts["en"].removeprefix("criteria cannot be read: ") == texts["ja"].removeprefix(
        "判定基準を読めません: ")
