"""Criteria judgment: tables of (criteria, measurements, context) → verdict, and bad criteria."""

from __future__ import annotations

from typing import Any

import pytest

from schema.formats.criteria import Verdict
from schema.formats.criteria_text import criteria_texts
from sidecar.errors import InvalidInput
from sidecar.pipeline.errors import CriteriaInvalid
from sidecar.pipeline.judgment import judge, parse_criteria

OK, NG, PR = Verdict.OK, Verdict.NG, Verdict.PENDING_REVIEW

SCRATCH = {"judgment_type": "THRESHOLD", "measurement": "defect_probability", "operator": "LT",
           "threshold": 0.5, "review_band": [0.3, 0.7]}
BORE = {"judgment_type": "NUMERICAL", "measurement": "bore_mm", "min": 11.95, "max": 12.05,
        "unit": "mm"}
MARKING = {"judgment_type": "PATTERN", "measurement": "text",
           "pattern": "LOT [A-Z][0-9]{2}-[0-9]{4}", "equals": "$target.batch_id"}
TARGET = {"target": {"batch_id": "A12-3456", "product_id": "BRK-100"}}


def thr(op: str, t: float) -> dict[str, Any]:
    return {"judgment_type": "THRESHOLD", "measurement": "x", "operator": op, "threshold": t}


@pytest.mark.parametrize(("criteria", "value", "want"), [
    (thr("LT", 0.5), 0.49, OK), (thr("LT", 0.5), 0.5, NG), (thr("LT", 0.5), 0.51, NG),
    (thr("LE", 0.5), 0.5, OK), (thr("LE", 0.5), 0.5001, NG),
    (thr("GT", 10), 10.1, OK), (thr("GT", 10), 10, NG),
    (thr("GE", 10), 10, OK), (thr("GE", 10), 9.99, NG),
    (thr("EQ", 3), 3, OK), (thr("EQ", 3), 3.0000001, NG), (thr("EQ", 0.3), 0.1 + 0.2, OK),
    (thr("NE", 3), 4, OK), (thr("NE", 3), 3, NG),
    (thr("<", 1), 0, OK), (thr(">=", 1), 1, OK),  # symbol spellings
    (thr("lt", 1), 0, OK),  # case-insensitive
    (thr("LT", 1), True, PR),  # a boolean is not a number
    (thr("LT", 1), "0.5", PR), (thr("LT", 1), float("nan"), PR), (thr("LT", 1), None, PR),
])
def test_threshold(criteria: dict[str, Any], value: Any, want: Verdict) -> None:
    assert judge(criteria, {"x": value}).result == want


@pytest.mark.parametrize(("p", "want"), [
    (0.05, OK), (0.29, OK), (0.3, PR), (0.5, PR), (0.69, PR), (0.7, PR), (0.71, NG), (0.99, NG),
])
def test_review_band_on_the_scratch_item(p: float, want: Verdict) -> None:
    j = judge(SCRATCH, {"defect_probability": p})
    assert j.result == want
    assert j.measurement == "defect_probability"
    assert j.value == p


# No rule makes a confidence up: a judgment has the model's own (the measurement the criteria's
# ``confidence`` names, when it is in [0, 1]) or none.
@pytest.mark.parametrize(("criteria", "measurements", "want"), [
    (thr("LT", 0.5), {"x": 0.0}, None),
    (thr("LT", 0.5), {"x": 0.25}, None),
    (thr("GT", 10), {"x": 12}, None),
    (SCRATCH, {"defect_probability": 0.05}, None),
    (BORE, {"bore_mm": 12.0}, None),
    ({**thr("LT", 0.5), "confidence": "p"}, {"x": 0.2, "p": 0.87}, 0.87),
    ({**thr("LT", 0.5), "confidence": "p"}, {"x": 0.2}, None),
    ({**thr("LT", 0.5), "confidence": "p"}, {"x": 0.2, "p": 6.2}, None),  # not in [0, 1]
    ({**thr("LT", 0.5), "confidence": "p"}, {"x": 0.2, "p": "high"}, None),
    ({**thr("LT", 0.5), "confidence": "p"}, {"x": 0.2, "p": True}, None),
    ({**MARKING, "confidence": "text_score"}, {"text": "LOT A12-3456", "text_score": 0.9}, 0.9),
])
def test_confidence_is_the_models_own_or_none(
    criteria: dict[str, Any], measurements: dict[str, Any], want: float | None
) -> None:
    assert judge(criteria, measurements, TARGET).confidence == want


