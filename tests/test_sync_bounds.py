"""The server's edge rules as tables: text without control characters, JSON documents jsonb can
hold, numbers and lengths as their columns hold them, access tokens bound to a token generation,
and who may use the admin API (same refusal for everyone, dummy verification, throttling)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from schema import server as s
from sync.bounds import (
    INT32_MAX,
    INT32_MIN,
    INT64_MAX,
    MAX_DATA_BYTES,
    MAX_JSON_DEPTH,
    column_problem,
    control_problem,
    json_problem,
)
from sync.errors import AuthError, RateLimited
from sync.protocol import PushBatch, PushOp
from sync.server import api_admin
from sync.server.admin_auth import REFUSED, AdminGate, AdminRecord, TokenBucket
from sync.server.auth import issue_access_token, verify_access_token


def nested(levels: int) -> dict[str, Any]:
    """A JSON object ``levels`` deep, counting itself."""
    doc: dict[str, Any] = {"leaf": "x"}
    for _ in range(levels - 1):
        doc = {"k": doc}
    return doc


@pytest.mark.parametrize(
    ("text", "single_line_ok", "multi_line_ok"),
    [
        ("BRK-100", True, True),
        ("ブレーキキャリパー", True, True),
        ("tab\tseparated", True, True),
        ("two\nlines", True, True),
        ("windows\r\nlines", False, True),
        ("nul\x00", False, False),
        ("escape\x1b[31m", False, False),
        ("bell\x07", False, False),
        ("form\x0cfeed", False, False),
        ("unit\x1fsep", False, False),
        ("delete\x7f", True, True),  # not C0: PostgreSQL stores it
        ("", True, True),
    ],
)
def test_text_refuses_c0_controls_but_tab_and_newline(
    text: str, single_line_ok: bool, multi_line_ok: bool
) -> None:
    assert (control_problem(text) is None) is single_line_ok
    assert (control_problem(text, multiline=True) is None) is multi_line_ok


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"notes": "ok\tfine\nand more"}, None),
        ({"a": [1, 2.5, True, None, {"b": "c"}]}, None),
        (nested(MAX_JSON_DEPTH), None),
        (nested(MAX_JSON_DEPTH + 1), "nested deeper"),
        ({"list": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]},
         "nested deeper"),
        ({"notes": "ok\x00"}, "NUL"),
        ({"a": {"b": ["x", "y\x00z"]}}, "NUL"),
        ({"ke\x00y": 1}, "NUL"),
        ({"n": 2**63}, "out of range"),
        ({"n": -(2**63) - 1}, "out of range"),
        ({"n": INT64_MAX}, None),
        ({"blob": "x" * (MAX_DATA_BYTES - 20)}, None),
        ({"blob": "x" * MAX_DATA_BYTES}, "over the limit"),
        # Size is bytes as sent: three bytes per character here.
        ({"blob": "検" * (MAX_DATA_BYTES // 3)}, "over the limit"),
    ],
)
def test_json_documents_are_bounded(document: dict[str, Any], problem: str | None) -> None:
    found = json_problem(document)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_a_hostile_nesting_is_refused_without_recursion() -> None:
    doc: Any = "x"
    for _ in range(100_000):
        doc = [doc]
    found = json_problem({"d": doc})
    assert found is not None and "nested deeper" in found


TABLE = {
    "users": s.User.__table__,  # type: ignore[attr-defined]
    "devices": s.Device.__table__,  # type: ignore[attr-defined]
    "items": s.InspectionItemMaster.__table__,  # type: ignore[attr-defined]
    "targets": s.InspectionTargetMaster.__table__,  # type: ignore[attr-defined]
    "queue": s.TauriSyncQueue.__table__,  # type: ignore[attr-defined]
}


@pytest.mark.parametrize(
    ("table", "column", "value", "fits"),
    [
        ("users", "username", "u" * 150, True),
        ("users", "username", "u" * 151, False),
        ("users", "email", "e" * 1000, False),
        ("users", "full_name", "田中\x00", False),
        ("users", "full_name", "田中\r", False),
        ("targets", "description", "line one\r\nline two", True),
        ("targets", "description", "d" * 10_001, False),
        ("targets", "version", "v" * 50, True),
        ("targets", "version", "v" * 300, False),
        ("items", "order_sequence", INT32_MAX, True),
        ("items", "order_sequence", INT32_MAX + 1, False),
        ("items", "order_sequence", INT32_MIN - 1, False),
        ("items", "criteria", {"m": "x\x00"}, False),
        ("devices", "last_applied_seq", INT64_MAX, True),
        ("devices", "last_applied_seq", INT64_MAX + 1, False),
        ("queue", "retry_count", 2**40, False),
        ("queue", "app_version", "a" * 51, False),
        ("users", "username", None, True),
    ],
)
def test_values_are_held_to_their_columns(table: str, column: str, value: Any,
                                          fits: bool) -> None:
    assert (column_problem(TABLE[table].c[column], value) is None) is fits


@pytest.mark.parametrize(
    ("text", "fits"),
    [("(01)0456\x1d(10)A12", True), ("tab\there", True), ("nul\x00", False),
     ("q" * 10_001, False)],
)
def test_device_data_is_refused_only_what_postgresql_cannot_store(text: str, fits: bool) -> None:
    column = s.InspectionTarget.__table__.c.qr_code  # type: ignore[attr-defined]
    assert (column_problem(column, text, controls=False) is None) is fits


def _max_length(model: type[BaseModel], field: str) -> int:
    schema = model.model_json_schema()["properties"][field]
    for option in schema.get("anyOf", [schema]):
        if "maxLength" in option:
            return int(option["maxLength"])
    raise AssertionError(f"{model.__name__}.{field} has no maxLength")


@pytest.mark.parametrize(
    ("model", "field", "table", "column"),
    [
        (PushOp, "entity_type", "queue", "entity_type"),
        (PushOp, "device_id", "queue", "device_id"),
        (PushOp, "app_version", "queue", "app_version"),
        (PushBatch, "device_id", "queue", "device_id"),
        (PushBatch, "app_version", "queue", "app_version"),
        (api_admin.DeviceIn, "name", "devices", "name"),
        (api_admin.TargetIn, "product_code", "targets", "product_code"),
        (api_admin.TargetIn, "product_name", "targets", "product_name"),
        (api_admin.TargetIn, "version", "targets", "version"),
        (api_admin.TargetPatch, "version", "targets", "version"),
        (api_admin.ItemIn, "item_code", "items", "item_code"),
        (api_admin.ItemIn, "item_name", "items", "item_name"),
        (api_admin.ItemIn, "inspection_type", "items", "inspection_type"),
        (api_admin.ItemPatch, "item_code", "items", "item_code"),
        (api_admin.UserIn, "username", "users", "username"),
        (api_admin.UserIn, "role", "users", "role"),
        (api_admin.UserIn, "full_name", "users", "full_name"),
        (api_admin.UserIn, "email", "users", "email"),
        (api_admin.UserPatch, "email", "users", "email"),
    ],
)
def test_request_bodies_are_bounded_as_their_columns(
    model: type[BaseModel], field: str, table: str, column: str
) -> None:
    assert _max_length(model, field) == TABLE[table].c[column].type.length


def _op(**changes: Any) -> str:
    op = {"seq": 1, "op_id": str(uuid.uuid4()), "entity_type": "inspection_target",
          "entity_id": str(uuid.uuid4()), "operation": "INSERT", "data": {"a": "b"}}
    return json.dumps({**op, **changes})


@pytest.mark.parametrize(
    ("changes", "fits"),
    [
        ({"seq": INT64_MAX}, True),
        ({"seq": INT64_MAX + 1}, False),
        ({"seq": 2**64}, False),
        ({"priority": INT32_MAX}, True),
        ({"priority": INT32_MIN}, True),
        ({"priority": INT32_MAX + 1}, False),
        ({"priority": 2**63}, False),
        ({"retry_count": INT32_MAX}, True),
        ({"retry_count": 2**40}, False),
        ({"app_version": "1" * 50}, True),
        ({"app_version": "1" * 51}, False),
        ({"app_version": "0.1\x00"}, False),
        ({"device_id": "dev\x1b"}, False),
        ({"entity_type": "inspection_target\x00"}, False),
        ({"data": {"notes": "a\x00"}}, False),
        ({"data": nested(MAX_JSON_DEPTH)}, True),
        ({"data": nested(MAX_JSON_DEPTH + 1)}, False),
        ({"data": {"blob": "x" * MAX_DATA_BYTES}}, False),
    ],
)
def test_push_operations_are_bounded(changes: dict[str, Any], fits: bool) -> None:
    if fits:
        PushOp.model_validate_json(_op(**changes))
    else:
        with pytest.raises(ValidationError):
            PushOp.model_validate_json(_op(**changes))


# --- access tokens ---------------------------------------------------------------------------

SECRET = b"s" * 32
DEVICE = uuid.UUID("12345678-1234-5678-1234-567812345678")


def test_access_tokens_carry_the_token_generation() -> None:
    token = issue_access_token(SECRET, DEVICE, 7, 2_000)
    claim = verify_access_token(SECRET, token, 1_000)
    assert (claim.device_id, claim.generation) == (DEVICE, 7)


@pytest.mark.parametrize(
    "token",
    [
        # the earlier form without a generation
        f"{DEVICE.hex}.2000.c2lnbmF0dXJl",
        f"{DEVICE.hex}.x.2000.c2lnbmF0dXJl",
        "a.b.c.d.e",
        "",
        # a generation changed by hand: the signature no longer matches
        issue_access_token(SECRET, DEVICE, 7, 2_000).replace(".7.", ".8.", 1),
        issue_access_token(b"other" * 8, DEVICE, 7, 2_000),
    ],
)
def test_malformed_or_altered_access_tokens_are_refused(token: str) -> None:
    with pytest.raises(AuthError):
        verify_access_token(SECRET, token, 1_000)


# --- the admin gate --------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class Verifier:
    """Counts argon2 verifications; a hash 'matches' the password it names."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, password_hash: str, password: str) -> bool:
        self.calls.append((password_hash, password))
        return password_hash == f"hash-of:{password}"


