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
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from schema.errors import CriteriaInvalid
from schema.formats.criteria_text import number as _fmt
from schema.formats.criteria_text import rule_text


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "result": self.result.value, "judgment_type": self.judgment_type,
            "measurement": self.measurement, "value": self.value, "confidence": self.confidence,
            "reason": self.reason, "expected": self.expected,
        }


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
) -> tuple[Verdict, str] | str:
    """OK/NG with a reason, or a string: why no verdict is possible."""
    name = c.measurement
    if c.judgment_type == "THRESHOLD":
        v = _number(value)
        if v is None:
            return f"{name} is not a number ({value!r})"
        ok = _compare(c.operator or "LT", v, c.threshold or 0.0)
        rule = describe(c)
        reason = f"{name} = {_fmt(v)}: {'meets' if ok else 'fails'} {rule}"
        return (Verdict.OK if ok else Verdict.NG), reason
    if c.judgment_type == "NUMERICAL":
        v = _number(value)
        if v is None:
            return f"{name} is not a number ({value!r})"
        v = _convert(v, units.get(name), c.unit)
        low_ok = c.min is None or v >= c.min
        high_ok = c.max is None or v <= c.max
        unit = f" {c.unit}" if c.unit else ""
        if low_ok and high_ok:
            return Verdict.OK, f"{name} = {_fmt(v)}{unit}: within {describe(c)}"
        side = "below the minimum" if not low_ok else "above the maximum"
        return Verdict.NG, f"{name} = {_fmt(v)}{unit}: {side} ({describe(c)})"
    if c.judgment_type == "CATEGORICAL":
        label = value.get("label") if isinstance(value, Mapping) else value
        if not isinstance(label, str | int) or isinstance(label, bool):
            return f"{name} is not a label ({value!r})"
        ok = str(label) in c.allowed
        return ((Verdict.OK if ok else Verdict.NG),
                f"{name} = {label}: {'allowed' if ok else 'not in'} {{{', '.join(c.allowed)}}}")
    if c.judgment_type == "BINARY":
        b = _bool(value)
        if b is None:
            return f"{name} is not true/false ({value!r})"
        ok = b == c.expected
        return ((Verdict.OK if ok else Verdict.NG),
                f"{name} is {str(b).lower()}, expected {str(c.expected).lower()}")
    return _pattern(c, value, context)


def _pattern(
    c: Criteria, value: Any, context: Mapping[str, Any] | None
) -> tuple[Verdict, str] | str:
    assert c.pattern is not None
    if not isinstance(value, str):
        return f"{c.measurement} is not text ({value!r})"
    text = " ".join(value.split())
    if c.full_match:
        m = c.pattern.fullmatch(text)
    else:
        # A match must stand alone: "LOT A12-34567" does not contain the lot "LOT A12-3456".
        m = next((x for x in c.pattern.finditer(text)
                  if (x.start() == 0 or not text[x.start() - 1].isalnum())
                  and (x.end() == len(text) or not text[x.end()].isalnum())), None)
    if m is None:
        return Verdict.NG, f"'{text}' does not match /{c.pattern.pattern}/"
    if c.equals is None:
        return Verdict.OK, f"'{m.group(0)}' matches /{c.pattern.pattern}/"
    expected = _context_value(c.equals, context)
    if expected is None:
        return f"cannot check against {c.equals}: it is not in the inspection's context"
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
    if ok:
        return Verdict.OK, f"'{m.group(0)}' matches and names {expected}"
    return Verdict.NG, f"'{m.group(0)}' does not name {expected} ({c.equals})"


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

    def pending(reason: str, on: str = name, v: Any = value,
                conf: float | None = None) -> Judgment:
        return Judgment(Verdict.PENDING_REVIEW, c.judgment_type, on, v, conf, reason, expected)

    if value is None:
        return pending(f"no value for '{name}'" if name not in measurements
                       else f"'{name}' could not be measured")
    outcome = _rule(c, value, context, units or {})
    if isinstance(outcome, str):
        return pending(outcome)
    verdict, reason = outcome
    confidence = model_confidence(c, measurements)
    if c.review_band is not None:
        band_name = c.review_band.measurement or name
        bv = _number(measurements.get(band_name))
        if bv is not None and c.review_band.low <= bv <= c.review_band.high:
            return pending(
                f"{band_name} = {_fmt(bv)} is in the review band "
                f"{_fmt(c.review_band.low)}–{_fmt(c.review_band.high)} (rule alone: "
                f"{verdict.value})", on=band_name, v=bv, conf=confidence)
    if c.min_confidence is not None and (confidence is None or confidence < c.min_confidence):
        shown = "unknown" if confidence is None else _fmt(confidence)
        return pending(f"confidence {shown} is below {_fmt(c.min_confidence)} (rule alone: "
                       f"{verdict.value})", conf=confidence)
    return Judgment(verdict, c.judgment_type, name, value, confidence, reason, expected)
