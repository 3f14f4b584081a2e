"""An item's criteria in words, in the inspector's language: the line shown under each item.

Pure: it takes criteria parsed by the one parser both ends use, so what the tablet shows is what
it judges by. Japanese and English, like the UI; numbers as the master wrote them (``0.5``, not
``0.500``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from schema.errors import CriteriaInvalid
from schema.formats.criteria import OPERATOR_SYMBOLS, Criteria, parse_criteria

Lang = Literal["ja", "en"]
LANGS: tuple[Lang, ...] = ("ja", "en")

_TEXT: dict[Lang, dict[str, str]] = {
    "en": {
        "range": "{m} {low}–{high}{unit}",
        "at_least": "{m} ≥ {low}{unit}",
        "at_most": "{m} ≤ {high}{unit}",
        "binary": "{m} = {expected}",
        "pattern": "{m} matches {pattern}",
        "pattern_equals": "{m} matches {pattern} naming {equals}",
        "categorical": "{m} ∈ {{{allowed}}}",
        "review_band": "review band {low}–{high}",
        "min_confidence": "review below confidence {value}",
        "invalid": "criteria cannot be read: {message}",
    },
    "ja": {
        "range": "{m} {low}〜{high}{unit}",
        "at_least": "{m} ≥ {low}{unit}",
        "at_most": "{m} ≤ {high}{unit}",
        "binary": "{m} = {expected}",
        "pattern": "{m} が {pattern} に一致",
        "pattern_equals": "{m} が {pattern} に一致し {equals} を含む",
        "categorical": "{m} ∈ {{{allowed}}}",
        "review_band": "要確認帯 {low}〜{high}",
        "min_confidence": "信頼度 {value} 未満は要確認",
        "invalid": "判定基準を読めません: {message}",
    },
}


def _num(value: float | None) -> str:
    return f"{value:g}" if value is not None else "?"


def _rule(c: Criteria, say: Callable[..., str]) -> str:
    m = c.measurement
    if c.judgment_type == "THRESHOLD":
        symbol = OPERATOR_SYMBOLS.get(c.operator or "", c.operator or "?")
        return f"{m} {symbol} {_num(c.threshold)}"
    if c.judgment_type == "NUMERICAL":
        unit = f" {c.unit}" if c.unit else ""
        if c.min is not None and c.max is not None:
            return say("range", m=m, low=_num(c.min), high=_num(c.max), unit=unit)
        if c.min is not None:
            return say("at_least", m=m, low=_num(c.min), unit=unit)
        return say("at_most", m=m, high=_num(c.max), unit=unit)
    if c.judgment_type == "BINARY":
        return say("binary", m=m, expected=str(c.expected).lower())
    if c.judgment_type == "CATEGORICAL":
        return say("categorical", m=m, allowed=", ".join(c.allowed))
    pattern = c.pattern.pattern if c.pattern is not None else "?"
    if c.equals:
        return say("pattern_equals", m=m, pattern=pattern, equals=c.equals)
    return say("pattern", m=m, pattern=pattern)


def criteria_text(criteria: Criteria, lang: Lang) -> str:
    """One line saying how the item is judged, e.g. ``defect_probability < 0.5 · review band
    0.3–0.7``."""
    texts = _TEXT[lang]

    def say(key: str, **values: Any) -> str:
        return texts[key].format(**values)

    parts = [_rule(criteria, say)]
    band = criteria.review_band
    if band is not None:
        parts.append(say("review_band", low=_num(band.low), high=_num(band.high)))
    if criteria.min_confidence is not None:
        parts.append(say("min_confidence", value=_num(criteria.min_confidence)))
    return " · ".join(parts)


def criteria_texts(raw: Mapping[str, Any]) -> dict[Lang, str]:
    """An item master's criteria JSON in every language the UI speaks; criteria the parser
    refuses say why instead (the item's AI judgment would fail the same way)."""
    try:
        parsed = parse_criteria(raw)
    except CriteriaInvalid as exc:
        return {lang: _TEXT[lang]["invalid"].format(message=exc.message) for lang in LANGS}
    return {lang: criteria_text(parsed, lang) for lang in LANGS}
