"""What the UI needs to know of an inspection, answered by the real sidecar so the UI does not
decide it again: whether it may complete and which items keep it open, whether it is closed and
each item done, whether each item may be skipped or retried and what a verdict on it must carry,
and each item's criteria in words in both of the UI's languages."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.seed import PASSWORD, seed_device
from tests.support.sidecar import SidecarProcess

CODES = ("V-SCRATCH", "V-FOREIGN", "T-MARKING", "D-BORE", "F-PISTON")  # F-PISTON is optional
OK = {"final_result": "OK", "verification_time": 1.0}


@pytest.fixture(scope="module")
def inspector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    data = tmp_path_factory.mktemp("tablet")
    seed_device(data / "kensa.db")
    sidecar = SidecarProcess(data, env={"KENSA_AI_WORKERS": "0", "KENSA_SYNC_ENABLED": "0"})
    sidecar.start()
    try:
        with sidecar.client() as client:
            login = client.post("/auth/login", json={"username": "tanaka", "password": PASSWORD})
            assert login.status_code == 200, login.text
            client.headers["X-Kensa-Session"] = login.json()["token"]
            yield client
    finally:
        sidecar.kill()


def _start(client: httpx.Client, serial: str) -> dict[str, Any]:
    qr = json.dumps({"product_id": "BRK-100", "batch_id": "A12-3456", "serial": serial})
    answer = client.post("/sessions", json={"qr_code": qr})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


# (verified items, skipped items, can complete, missing items)
COMPLETION = {
    "nothing judged yet": ((), (), False, CODES),
    "every item verified": (CODES, (), True, ()),
    "required verified, optional skipped": (CODES[:4], ("F-PISTON",), True, ()),
    "optional left open": (CODES[:4], (), False, ("F-PISTON",)),
    "one required left": (("V-SCRATCH", "V-FOREIGN", "T-MARKING"), ("F-PISTON",), False,
                          ("D-BORE",)),
}


@pytest.mark.parametrize(("verified", "skipped", "can_complete", "missing"),
                         COMPLETION.values(), ids=COMPLETION.keys())
def test_the_inspection_says_whether_it_can_complete_and_what_keeps_it_open(
    inspector: httpx.Client, verified: tuple[str, ...],
    skipped: tuple[str, ...], can_complete: bool, missing: tuple[str, ...],
) -> None:
    started = _start(inspector, f"S-{uuid.uuid4().hex[:12]}")
    ids = {i["item_code"]: i["item_id"] for i in started["items"]}
    for code in verified:
        answer = inspector.post(
            f"/sessions/{started['id']}/items/{ids[code]}/verification", json=OK)
        assert answer.status_code == 201, answer.text
    for code in skipped:
        answer = inspector.post(f"/sessions/{started['id']}/items/{ids[code]}/skip")
        assert answer.status_code == 200, answer.text
    detail = inspector.get(f"/sessions/{started['id']}").json()
    assert detail["can_complete"] is can_complete
    assert detail["missing_items"] == list(missing)
    assert detail["closed"] is False
    assert {i["item_code"]: i["done"] for i in detail["items"]} == {
        code: code in verified or code in skipped for code in CODES
    }
    completed = inspector.post(f"/sessions/{started['id']}/complete")
    if can_complete:
        assert completed.status_code == 200, completed.text
        assert completed.json()["closed"] is True and completed.json()["can_complete"] is False
    else:
        assert completed.status_code == 409


CRITERIA = {
    "V-SCRATCH": ("Defect probability < 0.5 · review band 0.3–0.7",
                  "不良の確率 < 0.5 · 要確認帯 0.3〜0.7"),
    "V-FOREIGN": ("Anomaly score < 6.192", "異常度 < 6.192"),
    "T-MARKING": ("Text read in the expected form, naming the lot number",
                  "読み取った文字が所定の書式でロット番号と一致"),
    "D-BORE": ("Bore diameter 11.95–12.05 mm", "穴径 11.95〜12.05 mm"),
    "F-PISTON": ("Operation: yes", "作動: はい"),
}


def test_each_item_says_how_it_is_judged_in_both_languages(inspector: httpx.Client) -> None:
    detail = _start(inspector, "S-criteria")
    texts = {i["item_code"]: i["criteria_text"] for i in detail["items"]}
    assert texts == {code: {"en": en, "ja": ja} for code, (en, ja) in CRITERIA.items()}
    # The scanned unit's item list, before an inspection starts, says the same.
    scanned = inspector.post("/scan/text", json={"text": json.dumps(
        {"product_id": "BRK-100", "batch_id": "A12-3456", "serial": "S-scan"})})
    assert scanned.status_code == 200, scanned.text
    assert {i["item_code"]: i["criteria_text"] for i in scanned.json()["items"]} == texts


def _offers(client: httpx.Client, session_id: str) -> dict[str, tuple[bool, bool]]:
    detail = client.get(f"/sessions/{session_id}").json()
    return {i["item_code"]: (i["can_skip"], i["can_retry"]) for i in detail["items"]}


def test_each_item_says_whether_it_may_be_skipped_or_retried(inspector: httpx.Client) -> None:
    started = _start(inspector, f"S-{uuid.uuid4().hex[:12]}")
    sid, ids = started["id"], {i["item_code"]: i["item_id"] for i in started["items"]}
    # (can_skip, can_retry): only the optional item may be skipped; nothing failed or skipped yet.
    assert _offers(inspector, sid) == {code: (code == "F-PISTON", False) for code in CODES}
    assert inspector.post(f"/sessions/{sid}/items/{ids['D-BORE']}/skip").status_code == 409
    assert inspector.post(f"/sessions/{sid}/items/{ids['D-BORE']}/retry").status_code == 409

    assert inspector.post(f"/sessions/{sid}/items/{ids['F-PISTON']}/skip").status_code == 200
    assert inspector.post(
        f"/sessions/{sid}/items/{ids['V-SCRATCH']}/verification", json=OK).status_code == 201
    offers = _offers(inspector, sid)
    assert offers["F-PISTON"] == (False, True)  # skipped: it may go back to be judged
    assert offers["V-SCRATCH"] == (False, False)  # verified
    assert inspector.post(f"/sessions/{sid}/items/{ids['V-SCRATCH']}/retry").status_code == 409

    retried = inspector.post(f"/sessions/{sid}/items/{ids['F-PISTON']}/retry")
    assert retried.status_code == 200, retried.text
    assert _offers(inspector, sid)["F-PISTON"] == (True, False)

    for code in ("V-FOREIGN", "T-MARKING", "D-BORE"):
        assert inspector.post(
            f"/sessions/{sid}/items/{ids[code]}/verification", json=OK).status_code == 201
    assert inspector.post(f"/sessions/{sid}/items/{ids['F-PISTON']}/skip").status_code == 200
    assert inspector.post(f"/sessions/{sid}/complete").status_code == 200
    # Closed: nothing in it may move any more, and nothing is offered.
    assert set(_offers(inspector, sid).values()) == {(False, False)}
    assert inspector.post(f"/sessions/{sid}/items/{ids['F-PISTON']}/retry").status_code == 409


def test_each_item_says_what_a_verdict_must_carry(inspector: httpx.Client) -> None:
    started = _start(inspector, f"S-{uuid.uuid4().hex[:12]}")
    needs = {i["item_code"]: i["verdict_needs"] for i in started["items"]}
    rule = {"OK": [], "NG": ["defect_types", "severity"], "PENDING": []}
    assert needs == {code: rule for code in CODES}
    # What the form is told is what the sidecar holds it to: each need left out is refused.
    url = f"/sessions/{started['id']}/items/{started['items'][0]['item_id']}/verification"
    ng = {"final_result": "NG", "defect_types": ["scratch"], "severity": "major"}
    for field in rule["NG"]:
        refused = inspector.post(url, json={**ng, field: None})
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["detail"] == {"field": field}
    assert inspector.post(url, json=ng).status_code == 201
