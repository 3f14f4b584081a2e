"""An item's criteria in words, in Japanese and English: the one wording of each rule.

The line under each item (the API's ``criteria_text``) and the rule a judgment names beside its
verdict (``Judgment.expected``, ``schema.formats.criteria.describe``: the English rule alone)
both come from the table here, so what the tablet shows is what it judges by, in the words it
gives its verdicts in. Numbers as the master wrote them (``0.5``, not ``0.500``).

Pure and shared like the parser: no FastAPI, no database session, no numpy. It reads parsed
criteria by attribute only, so ``criteria.py`` (whose judgment names the rule) can import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from schema.errors import CriteriaInvalid

if TYPE_CHECKING:
    from schema.formats.criteria import Criteria

Lang = Literal["ja", "en"]
LANGS: tuple[Lang, ...] = ("ja", "en")

# How each comparison operator is written, in every language and in the UI.
OPERATOR_SYMBOLS = {"LT": "<", "LE": "≤", "GT": ">", "GE": "≥", "EQ": "=", "NE": "≠"}

_TEXT: dict[Lang, dict[str, str]] = {
    "en": {
        "threshold": "{m} {op} {threshold}",
        "range": "{m} {low}–{high}{unit}",
        "at_least": "{m} ≥ {low}{unit}",
        "at_most": "{m} ≤ {high}{unit}",
        "binary": "{m}: {expected}",
        "pattern": "{m} in the expected form",
        "pattern_equals": "{m} in the expected form, naming the {equals}",
        "categorical": "{m} ∈ {{{allowed}}}",
        "review_band": "review band {low}–{high}",
        "min_confidence": "review below confidence {value}",
        "invalid": "criteria cannot be read: {message}",
    },
    "ja": {
        "threshold": "{m} {op} {threshold}",
        "range": "{m} {low}〜{high}{unit}",
        "at_least": "{m} ≥ {low}{unit}",
        "at_most": "{m} ≤ {high}{unit}",
        "binary": "{m}: {expected}",
        "pattern": "{m}が所定の書式",
        "pattern_equals": "{m}が所定の書式で{equals}と一致",
        "categorical": "{m} ∈ {{{allowed}}}",
        "review_band": "要確認帯 {low}〜{high}",
        "min_confidence": "信頼度 {value} 未満は要確認",
        "invalid": "判定基準を読めません: {message}",
    },
}


# What the pipelines measure, in words: no line names a measurement by its identifier (an item
# judged by a measurement not listed here shows the identifier). The UI's dictionaries name
# them alike (``measure.*``, held to these by the tests).
MEASUREMENT_NAMES_JA: dict[str, str] = {
    "defect_probability": "不良の確率",
    "label": "分類",
    "anomaly_score": "異常度",
    "anomaly_area": "異常面積",
    "anomaly_peak": "異常度の最大値",
    "anomaly_bbox": "異常の位置",
    "text": "読み取った文字",
    "text_score": "文字の確からしさ",
    "text_lines": "行数",
    "bore_mm": "穴径",
    "bore_found": "穴の検出",
    "bore_roundness": "真円度",
    "ok": "作動",
    "confidence": "信頼度",
}

MEASUREMENT_NAMES_EN: dict[str, str] = {
    "defect_probability": "Defect probability",
    "label": "Class",
    "anomaly_score": "Anomaly score",
    "anomaly_area": "Anomaly area",
    "anomaly_peak": "Anomaly peak",
    "anomaly_bbox": "Anomaly position",
    "text": "Text read",
    "text_score": "Text certainty",
    "text_lines": "Lines",
    "bore_mm": "Bore diameter",
    "bore_found": "Bore found",
    "bore_roundness": "Roundness",
    "ok": "Operation",
    "confidence": "Confidence",
}
MEASUREMENT_NAMES: dict[Lang, dict[str, str]] = {"ja": MEASUREMENT_NAMES_JA,
                                                 "en": MEASUREMENT_NAMES_EN}

# The values of the inspection an item's criteria may refer to (``equals``).
CONTEXT_NAMES: dict[Lang, dict[str, str]] = {
    "ja": {"$target.batch_id": "ロット番号", "$target.serial": "製造番号",
           "$target.product_id": "製品番号"},
    "en": {"$target.batch_id": "lot number", "$target.serial": "serial number",
           "$target.product_id": "product number"},
}

_YES_NO: dict[Lang, dict[bool, str]] = {"ja": {True: "はい", False: "いいえ"},
                                        "en": {True: "yes", False: "no"}}


def measurement_name(name: str, lang: Lang) -> str:
    """A measurement as the inspector reads it, or its identifier where it has no words."""
    return MEASUREMENT_NAMES[lang].get(name, name)


def number(value: float | None) -> str:
    """A limit as the master wrote it: ``0.5``, ``12``, ``1e-06``."""
    return f"{value:g}" if value is not None else "?"


def _say(lang: Lang, key: str, **values: Any) -> str:
    return _TEXT[lang][key].format(**values)


def rule_text(c: Criteria, lang: Lang) -> str:
    """The rule alone, e.g. ``Defect probability < 0.5`` or ``穴径 11.95〜12.05 mm``."""
    m = measurement_name(c.measurement, lang)
    if c.judgment_type == "THRESHOLD":
        op = OPERATOR_SYMBOLS.get(c.operator or "", c.operator or "?")
        return _say(lang, "threshold", m=m, op=op, threshold=number(c.threshold))
    if c.judgment_type == "NUMERICAL":
        unit = f" {c.unit}" if c.unit else ""
        if c.min is not None and c.max is not None:
            return _say(lang, "range", m=m, low=number(c.min), high=number(c.max), unit=unit)
        if c.min is not None:
            return _say(lang, "at_least", m=m, low=number(c.min), unit=unit)
        return _say(lang, "at_most", m=m, high=number(c.max), unit=unit)
    if c.judgment_type == "BINARY":
        return _say(lang, "binary", m=m, expected=_YES_NO[lang][bool(c.expected)])
    if c.judgment_type == "CATEGORICAL":
        return _say(lang, "categorical", m=m, allowed=", ".join(c.allowed))
    pattern = c.pattern.pattern if c.pattern is not None else "?"
    if c.equals:
        equals = CONTEXT_NAMES[lang].get(c.equals, c.equals)
        return _say(lang, "pattern_equals", m=m, pattern=pattern, equals=equals)
    return _say(lang, "pattern", m=m, pattern=pattern)


def criteria_text(c: Criteria, lang: Lang) -> str:
    """One line saying how the item is judged: the rule, then its review band and confidence
    floor, e.g. ``defect_probability < 0.5 · review band 0.3–0.7``."""
    parts = [rule_text(c, lang)]
    band = c.review_band
    if band is not None:
        parts.append(_say(lang, "review_band", low=number(band.low), high=number(band.high)))
    if c.min_confidence is not None:
        parts.append(_say(lang, "min_confidence", value=number(c.min_confidence)))
    return " · ".join(parts)


def criteria_texts(raw: Mapping[str, Any]) -> dict[Lang, str]:
    """An item master's criteria JSON in every language the UI speaks; criteria the parser
    refuses say why instead (the item's AI judgment would fail the same way)."""
    # Imported here: the parser's module imports this one for the words its judgment uses.
    from schema.formats.criteria import parse_criteria

    try:
        parsed = parse_criteria(raw)
    except CriteriaInvalid as exc:
        return {lang: _say(lang, "invalid", message=exc.message) for lang in LANGS}
    return {lang: criteria_text(parsed, lang) for lang in LANGS}
