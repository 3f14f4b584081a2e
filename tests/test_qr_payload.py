"""sidecar.qr.payload: each accepted spelling, and a precise error for each way to get it wrong."""

from __future__ import annotations

import dataclasses
import json

import pytest

from sidecar.errors import InvalidInput, QrPayloadInvalid
from sidecar.qr.payload import MAX_LENGTH, ScannedUnit, parse_payload

HEADER = "workOrderId,instructionId,productCode,machineNumber,productionDate,monthlySequence"
WO_ROW = "WO-2411-0042,INS-7,BRK-100,M-03,2026-11-27,42"
WORK_ORDER = {
    "workOrderId": "WO-2411-0042", "instructionId": "INS-7", "productCode": "BRK-100",
    "machineNumber": "M-03", "productionDate": "2026-11-27", "monthlySequence": 42,
}
SIMPLE = '{"product_id": "BRK-100", "batch_id": "A12-3456", "serial": "0098172"}'
LEGACY = "BRK-100_A12-3456_20261127T0800"
DROP = object()  # marks a work-order field to leave out


def wo_json(**changes: object) -> str:
    body: dict[str, object] = {**WORK_ORDER, **changes}
    return json.dumps({k: v for k, v in body.items() if v is not DROP}, ensure_ascii=False)


def wo_csv(**changes: str) -> str:
    values = [changes.get(k, str(v)) for k, v in WORK_ORDER.items()]
    return ",".join(values)

# (payload, format, product_code, batch_id, serial, some expected fields)
VALID = [
    pytest.param(SIMPLE, "json", "BRK-100", "A12-3456", "0098172", {"serial": "0098172"},
                 id="json"),
    pytest.param('{"product_id": "BRK-100", "batch_id": "A12-3456"}', "json", "BRK-100",
                 "A12-3456", None, {}, id="json-no-serial"),
    pytest.param('{"product_id": 100, "batch_id": 3456, "serial": 98172}', "json", "100",
                 "3456", "98172", {"product_id": "100"}, id="json-numeric-ids"),
    pytest.param('{\n  "product_id": " BRK-100 ",\n  "batch_id": "A12-3456",\n  "line": 3\n}',
                 "json", "BRK-100", "A12-3456", None, {"line": 3, "product_id": "BRK-100"},
                 id="json-pretty-extra-field"),
    pytest.param('{"product_id": "BRK-100", "batch_id": "A12", "serial": null}', "json",
                 "BRK-100", "A12", None, {}, id="json-null-serial"),
    pytest.param(wo_json(), "work_order_json", "BRK-100", "WO-2411-0042", None,
                 {**WORK_ORDER}, id="work-order-json"),
    pytest.param(wo_json(monthlySequence="0042", productionDate="2026/11/27", shift="night"),
                 "work_order_json", "BRK-100", "WO-2411-0042", None,
                 {"monthlySequence": 42, "productionDate": "2026-11-27", "shift": "night"},
                 id="work-order-json-string-sequence-slash-date-extra"),
    pytest.param(WO_ROW, "work_order_csv", "BRK-100", "WO-2411-0042", None, {**WORK_ORDER},
                 id="csv-no-header"),
    pytest.param(f"{HEADER}\r\n{WO_ROW}", "work_order_csv", "BRK-100", "WO-2411-0042", None,
                 {**WORK_ORDER}, id="csv-header"),
    pytest.param("MONTHLYSEQUENCE, productcode, workOrderId, instructionId, machineNumber, "
                 "productionDate\n42, BRK-100, WO-2411-0042, INS-7, M-03, 2026-11-27",
                 "work_order_csv", "BRK-100", "WO-2411-0042", None, {**WORK_ORDER},
                 id="csv-header-any-order-any-case-spaces"),
    pytest.param('"WO-2411-0042","INS-7","BRK-100","M-03","2026-11-27","42"', "work_order_csv",
                 "BRK-100", "WO-2411-0042", None, {**WORK_ORDER}, id="csv-quoted"),
    pytest.param(LEGACY, "legacy", "BRK-100", "A12-3456", None,
                 {"timestamp": "2026-11-27T08:00:00"}, id="legacy"),
    pytest.param("BRK-100_A12-3456_20261127T080059", "legacy", "BRK-100", "A12-3456", None,
                 {"timestamp": "2026-11-27T08:00:59"}, id="legacy-seconds"),
    # Japanese labels: product names, batches and machines in kanji/kana, wide and narrow.
    pytest.param('{"product_id": "ブレーキ-100", "batch_id": "第3ロット", "品名": "ﾌﾞﾚｰｷﾊﾟｯﾄﾞ"}',
                 "json", "ブレーキ-100", "第3ロット", None, {"品名": "ﾌﾞﾚｰｷﾊﾟｯﾄﾞ"},
                 id="json-japanese"),
    pytest.param(wo_csv(machineNumber="第2号機"), "work_order_csv", "BRK-100", "WO-2411-0042",
                 None, {"machineNumber": "第2号機"}, id="csv-japanese"),
    pytest.param("ブレーキ-100_第3ロット_20261127T0800", "legacy", "ブレーキ-100", "第3ロット",
                 None, {}, id="legacy-japanese"),
]


