"""The criteria format, its parser and the judgment: measurements → OK / NG / PENDING_REVIEW.

Shared by both ends: the server refuses at publish exactly the criteria the tablet would refuse
at judgment, because both call :func:`parse_criteria` here. A pure function of (criteria,
measurements, context): no clock, no I/O, so it is table-tested and gives the same verdict on the
tablet, on a LAN server and when the server re-checks a synced result.

Criteria (an item's ``criteria`` JSON)::

    {"judgment_type": "THRESHOLD", "measurement": "defect_probability", "operator": "LT",
     "threshold": 0.5, "review_band": [0.3, 0.7]}
    {"judgment_type": "NUMERICAL", "measurement": "bore_mm", "min": 11.95, "max": 12.05,
     "unit": "mm"}
    {"judgment_type": "NUMERICAL", "measurement": "bore_mm", "nominal": 12.0, "tolerance": 0.05}
    {"judgment_type": "CATEGORICAL", "measurement": "class", "allowed": ["ok_part"]}
    {"judgment_type": "BINARY", "measurement": "has_defect", "expected": false}
    {"judgment_type": "PATTERN", "measurement": "text", "pattern": "LOT [A-Z][0-9]{2}-[0-9]{4}",
     "equals": "$target.batch_id"}

Common optional keys:
- ``review_band``: ``[low, high]`` or ``{"low", "high", "measurement"}`` — a value inside it (bounds
  included) sends the item to a person (PENDING_REVIEW) whatever the rule says; by default it reads
  the criterion's own measurement;
- ``confidence``: the name of a measurement holding the model's own confidence (e.g.
  ``text_score``), and ``min_confidence`` (which needs it): below it, PENDING_REVIEW. That
  measurement, when it is a number in [0, 1], is the judgment's confidence; without one the
  judgment has none (None) — a rule does not make one up from how far a value sits from a limit.

Order of decisions: no usable value → PENDING_REVIEW; the rule → OK/NG; inside the review band →
PENDING_REVIEW; confidence under ``min_confidence`` → PENDING_REVIEW.

NUMERICAL: limits are ``min``/``max`` (either may be left out for a one-sided limit) or ``nominal``
with a ``tolerance`` (a number for ±, or ``[minus, plus]``); giving both forms is an error, since it
is ambiguous which one the drawing meant. ``unit`` (the limits' unit) is compared with the
measurement's unit from the pipeline; lengths are converted (µm, mm, cm, m, in), anything else must
match exactly.

PATTERN: the text (whitespace collapsed) must contain a match of ``pattern`` that is not part of a
longer word or number (``full_match``: the whole text; ``ignore_case``). With ``equals`` (a
literal, or ``$target.<key>`` from the context) the match must also name that value: the pattern's
group ``value`` or its first group if it has groups, otherwise the value must appear in the match
as a whole token — so ``LOT [A-Z][0-9]{2}-[0-9]{4}`` with ``equals: "$target.batch_id"`` accepts
``LOT A12-3456`` for batch ``A12-3456``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from schema.errors import CriteriaInvalid
from schema.formats.criteria_text import LANGS, rule_text
from schema.formats.criteria_text import number as _fmt


class Verdict(StrEnum):
    OK = "OK"
    NG = "NG"
    PENDING_REVIEW = "PENDING_REVIEW"


JUDGMENT_TYPES = ("THRESHOLD", "NUMERICAL", "CATEGORICAL", "BINARY", "PATTERN")
_OPERATORS = {
    "LT": "LT", "<": "LT", "LE": "LE", "<=": "LE", "GT": "GT", ">": "GT", "GE": "GE", ">=": "GE",
    "EQ": "EQ", "==": "EQ", "=": "EQ", "NE": "NE", "!=": "NE",
}
_LENGTH_MM = {"nm": 1e-6, "um": 1e-3, "µm": 1e-3, "μm": 1e-3, "mm": 1.0, "cm": 10.0, "m": 1000.0,
              "in": 25.4}


@dataclass(frozen=True)
class ReviewBand:
    low: float
    high: float
    measurement: str | None = None


@dataclass(frozen=True)
class Criteria:
    judgment_type: str
    measurement: str
    review_band: ReviewBand | None = None
    confidence: str | None = None
    min_confidence: float | None = None
    operator: str | None = None
    threshold: float | None = None
    min: float | None = None
    max: float | None = None
    unit: str | None = None
    allowed: tuple[str, ...] = ()
    expected: bool | None = None
    pattern: re.Pattern[str] | None = None
    equals: str | None = None
    full_match: bool = False


@dataclass(frozen=True)
class Judgment:
    result: Verdict
    judgment_type: str
    measurement: str  # the measurement that decided the result
    value: Any
    confidence: float | None
    reason: str
    expected: str
    # The reason as data, which the UI words in its own language (``reason`` is the English
    # sentence kept for logs and the records already synced): a code of ``REASON_CODES`` and
    # the values it names — measurement names, numbers as measured, the rule in both languages.
    reason_code: str = "unknown"
    reason_params: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "result": self.result.value, "judgment_type": self.judgment_type,
            "measurement": self.measurement, "value": self.value, "confidence": self.confidence,
            "reason": self.reason, "expected": self.expected,
            "reason_code": self.reason_code, "reason_params": dict(self.reason_params),
        }


@dataclass(frozen=True)
class Reason:
    """Why a verdict is what it is: the English sentence and the same thing as data."""

    text: str
    code: str
    params: Mapping[str, Any]


# Every code a judgment's reason may carry; the UI has words for each (ja/en).
REASON_CODES = (
    "threshold_met", "threshold_failed", "within_range", "below_minimum", "above_maximum",
    "category_allowed", "category_not_allowed", "binary_expected", "binary_unexpected",
    "pattern_matched", "pattern_not_matched", "pattern_names", "pattern_not_names",
    "not_a_number", "not_a_label", "not_a_boolean", "not_text", "context_missing",
    "no_value", "not_measured", "in_review_band", "low_confidence",
)


def _why(text: str, code: str, /, **params: Any) -> Reason:
    assert code in REASON_CODES, code
    return Reason(text, code, params)


# -- parsing ---------------------------------------------------------------------------------

def _num(raw: Mapping[str, Any], key: str, required: bool = False) -> float | None:
    v = raw.get(key)
    if v is None:
        if required:
            raise CriteriaInvalid(f"criteria need '{key}' (a number)", key=key)
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise CriteriaInvalid(f"criteria '{key}' must be a finite number, got {v!r}", key=key)
    return float(v)


def _band(raw: object) -> ReviewBand | None:
    if raw is None:
        return None
    if isinstance(raw, list | tuple) and len(raw) == 2:
        lo, hi, name = raw[0], raw[1], None
    elif isinstance(raw, Mapping):
        lo = raw.get("low", raw.get("min"))
        hi = raw.get("high", raw.get("max"))
        name = raw.get("measurement")
    else:
        raise CriteriaInvalid("'review_band' must be [low, high] or {\"low\", \"high\"}",
                              key="review_band")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lo, hi)):
        raise CriteriaInvalid("'review_band' bounds must be numbers", key="review_band")
    if lo > hi:
        raise CriteriaInvalid(f"'review_band' low {lo} is above high {hi}", key="review_band")
    if name is not None and not isinstance(name, str):
        raise CriteriaInvalid("'review_band.measurement' must be a string", key="review_band")
    return ReviewBand(float(lo), float(hi), name)


def _tolerance(raw: Mapping[str, Any]) -> tuple[float, float]:
    tol = raw.get("tolerance")
    if isinstance(tol, int | float) and not isinstance(tol, bool):
        return float(tol), float(tol)
    if isinstance(tol, list | tuple) and len(tol) == 2 and all(
            isinstance(t, int | float) and not isinstance(t, bool) for t in tol):
        return abs(float(tol[0])), float(tol[1])
    if isinstance(tol, Mapping):
        return abs(float(tol.get("minus", 0))), float(tol.get("plus", 0))
    raise CriteriaInvalid("'tolerance' must be a number (±) or [minus, plus]", key="tolerance")


def parse_criteria(raw: Mapping[str, Any] | str | bytes | Criteria) -> Criteria:
    """Validate an item's criteria JSON; ``CriteriaInvalid`` says which key is wrong and why."""
    if isinstance(raw, Criteria):
        return raw
    if isinstance(raw, str | bytes):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise CriteriaInvalid(f"criteria are not valid JSON: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise CriteriaInvalid("criteria must be a JSON object")
    jt = raw.get("judgment_type")
    if not isinstance(jt, str) or jt.upper() not in JUDGMENT_TYPES:
        raise CriteriaInvalid(
            f"'judgment_type' must be one of {', '.join(JUDGMENT_TYPES)}, got {jt!r}",
            key="judgment_type")
    jt = jt.upper()
    name = raw.get("measurement")
    if not isinstance(name, str) or not name:
        raise CriteriaInvalid("criteria need 'measurement' (the name of a measurement)",
                              key="measurement")
    conf = raw.get("confidence")
    if conf is not None and not isinstance(conf, str):
        raise CriteriaInvalid("'confidence' must name a measurement", key="confidence")
    common: dict[str, Any] = {
        "judgment_type": jt, "measurement": name, "review_band": _band(raw.get("review_band")),
        "confidence": conf, "min_confidence": _num(raw, "min_confidence"),
    }
    if common["min_confidence"] is not None and conf is None:
        raise CriteriaInvalid(
            "'min_confidence' needs 'confidence': the measurement that holds the model's own"
            " confidence", key="min_confidence")
    if jt == "THRESHOLD":
        op = raw.get("operator")
        if not isinstance(op, str) or op.upper() not in _OPERATORS:
            raise CriteriaInvalid(
                f"'operator' must be one of LT, LE, GT, GE, EQ, NE, got {op!r}", key="operator")
        return Criteria(**common, operator=_OPERATORS[op.upper()],
                        threshold=_num(raw, "threshold", required=True))
    if jt == "NUMERICAL":
        lo, hi = _num(raw, "min"), _num(raw, "max")
        nominal = _num(raw, "nominal")
        if nominal is not None or "tolerance" in raw:
            if lo is not None or hi is not None:
                raise CriteriaInvalid("give either 'min'/'max' or 'nominal' with 'tolerance', "
                                      "not both", key="tolerance")
            if nominal is None:
                raise CriteriaInvalid("'tolerance' needs a 'nominal' value", key="nominal")
            minus, plus = _tolerance(raw)
            lo, hi = nominal - minus, nominal + plus
        if lo is None and hi is None:
            raise CriteriaInvalid("NUMERICAL criteria need 'min' and/or 'max' (or nominal ± "
                                  "tolerance)", key="min")
        if lo is not None and hi is not None and lo > hi:
            raise CriteriaInvalid(f"'min' {lo} is above 'max' {hi}", key="min")
        unit = raw.get("unit")
        if unit is not None and not isinstance(unit, str):
            raise CriteriaInvalid("'unit' must be a string", key="unit")
        return Criteria(**common, min=lo, max=hi, unit=unit)
    if jt == "CATEGORICAL":
        allowed = raw.get("allowed")
        if not isinstance(allowed, list) or not allowed or not all(
                isinstance(a, str | int) and not isinstance(a, bool) for a in allowed):
            raise CriteriaInvalid("'allowed' must be a non-empty list of labels", key="allowed")
        return Criteria(**common, allowed=tuple(str(a) for a in allowed))
    if jt == "BINARY":
        expected = raw.get("expected")
        if not isinstance(expected, bool):
            raise CriteriaInvalid(f"'expected' must be true or false, got {expected!r}",
                                  key="expected")
        return Criteria(**common, expected=expected)
    pattern = raw.get("pattern")
    if not isinstance(pattern, str) or not pattern:
        raise CriteriaInvalid("PATTERN criteria need 'pattern' (a regular expression)",
                              key="pattern")
    try:
        rx = re.compile(pattern, re.IGNORECASE if raw.get("ignore_case") else 0)
    except re.error as exc:
        raise CriteriaInvalid(f"'pattern' is not a valid regular expression: {exc}",
                              key="pattern") from exc
    equals = raw.get("equals")
    if equals is not None and not isinstance(equals, str):
        raise CriteriaInvalid("'equals' must be a string or a '$target.<key>' reference",
                              key="equals")
    return Criteria(**common, pattern=rx, equals=equals, full_match=bool(raw.get("full_match")))


# -- judging ---------------------------------------------------------------------------------

def describe(c: Criteria) -> str:
    """The rule in words, e.g. ``defect_probability < 0.5`` (shown beside the verdict): the
    English rule of ``schema.formats.criteria_text``, the line the tablet shows under the item."""
    return rule_text(c, "en")


def _rule_words(c: Criteria) -> dict[str, str]:
    return {lang: rule_text(c, lang) for lang in LANGS}


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def _compare(op: str, v: float, t: float) -> bool:
    if op == "LT":
        return v < t
    if op == "LE":
        return v <= t
    if op == "GT":
        return v > t
    if op == "GE":
        return v >= t
    equal = math.isclose(v, t, rel_tol=1e-9, abs_tol=1e-12)
    return equal if op == "EQ" else not equal


def _context_value(ref: str, context: Mapping[str, Any] | None) -> Any:
    """``$target.batch_id`` → context["target"]["batch_id"]; a plain string is itself."""
    if not ref.startswith("$"):
        return ref
    cur: Any = context or {}
    for part in ref[1:].split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _bool(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return v.strip().lower() in ("true", "1", "yes")
    return None


def _convert(value: float, have: str | None, want: str | None) -> float:
    if not have or not want or have == want:
        return value
    if have in _LENGTH_MM and want in _LENGTH_MM:
        return value * _LENGTH_MM[have] / _LENGTH_MM[want]
    raise CriteriaInvalid(f"the measurement is in {have} but the criteria are in {want}",
                          key="unit")


def _rule(
    c: Criteria, value: Any, context: Mapping[str, Any] | None, units: Mapping[str, str]
) -> tuple[Verdict, Reason] | Reason:
    """OK/NG with a reason, or a reason alone: why no verdict is possible."""
    name = c.measurement
    rule = _rule_words(c)
    if c.judgment_type == "THRESHOLD":
        v = _number(value)
        if v is None:
            return _why(f"{name} is not a number ({value!r})", "not_a_number", measurement=name)
        ok = _compare(c.operator or "LT", v, c.threshold or 0.0)
        reason = f"{name} = {_fmt(v)}: {'meets' if ok else 'fails'} {describe(c)}"
        return (Verdict.OK if ok else Verdict.NG), _why(
            reason, "threshold_met" if ok else "threshold_failed",
            measurement=name, value=v, rule=rule)
    if c.judgment_type == "NUMERICAL":
        v = _number(value)
        if v is None:
            return _why(f"{name} is not a number ({value!r})", "not_a_number", measurement=name)
        v = _convert(v, units.get(name), c.unit)
        low_ok = c.min is None or v >= c.min
        high_ok = c.max is None or v <= c.max
        unit = f" {c.unit}" if c.unit else ""
        params = {"measurement": name, "value": v, "unit": c.unit, "rule": rule}
        if low_ok and high_ok:
            return Verdict.OK, _why(f"{name} = {_fmt(v)}{unit}: within {describe(c)}",
                                    "within_range", **params)
        side = "below the minimum" if not low_ok else "above the maximum"
        return Verdict.NG, _why(f"{name} = {_fmt(v)}{unit}: {side} ({describe(c)})",
                                "below_minimum" if not low_ok else "above_maximum", **params)
    if c.judgment_type == "CATEGORICAL":
        label = value.get("label") if isinstance(value, Mapping) else value
        if not isinstance(label, str | int) or isinstance(label, bool):
            return _why(f"{name} is not a label ({value!r})", "not_a_label", measurement=name)
        ok = str(label) in c.allowed
        return (Verdict.OK if ok else Verdict.NG), _why(
            f"{name} = {label}: {'allowed' if ok else 'not in'} {{{', '.join(c.allowed)}}}",
            "category_allowed" if ok else "category_not_allowed",
            measurement=name, value=str(label), allowed=list(c.allowed))
    if c.judgment_type == "BINARY":
        b = _bool(value)
        if b is None:
            return _why(f"{name} is not true/false ({value!r})", "not_a_boolean",
                        measurement=name)
        ok = b == c.expected
        return (Verdict.OK if ok else Verdict.NG), _why(
            f"{name} is {str(b).lower()}, expected {str(c.expected).lower()}",
            "binary_expected" if ok else "binary_unexpected",
            measurement=name, value=b, expected=c.expected)
    return _pattern(c, value, context)


def _pattern(
    c: Criteria, value: Any, context: Mapping[str, Any] | None
) -> tuple[Verdict, Reason] | Reason:
    assert c.pattern is not None
    name = c.measurement
    if not isinstance(value, str):
        return _why(f"{name} is not text ({value!r})", "not_text", measurement=name)
    rule = _rule_words(c)
    text = " ".join(value.split())
    if c.full_match:
        m = c.pattern.fullmatch(text)
    else:
        # A match must stand alone: "LOT A12-34567" does not contain the lot "LOT A12-3456".
        m = next((x for x in c.pattern.finditer(text)
                  if (x.start() == 0 or not text[x.start() - 1].isalnum())
                  and (x.end() == len(text) or not text[x.end()].isalnum())), None)
    if m is None:
        return Verdict.NG, _why(f"'{text}' does not match /{c.pattern.pattern}/",
                                "pattern_not_matched", measurement=name, text=text, rule=rule)
    if c.equals is None:
        return Verdict.OK, _why(f"'{m.group(0)}' matches /{c.pattern.pattern}/",
                                "pattern_matched", measurement=name, text=m.group(0), rule=rule)
    expected = _context_value(c.equals, context)
    if expected is None:
        return _why(f"cannot check against {c.equals}: it is not in the inspection's context",
                    "context_missing", reference=c.equals, rule=rule)
    expected = str(expected).strip()
    if "value" in c.pattern.groupindex:
        named = m.group("value")
        ok = named is not None and named.strip() == expected
    elif c.pattern.groups:
        first = m.group(1)
        ok = first is not None and first.strip() == expected
    else:
        token = re.compile(rf"(?<![0-9A-Za-z]){re.escape(expected)}(?![0-9A-Za-z])")
        ok = token.search(m.group(0)) is not None
    params = {"measurement": name, "text": m.group(0), "expected": expected,
              "reference": c.equals, "rule": rule}
    if ok:
        return Verdict.OK, _why(f"'{m.group(0)}' matches and names {expected}",
                                "pattern_names", **params)
    return Verdict.NG, _why(f"'{m.group(0)}' does not name {expected} ({c.equals})",
                            "pattern_not_names", **params)


def model_confidence(c: Criteria, measurements: Mapping[str, Any]) -> float | None:
    """The model's own confidence: the measurement ``confidence`` names, when it is a number in
    [0, 1]; otherwise None (a score of another scale is not a confidence)."""
    if c.confidence is None:
        return None
    v = _number(measurements.get(c.confidence))
    return v if v is not None and 0.0 <= v <= 1.0 else None


def judge(
    criteria: Mapping[str, Any] | str | bytes | Criteria,
    measurements: Mapping[str, Any],
    context: Mapping[str, Any] | None = None,
    units: Mapping[str, str] | None = None,
) -> Judgment:
    """The verdict for one item. Raises only ``CriteriaInvalid`` (bad criteria)."""
    c = parse_criteria(criteria)
    expected = describe(c)
    name = c.measurement
    value = measurements.get(name)

    def pending(reason: Reason, on: str = name, v: Any = value,
                conf: float | None = None) -> Judgment:
        return Judgment(Verdict.PENDING_REVIEW, c.judgment_type, on, v, conf, reason.text,
                        expected, reason.code, reason.params)

    if value is None:
        return pending(_why(f"no value for '{name}'", "no_value", measurement=name)
                       if name not in measurements
                       else _why(f"'{name}' could not be measured", "not_measured",
                                 measurement=name))
    outcome = _rule(c, value, context, units or {})
    if isinstance(outcome, Reason):
        return pending(outcome)
    verdict, reason = outcome
    confidence = model_confidence(c, measurements)
    if c.review_band is not None:
        band_name = c.review_band.measurement or name
        bv = _number(measurements.get(band_name))
        if bv is not None and c.review_band.low <= bv <= c.review_band.high:
            return pending(_why(
                f"{band_name} = {_fmt(bv)} is in the review band "
                f"{_fmt(c.review_band.low)}–{_fmt(c.review_band.high)} (rule alone: "
                f"{verdict.value})", "in_review_band", measurement=band_name, value=bv,
                low=c.review_band.low, high=c.review_band.high, rule_result=verdict.value),
                on=band_name, v=bv, conf=confidence)
    if c.min_confidence is not None and (confidence is None or confidence < c.min_confidence):
        shown = "unknown" if confidence is None else _fmt(confidence)
        return pending(_why(
            f"confidence {shown} is below {_fmt(c.min_confidence)} (rule alone: "
            f"{verdict.value})", "low_confidence", confidence=confidence,
            minimum=c.min_confidence, rule_result=verdict.value), conf=confidence)
    return Judgment(verdict, c.judgment_type, name, value, confidence, reason.text, expected,
                    reason.code, reason.params)
