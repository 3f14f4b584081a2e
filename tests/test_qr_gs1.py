"""GS1 element strings (GS1-128, GS1 DataMatrix, GS1 QR) in every spelling a scan produces."""

from __future__ import annotations

from datetime import date

import pytest

from sidecar.errors import QrPayloadInvalid
from sidecar.qr.payload import parse_gs1, parse_payload

GTIN = "09501101530003"  # GS1's own example GTIN: check digit 3
HRI = f"(01){GTIN}(17)261231(10)ABC123(21)S1"
FIELDS = {"gtin": GTIN, "expiry": "2026-12-31", "batch": "ABC123", "serial": "S1"}


@pytest.mark.parametrize("text", [
    HRI,
    f"]C101{GTIN}17261231" "10ABC123\x1d21S1",         # GS1-128 with its AIM identifier
    f"]d201{GTIN}17261231" "10ABC123\x1d21S1",         # GS1 DataMatrix
    f"]Q301{GTIN}17261231" "10ABC123\x1d21S1",         # GS1 QR
    f"\x1d01{GTIN}17261231" "10ABC123\x1d21S1",        # FNC1 sent as a group separator
    f"\x1d01{GTIN}\x1d17261231\x1d10ABC123\x1d21S1\r\n",  # separators after fixed elements too
    f"(01){GTIN}(10)ABC123(17)261231(21)S1",          # any element order
], ids=["hri", "aim-128", "aim-datamatrix", "aim-qr", "fnc1-gs", "gs-everywhere", "order"])
def test_gs1_spellings_give_the_same_unit(text: str) -> None:
    unit = parse_payload(text)
    assert (unit.format, unit.product_code, unit.batch_id, unit.serial) == (
        "gs1", GTIN, "ABC123", "S1")
    assert unit.fields == FIELDS | {k: v for k, v in unit.fields.items() if k not in FIELDS}
    assert {k: unit.fields[k] for k in FIELDS} == FIELDS


def test_bare_decoder_text_and_printed_form() -> None:
    parsed = parse_gs1(f"01{GTIN}17261231" "10ABC123\x1d21S1", bare=True)
    assert parsed.hri == HRI
    assert (parsed.gtin, parsed.batch, parsed.serial) == (GTIN, "ABC123", "S1")
    assert parsed.expiry == date(2026, 12, 31)


def test_serial_names_the_unit_without_a_batch() -> None:
    unit = parse_payload(f"(01){GTIN}(21)0098172")
    assert (unit.batch_id, unit.serial) == ("0098172", "0098172")


def test_day_zero_is_the_last_day_of_the_month() -> None:
    assert parse_gs1(f"(01){GTIN}(17)270200(10)A").expiry == date(2027, 2, 28)


def test_other_elements_are_kept_by_name() -> None:
    unit = parse_payload(f"(01){GTIN}(10)L1(11)260115(3103)001250(240)PART-7(91)X")
    assert unit.fields["production_date"] == "2026-01-15"
    assert unit.fields["measure_3103"] == "001250"
    assert unit.fields["additional_id"] == "PART-7"
    assert unit.fields["internal_91"] == "X"


@pytest.mark.parametrize(("text", "message", "field"), [
    ("(01)09501101530004(10)A", "check digit 4 is wrong, expected 3", "01"),
    (f"(01){GTIN[:-1]}(10)A", "(01) gtin at position 0 must be 14 characters, got 13", "01"),
    (f"(01){GTIN}(17)261340(10)A", "(17) expiry '261340' is not a real date", "17"),
    (f"(01){GTIN}(17)2612(10)A", "must be 6 characters", "17"),
    (f"(01){GTIN}", "neither a batch/lot (10) nor a serial (21)", "10"),
    ("(10)ABC(21)1", "has no GTIN (01)", "01"),
    (f"(01){GTIN}(10)", "(10) batch at position 18 is empty", "10"),
    (f"(01){GTIN}(10){'A' * 21}", "(10) batch at position 18 is longer than 20", "10"),
    (f"(01){GTIN}(10)A B", "contains ' ', which GS1 does not allow", "10"),
    (f"(01){GTIN}(10)A(10)B", "appears twice", "10"),
    (f"(01){GTIN}(89)X", "unknown application identifier (89)", "89"),
    (f"]C101{GTIN}89X", "unknown application identifier '89X' at position 16", "89X"),
    ("(01)0950110153000A(10)A", "must be digits", "01"),
], ids=["check-digit", "short-gtin", "bad-date", "short-date", "no-unit", "no-gtin",
        "empty-batch", "long-batch", "space", "twice", "unknown-ai-hri",
        "unknown-ai-raw", "letters-in-gtin"])
def test_malformed_gs1_names_the_element(text: str, message: str, field: str) -> None:
    with pytest.raises(QrPayloadInvalid) as caught:
        parse_payload(text)
    assert message in caught.value.message
    assert caught.value.message.startswith("GS1 element string: ")
    assert caught.value.detail == {"looks_like": "gs1", "field": field}


def test_bare_text_needs_the_decoder_to_say_it_is_gs1() -> None:
    with pytest.raises(QrPayloadInvalid, match="symbology identifier, FNC1 or an"):
        parse_gs1(f"01{GTIN}10A")
    # Plain digits are no known format: a GTIN alone names no unit.
    with pytest.raises(QrPayloadInvalid, match="matches no known format"):
        parse_payload(f"01{GTIN}10A")