@pytest.mark.parametrize(("text", "fmt", "product", "batch", "serial", "fields"), VALID)
@pytest.mark.parametrize("wedge", ["", "\n", "\r\n", "\r", "\t", " \r\n"],
                         ids=["bare", "lf", "crlf", "cr", "tab", "space-crlf"])
def test_valid_payloads(text: str, fmt: str, product: str, batch: str, serial: str | None,
                        fields: dict[str, object], wedge: str) -> None:
    unit = parse_payload(text + wedge)
    assert (unit.format, unit.product_code, unit.batch_id, unit.serial) == (
        fmt, product, batch, serial)
    assert fields.items() <= unit.fields.items()
    assert unit.raw == text.strip()  # what the code carries, without the scanner's terminator


def test_byte_order_mark_and_leading_whitespace_are_ignored() -> None:
    assert parse_payload(f"\ufeff  {LEGACY}\r\n").raw == LEGACY


def test_scanned_unit_is_frozen_and_hashable() -> None:
    unit = parse_payload(SIMPLE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        unit.batch_id = "other"  # type: ignore[misc]
    assert hash(unit) == hash(parse_payload(SIMPLE + "\n"))
    assert isinstance(unit, ScannedUnit)


def test_input_up_to_the_limit_is_accepted() -> None:
    prefix = '{"product_id": "BRK-100", "batch_id": "A12", "note": "'
    text = prefix + "x" * (MAX_LENGTH - len(prefix) - 2) + '"}'
    assert len(text) == MAX_LENGTH
    assert parse_payload(text + "\r\n").product_code == "BRK-100"


# (payload, the format it looked like, fragment of the message)
INVALID = [
    pytest.param("", "unknown", "empty", id="empty"),
    pytest.param(" \r\n\t", "unknown", "empty", id="only-whitespace"),
    pytest.param("hello world", "unknown", "no known format", id="plain-text"),
    pytest.param("x" * (MAX_LENGTH + 1), "unknown", "at most 4096", id="over-long"),
    pytest.param('{"product_id": "' + "A" * MAX_LENGTH + '"}', "json", "at most 4096",
                 id="over-long-json"),
    # JSON
    pytest.param('{"batch_id": "A12-3456"}', "json", "missing product_id", id="json-no-product"),
    pytest.param('{"product_id": "BRK-100"}', "json", "missing batch_id", id="json-no-batch"),
    pytest.param('{"product_id": "", "batch_id": "A12"}', "json", "product_id is empty",
                 id="json-empty-product"),
    pytest.param('{"product_id": "   ", "batch_id": "A12"}', "json", "product_id is empty",
                 id="json-blank-product"),
    pytest.param('{"product_id": "BRK-100", "batch_id": ""}', "json", "batch_id is empty",
                 id="json-empty-batch"),
    pytest.param('{"product_id": null, "batch_id": "A12"}', "json", "got null",
                 id="json-null-product"),
    pytest.param('{"product_id": true, "batch_id": "A12"}', "json", "got a boolean",
                 id="json-bool-product"),
    pytest.param('{"product_id": 1.5, "batch_id": "A12"}', "json", "got a number",
                 id="json-float-product"),
    pytest.param('{"product_id": ["BRK-100"], "batch_id": "A12"}', "json", "got an array",
                 id="json-array-product"),
    pytest.param('{"product_id": "BRK-100", "batch_id": "A12", "serial": ""}', "json",
                 "serial is empty", id="json-empty-serial"),
    pytest.param('{"product_id": "' + "P" * 65 + '", "batch_id": "A12"}', "json",
                 "longer than 64", id="json-long-product"),
    pytest.param('{"product_id": "BRK-100", "batch_id": "A12",', "json", "not valid JSON",
                 id="json-truncated"),
    pytest.param("{'product_id': 'BRK-100', 'batch_id': 'A12'}", "json", "not valid JSON",
                 id="json-single-quotes"),
    pytest.param('["BRK-100", "A12"]', "json", "must be a JSON object, got an array",
                 id="json-array"),
    pytest.param('{"product_id": "A", "batch_id": "B", "product_id": "C"}', "json",
                 "'product_id' appears twice", id="json-duplicate-key"),
    pytest.param('{"product_id": "A", "batch_id": NaN}', "json", "NaN", id="json-nan"),
    pytest.param('{"product": "BRK-100", "batch": "A12"}', "json", "neither product_id",
                 id="json-unknown-keys"),
    pytest.param('{"product_id": "BRK-100", "batch_id": "A12", "workOrderId": "WO-1"}',
                 "json", "mixes", id="json-mixed-formats"),
    pytest.param('{"product_id": "A", "batch_id": "B", "x": ' + "[" * 2000 + "]" * 2000 + "}",
                 "json", "nested too deeply", id="json-deep-nesting"),
    # work-order JSON
    pytest.param(wo_json(monthlySequence=DROP), "work_order_json", "missing monthlySequence",
                 id="wo-no-sequence"),
    pytest.param(wo_json(workOrderId=DROP, machineNumber=DROP), "work_order_json",
                 "missing workOrderId, machineNumber", id="wo-no-id-no-machine"),
    pytest.param(wo_json(monthlySequence=0), "work_order_json", "positive integer",
                 id="wo-sequence-zero"),
    pytest.param(wo_json(monthlySequence=-3), "work_order_json", "positive integer",
                 id="wo-sequence-negative"),
    pytest.param(wo_json(monthlySequence=4.2), "work_order_json", "positive integer",
                 id="wo-sequence-float"),
    pytest.param(wo_json(monthlySequence=True), "work_order_json", "positive integer",
                 id="wo-sequence-bool"),
    pytest.param(wo_json(monthlySequence="forty-two"), "work_order_json", "positive integer",
                 id="wo-sequence-text"),
    pytest.param(wo_json(monthlySequence="４２"), "work_order_json", "positive integer",
                 id="wo-sequence-wide-digits"),
    pytest.param(wo_json(monthlySequence=10**6), "work_order_json", "positive integer",
                 id="wo-sequence-huge"),
    pytest.param(wo_json(productionDate="2026-02-30"), "work_order_json", "not a real date",
                 id="wo-date-impossible"),
    pytest.param(wo_json(productionDate="2026-13-01"), "work_order_json", "not a real date",
                 id="wo-date-month-13"),
    pytest.param(wo_json(productionDate="27.11.2026"), "work_order_json", "YYYY-MM-DD",
                 id="wo-date-format"),
    pytest.param(wo_json(productionDate=20261127), "work_order_json", "YYYY-MM-DD",
                 id="wo-date-number"),
    pytest.param(wo_json(instructionId=""), "work_order_json", "instructionId is empty",
                 id="wo-empty-instruction"),
    pytest.param(wo_json(productCode={"code": "BRK-100"}), "work_order_json", "got an object",
                 id="wo-product-object"),
    # work-order CSV
    pytest.param("WO-2411-0042,INS-7,BRK-100,M-03,2026-11-27", "work_order_csv",
                 "needs 6 fields", id="csv-five-fields"),
    pytest.param(WO_ROW + ",extra", "work_order_csv", "got 7", id="csv-seven-fields"),
    pytest.param(wo_csv(instructionId=""), "work_order_csv", "instructionId is empty",
                 id="csv-empty-field"),
    pytest.param(wo_csv(productionDate="2026-11-31"), "work_order_csv", "not a real date",
                 id="csv-bad-date"),
    pytest.param(wo_csv(monthlySequence="0"), "work_order_csv", "positive integer",
                 id="csv-sequence-zero"),
    pytest.param(wo_csv(monthlySequence="4.2"), "work_order_csv", "positive integer",
                 id="csv-sequence-float"),
    pytest.param(HEADER, "work_order_csv", "no data line", id="csv-header-only"),
    pytest.param(f"{WO_ROW}\n{WO_ROW}", "work_order_csv", "2 data lines", id="csv-two-rows"),
    pytest.param(f"{HEADER}\n{WO_ROW}\n{WO_ROW}", "work_order_csv", "2 data lines",
                 id="csv-header-two-rows"),
    pytest.param(HEADER.replace("machineNumber", "machine") + "\n" + WO_ROW, "work_order_csv",
                 "unknown field(s) 'machine'", id="csv-header-unknown"),
    pytest.param(HEADER.replace(",monthlySequence", "") + "\nWO-1,INS-7,BRK-100,M-03,2026-11-27",
                 "work_order_csv", "missing monthlySequence", id="csv-header-missing-column"),
    pytest.param(HEADER.replace("machineNumber", "productCode") + "\n" + WO_ROW,
                 "work_order_csv", "productCode twice", id="csv-header-duplicate"),
    pytest.param('WO-1,"INS-7,BRK-100,M-03,2026-11-27,42', "work_order_csv", "not valid CSV",
                 id="csv-unterminated-quote"),
    # legacy
    pytest.param("BRK-100_A12-3456", "legacy", "3 parts", id="legacy-two-parts"),
    pytest.param("BRK_100_A12-3456_20261127T0800", "legacy", "got 4", id="legacy-four-parts"),
    pytest.param("_A12-3456_20261127T0800", "legacy", "product_code is empty",
                 id="legacy-empty-product"),
    pytest.param("BRK-100__20261127T0800", "legacy", "batch_id is empty", id="legacy-empty-batch"),
    pytest.param("BRK-100_A12-3456_", "legacy", "YYYYMMDDTHHMM", id="legacy-empty-timestamp"),
    pytest.param("BRK-100_A12-3456_2026-11-27T08:00", "legacy", "YYYYMMDDTHHMM",
                 id="legacy-iso-timestamp"),
    pytest.param("BRK-100_A12-3456_20261127", "legacy", "YYYYMMDDTHHMM", id="legacy-date-only"),
    pytest.param("BRK-100_A12-3456_20261332T0800", "legacy", "not a real date",
                 id="legacy-impossible-date"),
    pytest.param("BRK-100_A12-3456_20261127T2460", "legacy", "not a real date",
                 id="legacy-impossible-time"),
    pytest.param("BRK 100_A12-3456_20261127T0800", "legacy", "whitespace",
                 id="legacy-inner-space"),
    pytest.param("BRK-100_A12\n3456_20261127T0800", "legacy", "whitespace",
                 id="legacy-inner-newline"),
    # control characters that no label carries (GS1 group separator, NUL)
    pytest.param("BRK-100\x1dA12-3456_20261127T0800", "legacy", "U+001D",
                 id="legacy-group-separator"),
    pytest.param('{"product_id": "BRK-100", "batch_id": "A12"}\x00', "json", "U+0000",
                 id="json-trailing-nul"),
    # SQL-looking and script-looking text never gets through as an identifier
    pytest.param('{"product_id": "BRK-100\'; DROP TABLE inspection_targets;--", "batch_id": "A"}',
                 "json", "product_id contains \"'\"", id="sql-json-product"),
    pytest.param('{"product_id": "BRK-100", "batch_id": "1 OR 1=1"}', "json",
                 "batch_id contains '='", id="sql-json-batch"),
    pytest.param("BRK-100'--_A12-3456_20261127T0800", "legacy", "product_code contains",
                 id="sql-legacy"),
    pytest.param(wo_csv(productCode="BRK-100; DELETE FROM products"), "work_order_csv",
                 "productCode contains ';'", id="sql-csv"),
    pytest.param("' OR '1'='1", "unknown", "no known format", id="sql-bare"),
    pytest.param('{"product_id": "<script>alert(1)</script>", "batch_id": "A"}', "json",
                 "product_id contains '<'", id="markup-json"),
    pytest.param('{"product_id": "BRK\u202e001", "batch_id": "A"}', "json",
                 "product_id contains", id="bidi-override"),
]


@pytest.mark.parametrize(("text", "looks_like", "message"), INVALID)
def test_invalid_payloads(text: str, looks_like: str, message: str) -> None:
    with pytest.raises(QrPayloadInvalid) as caught:
        parse_payload(text)
    error = caught.value
    assert message in error.message
    assert error.detail["looks_like"] == looks_like
    assert error.code == "qr_payload_invalid"
    assert isinstance(error, InvalidInput) and error.status_code == 400


def test_error_names_the_field_at_fault() -> None:
    with pytest.raises(QrPayloadInvalid) as caught:
        parse_payload(wo_json(productionDate="2026-02-30"))
    assert caught.value.detail["field"] == "productionDate"
    assert caught.value.message.startswith("work-order JSON: ")