def test_min_confidence_and_named_confidence() -> None:
    named = {**MARKING, "confidence": "text_score", "min_confidence": 0.9}
    assert judge(named, {"text": "LOT A12-3456", "text_score": 0.95}, TARGET).result == OK
    low = judge(named, {"text": "LOT A12-3456", "text_score": 0.5}, TARGET)
    assert low.result == PR and low.confidence == 0.5 and "below" in low.reason
    unknown = judge(named, {"text": "LOT A12-3456"}, TARGET)
    assert unknown.result == PR and unknown.confidence is None and "unknown" in unknown.reason


def test_min_confidence_needs_the_measurement_that_holds_it() -> None:
    with pytest.raises(CriteriaInvalid) as caught:
        parse_criteria({**thr("LT", 0.5), "min_confidence": 0.8})
    assert "confidence" in str(caught.value)


def test_review_band_on_another_measurement() -> None:
    c = {**thr("LT", 8.0), "review_band": {"low": 0.0, "high": 0.6, "measurement": "conf"}}
    j = judge(c, {"x": 1.0, "conf": 0.4})
    assert j.result == PR and j.measurement == "conf"
    assert judge(c, {"x": 1.0, "conf": 0.9}).result == OK


@pytest.mark.parametrize(("criteria", "value", "want"), [
    (BORE, 12.0, OK), (BORE, 11.95, OK), (BORE, 12.05, OK), (BORE, 11.949, NG),
    (BORE, 12.051, NG), (BORE, 13, NG),
    ({"judgment_type": "NUMERICAL", "measurement": "x", "min": 5}, 1e9, OK),  # one-sided
    ({"judgment_type": "NUMERICAL", "measurement": "x", "max": 5}, 5.1, NG),
    ({"judgment_type": "NUMERICAL", "measurement": "x", "nominal": 12, "tolerance": 0.05},
     12.04, OK),
    ({"judgment_type": "NUMERICAL", "measurement": "x", "nominal": 12, "tolerance": 0.05},
     11.94, NG),
    ({"judgment_type": "NUMERICAL", "measurement": "x", "nominal": 12,
      "tolerance": [0.0, 0.1]}, 11.99, NG),  # asymmetric: nothing below nominal
    ({"judgment_type": "NUMERICAL", "measurement": "x", "nominal": 12,
      "tolerance": [0.0, 0.1]}, 12.08, OK),
    (BORE, "12", PR), (BORE, None, PR),
])
def test_numerical(criteria: dict[str, Any], value: Any, want: Verdict) -> None:
    measurements = {"bore_mm": value, "x": value}
    assert judge(criteria, measurements, units={"bore_mm": "mm"}).result == want


def test_numerical_units_convert_lengths() -> None:
    assert judge(BORE, {"bore_mm": 12000.0}, units={"bore_mm": "um"}).result == OK
    assert judge(BORE, {"bore_mm": 1.2}, units={"bore_mm": "cm"}).result == OK
    assert judge(BORE, {"bore_mm": 1.3}, units={"bore_mm": "cm"}).result == NG
    with pytest.raises(CriteriaInvalid, match="kg"):
        judge(BORE, {"bore_mm": 12.0}, units={"bore_mm": "kg"})


def test_numerical_reason_says_which_side() -> None:
    assert "below the minimum" in judge(BORE, {"bore_mm": 11.9}).reason
    assert "above the maximum" in judge(BORE, {"bore_mm": 12.1}).reason


@pytest.mark.parametrize(("value", "want"), [
    ("ok_part", OK), ("scratch", NG), ({"label": "ok_part", "score": 0.9}, OK), (3, NG),
    (None, PR), (["ok_part"], PR),
])
def test_categorical(value: Any, want: Verdict) -> None:
    c = {"judgment_type": "CATEGORICAL", "measurement": "class", "allowed": ["ok_part", "ok_2"]}
    assert judge(c, {"class": value}).result == want


@pytest.mark.parametrize(("expected", "value", "want"), [
    (False, False, OK), (False, True, NG), (True, True, OK), (True, 1, OK), (True, 0, NG),
    (True, "true", OK), (True, "no", NG), (True, "maybe", PR), (True, 2, PR),
])
def test_binary(expected: bool, value: Any, want: Verdict) -> None:
    c = {"judgment_type": "BINARY", "measurement": "ok", "expected": expected}
    assert judge(c, {"ok": value}).result == want