def gate(burst: int = 100, refill_s: float = 10.0) -> tuple[AdminGate, Verifier, Clock]:
    verifier, clock = Verifier(), Clock()
    return AdminGate(verify=verifier, dummy_hash=lambda: "dummy-hash", burst=burst,
                     refill_s=refill_s, clock=clock), verifier, clock


ADMIN = AdminRecord(password_hash="hash-of:right", role="admin", is_active=True, deleted=False)


@pytest.mark.parametrize(
    ("record", "password"),
    [
        (None, "right"),
        (ADMIN, "wrong"),
        (AdminRecord("hash-of:right", "inspector", True, False), "right"),
        (AdminRecord("hash-of:right", "admin", False, False), "right"),
        (AdminRecord("hash-of:right", "admin", True, True), "right"),
    ],
    ids=["unknown user", "wrong password", "not an admin", "deactivated", "deleted"],
)
def test_every_refusal_is_the_same_and_costs_a_verification(
    record: AdminRecord | None, password: str
) -> None:
    admin_gate, verifier, _ = gate()
    with pytest.raises(AuthError) as refused:
        admin_gate.check("someone", password, "10.0.0.1", record)
    assert refused.value.message == REFUSED and refused.value.status_code == 401
    assert len(verifier.calls) == 1
    expected_hash = "dummy-hash" if record is None else record.password_hash
    assert verifier.calls[0] == (expected_hash, password)