@pytest.mark.parametrize(("criteria", "text", "context", "want"), [
    (MARKING, "LOT A12-3456", TARGET, OK),
    (MARKING, "  LOT   A12-3456 ", TARGET, OK),  # OCR spacing is collapsed
    (MARKING, "BRK-100 LOT A12-3456 JP", TARGET, OK),  # search, not full match
    (MARKING, "LOT A12-3457", TARGET, NG),  # right format, another batch
    (MARKING, "LOT A12-34567", TARGET, NG),  # the regex matches a prefix; batch differs
    (MARKING, "LOT a12-3456", TARGET, NG),
    (MARKING, "", TARGET, NG),
    (MARKING, "LOT A12-3456", {}, PR),  # nothing to compare with
    (MARKING, None, TARGET, PR),
    ({**MARKING, "full_match": True}, "X LOT A12-3456", TARGET, NG),
    ({**MARKING, "ignore_case": True}, "lot a12-3456", {"target": {"batch_id": "a12-3456"}}, OK),
    ({**MARKING, "pattern": "LOT (?P<value>[A-Z][0-9]{2}-[0-9]{4})"}, "LOT A12-3456", TARGET,
     OK),
    ({**MARKING, "pattern": "LOT ([A-Z][0-9]{2})-[0-9]{4}", "equals": "A12"}, "LOT A12-3456",
     {}, OK),
    ({"judgment_type": "PATTERN", "measurement": "text", "pattern": "^[0-9]{7}$"}, "0098172",
     None, OK),
])
def test_pattern(criteria: dict[str, Any], text: Any, context: Any, want: Verdict) -> None:
    assert judge(criteria, {"text": text}, context).result == want


def test_missing_measurement_goes_to_a_person() -> None:
    j = judge(SCRATCH, {"other": 1})
    assert j.result == PR and "no value for 'defect_probability'" in j.reason


def test_judgment_reports_the_deciding_measurement() -> None:
    j = judge(BORE, {"bore_mm": 12.2, "bore_found": True})
    d = j.to_dict()
    assert d["result"] == "NG" and d["measurement"] == "bore_mm" and d["value"] == 12.2
    # The rule in the words the tablet shows under the item (schema.formats.criteria_text).
    assert d["expected"] == "Bore diameter 11.95–12.05 mm" == criteria_texts(BORE)["en"]


def test_judge_accepts_json_text() -> None:
    assert judge('{"judgment_type": "BINARY", "measurement": "ok", "expected": true}',
                 {"ok": True}).result == OK


@pytest.mark.parametrize(("criteria", "message"), [
    ("{not json", "not valid JSON"),
    ([1, 2], "JSON object"),
    ({"measurement": "x"}, "judgment_type"),
    ({"judgment_type": "FUZZY", "measurement": "x"}, "judgment_type"),
    ({"judgment_type": "THRESHOLD", "operator": "LT", "threshold": 1}, "measurement"),
    ({"judgment_type": "THRESHOLD", "measurement": "x", "threshold": 1}, "operator"),
    ({"judgment_type": "THRESHOLD", "measurement": "x", "operator": "ABOUT", "threshold": 1},
     "operator"),
    ({"judgment_type": "THRESHOLD", "measurement": "x", "operator": "LT"}, "threshold"),
    ({"judgment_type": "THRESHOLD", "measurement": "x", "operator": "LT", "threshold": "0.5"},
     "threshold"),
    ({**SCRATCH, "review_band": [0.7, 0.3]}, "review_band"),
    ({**SCRATCH, "review_band": "0.3-0.7"}, "review_band"),
    ({"judgment_type": "NUMERICAL", "measurement": "x"}, "min"),
    ({"judgment_type": "NUMERICAL", "measurement": "x", "min": 2, "max": 1}, "above"),
    ({"judgment_type": "NUMERICAL", "measurement": "x", "min": 1, "max": 2, "tolerance": 0.1},
     "either"),
    ({"judgment_type": "NUMERICAL", "measurement": "x", "tolerance": 0.1}, "nominal"),
    ({"judgment_type": "NUMERICAL", "measurement": "x", "nominal": 1, "tolerance": "x"},
     "tolerance"),
    ({"judgment_type": "CATEGORICAL", "measurement": "x", "allowed": []}, "allowed"),
    ({"judgment_type": "BINARY", "measurement": "x", "expected": "yes"}, "expected"),
    ({"judgment_type": "PATTERN", "measurement": "x"}, "pattern"),
    ({"judgment_type": "PATTERN", "measurement": "x", "pattern": "LOT ("}, "regular expression"),
    ({"judgment_type": "PATTERN", "measurement": "x", "pattern": "a", "equals": 5}, "equals"),
])
def test_invalid_criteria_are_a_clear_error(criteria: Any, message: str) -> None:
    with pytest.raises(CriteriaInvalid, match=message) as err:
        parse_criteria(criteria)
    assert isinstance(err.value, InvalidInput)  # a 400 at the API
    assert err.value.code == "criteria_invalid"