def test_the_cache_keeps_only_the_verification_and_never_the_role() -> None:
    admin_gate, verifier, clock = gate()
    admin_gate.check("chief", "right", "10.0.0.1", ADMIN)
    admin_gate.check("chief", "right", "10.0.0.1", ADMIN)
    assert len(verifier.calls) == 1
    demoted = AdminRecord(ADMIN.password_hash, "inspector", True, False)
    with pytest.raises(AuthError):
        admin_gate.check("chief", "right", "10.0.0.1", demoted)
    # A new password hash is a new key: the old password is verified again, and fails.
    changed = AdminRecord("hash-of:new", "admin", True, False)
    with pytest.raises(AuthError):
        admin_gate.check("chief", "right", "10.0.0.1", changed)
    clock.now += 61
    calls = len(verifier.calls)
    admin_gate.check("chief", "right", "10.0.0.1", ADMIN)
    assert len(verifier.calls) == calls + 1


@pytest.mark.parametrize(
    ("failures", "then_user", "then_client", "throttled"),
    [
        (3, "chief", "10.0.0.1", True),     # the same user from the same address
        (3, "chief", "10.0.0.9", True),     # the same user from elsewhere
        (3, "other", "10.0.0.1", True),     # another user from the same address
        (3, "other", "10.0.0.9", False),    # neither
        (2, "chief", "10.0.0.1", False),    # under the burst
    ],
)
def test_failures_are_throttled_per_user_and_per_address(
    failures: int, then_user: str, then_client: str, throttled: bool
) -> None:
    admin_gate, _, clock = gate(burst=3, refill_s=10.0)
    for _ in range(failures):
        with pytest.raises(AuthError):
            admin_gate.check("chief", "wrong", "10.0.0.1", ADMIN)
    record = ADMIN if then_user == "chief" else AdminRecord("hash-of:x", "admin", True, False)
    password = "right" if then_user == "chief" else "x"
    if throttled:
        with pytest.raises(RateLimited) as limited:
            admin_gate.check(then_user, password, then_client, record)
        assert limited.value.retry_after is not None and 1 <= limited.value.retry_after <= 10
        clock.now += limited.value.retry_after
    admin_gate.check(then_user, password, then_client, record)


def test_token_buckets_refill_and_forget_idle_keys() -> None:
    clock = Clock()
    buckets = TokenBucket(burst=2, refill_s=5.0, clock=clock, max_keys=3)
    buckets.take("a")
    buckets.take("a")
    assert buckets.wait_s("a") == pytest.approx(5.0)
    clock.now += 2.5
    assert buckets.wait_s("a") == pytest.approx(2.5)
    clock.now += 2.5
    assert buckets.wait_s("a") == 0.0
    for key in ("b", "c", "d", "e"):
        buckets.take(key)
    clock.now += 100
    buckets.take("f")
    assert len(buckets._tokens) <= 3
