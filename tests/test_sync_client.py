"""The device side against a scripted server (httpx.MockTransport): push, errors, backoff,
re-authentication, setting operations aside, the status the UI shows — and no token in the logs."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from schema import device as d
from schema.db import Database
from sync.device.service import SyncService
from sync.errors import ServerUnavailable
from sync.policy import BackoffPolicy

TOKEN = "kd_super-secret-device-token-value"
DEVICE_ID = str(uuid.uuid4())

Responder = Callable[[dict[str, Any]], httpx.Response]


def ok_push(body: dict[str, Any]) -> httpx.Response:
    seqs = [op["seq"] for op in body["ops"]]
    return httpx.Response(200, json={"applied_through_seq": seqs[-1], "stored": len(seqs),
                                     "duplicates": 0, "last_applied_seq": max(seqs)})


def error(status: int, code: str = "x", detail: dict[str, Any] | None = None,
          headers: dict[str, str] | None = None) -> Responder:
    def respond(_: dict[str, Any]) -> httpx.Response:
        return httpx.Response(status, headers=headers,
                              json={"error": {"code": code, "message": f"{code}!",
                                              "detail": detail or {}}})
    return respond


@dataclass
class FakeServer:
    """Answers the sync API; push answers come from ``push_script`` (then success)."""

    push_script: list[Responder] = field(default_factory=list)
    auth_status: int = 200
    access_tokens: int = 0
    expired: set[str] = field(default_factory=set)
    pushes: list[dict[str, Any]] = field(default_factory=list)
    headers: list[httpx.Headers] = field(default_factory=list)
    # The pull's one page, when a test needs it to carry something.
    changes: dict[str, Any] | None = None
    # Refusals reported after storing (served once, from the start of the cursor).
    refused: list[dict[str, Any]] = field(default_factory=list)

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.headers.append(request.headers)
        if path == "/sync/v1/ping":
            return httpx.Response(200, json={"ok": True})
        if path == "/sync/v1/auth":
            if request.headers.get("authorization") != f"Bearer {TOKEN}" \
                    or self.auth_status != 200:
                return error(401, "unauthorized")({})
            self.access_tokens += 1
            return httpx.Response(200, json={
                "access_token": f"access-{self.access_tokens}", "expires_in": 60,
                "device_id": DEVICE_ID, "device_name": "TAB-01", "device_type": "tablet",
                "last_applied_seq": 0})
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if not bearer.startswith("access-") or bearer in self.expired:
            return error(401, "token_expired")({})
        if path == "/sync/v1/push":
            body = json.loads(request.content)
            self.pushes.append(body)
            respond = self.push_script.pop(0) if self.push_script else ok_push
            return respond(body)
        if path == "/sync/v1/changes":
            return httpx.Response(200, json=self.changes or {
                "changes": [], "cursor": "e:0", "has_more": False})
        if path == "/sync/v1/conflicts":
            after = int(request.url.params.get("after", "0"))
            page = [r for r in self.refused if r["id"] > after]
            return httpx.Response(200, json={
                "conflicts": page, "cursor": max([r["id"] for r in page], default=after)})
        if path == "/sync/v1/files/missing":
            return httpx.Response(200, json={"missing": []})
        return httpx.Response(404)


def add_ops(db: Database, n: int, priority: int = 0) -> list[int]:
    with db.atomic() as session:
        rows = [d.Outbox(entity_type="inspection_session", entity_id=str(uuid.uuid4()),
                         operation="INSERT", data={"i": i, "pad": "x" * 50}, priority=priority)
                for i in range(n)]
        session.add_all(rows)
        session.flush()
        return [r.seq for r in rows if r.seq is not None]


def service(db: Database, tmp_path: Path, server: FakeServer, **kwargs: Any) -> SyncService:
    sync = SyncService(db, tmp_path, "0.1.0", "tablet",
                       transport=httpx.MockTransport(server.handler),
                       backoff=BackoffPolicy(base=1.0, cap=60.0), rand=lambda: 0.5, **kwargs)
    result = sync.connect("https://server.test:8400/", TOKEN)
    assert result.verified and result.device_name == "TAB-01"
    return sync


def outbox_seqs(db: Database) -> list[int]:
    with db.read() as session:
        return sorted(r.seq for r in session.exec(select(d.Outbox)) if r.seq is not None)


def test_push_sends_batches_and_deletes_only_what_was_applied(
    device_db: Database, tmp_path: Path
) -> None:
    server = FakeServer()
    sync = service(device_db, tmp_path, server, batch_size=4)
    add_ops(device_db, 10)
    report = sync.run_once()
    assert report.ok and report.pushed == 10
    assert [len(p["ops"]) for p in server.pushes] == [4, 4, 2]
    first = server.pushes[0]
    assert (first["device_id"], first["device_type"], first["app_version"]) == (
        DEVICE_ID, "tablet", "0.1.0")
    assert [op["seq"] for p in server.pushes for op in p["ops"]] == list(range(1, 11))
    assert outbox_seqs(device_db) == []
    push_headers = [h for h in server.headers if "x-kensa-device-time" in h]
    assert push_headers, "pushes carry the device clock for skew correction"
    status = sync.status()
    assert status.configured and status.online and status.pending_rows == 0
    assert status.device_id == DEVICE_ID and status.last_success_at is not None


@pytest.mark.parametrize(
    ("failure", "kind", "retry_after"),
    [
        (error(503, "busy"), "server_error", None),
        (error(429, "slow_down", headers={"Retry-After": "17"}), "rate_limited", 17.0),
        (lambda _: httpx.Response(200, content=b'{"applied_through'), "bad_answer", None),
    ],
)
def test_transient_failures_keep_the_queue_and_back_off(
    device_db: Database, tmp_path: Path, failure: Responder, kind: str,
    retry_after: float | None,
) -> None:
    server = FakeServer(push_script=[failure])
    sync = service(device_db, tmp_path, server)
    seqs = add_ops(device_db, 3)
    before = time.monotonic()
    report = sync.run_once()
    assert not report.ok and report.error_kind == kind
    assert outbox_seqs(device_db) == seqs
    with device_db.read() as session:
        assert all(r.retry_count == 1 and r.last_retry_at for r in session.exec(select(d.Outbox)))
    delay = sync.schedule.next_run_at - before
    assert delay >= (retry_after or 0.1)
    status = sync.status()
    assert status.last_error_kind == kind and status.pending_rows == 3
    assert status.consecutive_failures == 1 and status.next_attempt_in_s is not None
    # Next run succeeds: the same rows go again and the backoff resets.
    assert sync.run_once().pushed == 3
    assert outbox_seqs(device_db) == [] and sync.schedule.failures == 0


def test_network_failure_marks_offline_and_schedules_a_retry(
    device_db: Database, tmp_path: Path
) -> None:
    def down(_: dict[str, Any]) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    server = FakeServer(push_script=[down])
    sync = service(device_db, tmp_path, server)
    add_ops(device_db, 2)
    report = sync.run_once()
    assert report.error_kind == "offline"
    status = sync.status()
    assert status.online is False and status.pending_rows == 2
    assert sync.schedule.next_run_at > time.monotonic() - 1


def test_expired_access_token_re_authenticates_and_keeps_going(
    device_db: Database, tmp_path: Path
) -> None:
    server = FakeServer()
    sync = service(device_db, tmp_path, server)
    add_ops(device_db, 2)
    assert sync.run_once().pushed == 2
    server.expired.add("access-2")  # the one the service holds now
    add_ops(device_db, 2)
    report = sync.run_once()
    assert report.ok and report.pushed == 2 and server.access_tokens == 3


def test_a_refused_device_token_keeps_the_queue(device_db: Database, tmp_path: Path) -> None:
    server = FakeServer()
    sync = service(device_db, tmp_path, server)
    seqs = add_ops(device_db, 3)
    server.auth_status = 401
    server.expired.update(f"access-{i}" for i in range(10))
    report = sync.run_once()
    assert not report.ok and report.error_kind in ("unauthorized", "token_expired")
    assert outbox_seqs(device_db) == seqs
    assert sync.schedule.next_run_at > 0  # retried later, not dropped
    server.auth_status = 200
    server.expired.clear()
    assert sync.run_once().pushed == 3


def test_an_operation_the_server_names_is_set_aside_and_the_rest_go(
    device_db: Database, tmp_path: Path
) -> None:
    seqs = add_ops(device_db, 5)
    bad = seqs[2]

    def reject(body: dict[str, Any]) -> httpx.Response:
        op = next(o for o in body["ops"] if o["seq"] == bad)
        return error(422, "operation_rejected", {"rejected": [
            {"seq": bad, "op_id": op["op_id"], "reason": "unknown entity_type 'x'"}]})(body)

    server = FakeServer(push_script=[reject])
    sync = service(device_db, tmp_path, server)
    report = sync.run_once()
    assert report.ok and report.pushed == 4 and report.set_aside == 1
    status = sync.status()
    assert [(s.seq, s.reason) for s in status.set_aside] == [(bad, "unknown entity_type 'x'")]
    assert status.pending_rows == 0
    assert bad not in [op["seq"] for op in server.pushes[-1]["ops"]]


def test_an_unnamed_refusal_is_narrowed_down_to_one_operation(
    device_db: Database, tmp_path: Path
) -> None:
    seqs = add_ops(device_db, 4)
    bad = seqs[1]

    def picky(body: dict[str, Any]) -> httpx.Response:
        if any(op["seq"] == bad for op in body["ops"]):
            return error(400, "invalid_request")(body)
        return ok_push(body)

    server = FakeServer(push_script=[picky] * 20)
    sync = service(device_db, tmp_path, server)
    report = sync.run_once()
    assert report.ok and report.pushed == 3 and report.set_aside == 1
    assert [s.seq for s in sync.status().set_aside] == [bad]


@pytest.mark.parametrize("status", [400, 403, 404, 405, 422])
def test_an_answer_that_is_not_the_servers_sets_nothing_aside(
    device_db: Database, tmp_path: Path, status: int
) -> None:
    # A proxy or a captive portal in the way answers every batch the same: before, a 400 sent
    # the pusher to one operation at a time, and each was set aside for good in turn.
    def proxy(_: dict[str, Any]) -> httpx.Response:
        return httpx.Response(status, headers={"Content-Type": "text/html"},
                              content=b"<html><body>Bad Request</body></html>")

    server = FakeServer(push_script=[proxy] * 20)
    sync = service(device_db, tmp_path, server)
    seqs = add_ops(device_db, 4)
    report = sync.run_once()
    assert not report.ok and report.set_aside == 0
    assert sync.status().set_aside == []
    assert outbox_seqs(device_db)[-4:] == seqs
    assert len(server.pushes) == 1  # backed off, not narrowed down
    # Once the way is clear, everything goes.
    server.push_script.clear()
    sync.schedule.next_run_at = 0
    assert sync.run_once().ok
    assert not set(seqs) & set(outbox_seqs(device_db))


def test_a_run_that_fails_on_the_tablets_side_is_shown_as_failed(
    device_db: Database, tmp_path: Path
) -> None:
    # A pulled item whose target the tablet does not have: SQLite refuses the page (a foreign
    # key), which is no SyncError. Before, the status kept saying "online, no error" while the
    # pull made no progress, run after run.
    item = str(uuid.uuid4())
    server = FakeServer(changes={
        "changes": [{"cursor": "e:1", "entity_type": "item", "entity_id": item, "op": "UPSERT",
                     "data": {"id": item, "target_id": str(uuid.uuid4()), "item_code": "X",
                              "item_name": "x", "inspection_type": "VISUAL", "criteria": {},
                              "order_sequence": 1}}],
        "cursor": "e:1", "has_more": False})
    sync = service(device_db, tmp_path, server)
    report = sync.run_once()
    assert not report.ok and report.error_kind == "local_error"
    assert "FOREIGN KEY" in (report.error or "")
    status = sync.status()
    assert status.last_error_kind == "local_error"
    assert sync.schedule.failures == 1  # backed off like any failed run


def test_a_refusal_of_an_operation_still_in_the_outbox_sets_it_aside_there(
    device_db: Database, tmp_path: Path
) -> None:
    # Pushed, stored and dead-lettered by the server, its answer lost: the row is still here
    # when the refusal arrives. Before, the refusal was ignored for it and the next push
    # dropped it as delivered.
    server = FakeServer()
    sync = service(device_db, tmp_path, server)
    [seq] = add_ops(device_db, 1)
    with device_db.read() as session:
        row = session.get(d.Outbox, seq)
        assert row is not None
        op_id, entity_id = row.op_id, row.entity_id
    server.refused.append({
        "id": 1, "seq": seq, "op_id": op_id, "entity_type": "inspection_session",
        "entity_id": entity_id, "operation": "INSERT", "reason": "gave up after 25 attempts",
        "data": {}, "kind": "dead_letter", "reason_code": "gave_up_waiting"})
    report = sync.run_once(budget_s=0)  # the push stops before sending anything again
    assert report.set_aside == 1
    [aside] = sync.status().set_aside
    assert (aside.seq, aside.op_id) == (seq, op_id)
    assert (aside.reason or "").startswith("dead_letter: gave up")
    # Set aside, it is not pushed again.
    server.pushes.clear()
    sync.schedule.next_run_at = 0
    assert sync.run_once().ok and server.pushes == []


def _enrolling(server: FakeServer, auth_failures: int) -> Callable[[httpx.Request], httpx.Response]:
    """The fake server with /enroll (the code buys ``TOKEN``), and /auth failing with 503
    ``auth_failures`` times first."""
    failed = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal failed
        if request.url.path == "/sync/v1/enroll":
            return httpx.Response(200, json={"device_token": TOKEN, "device_id": DEVICE_ID,
                                             "device_name": "TAB-01", "device_type": "tablet"})
        if request.url.path == "/sync/v1/auth" and failed < auth_failures:
            failed += 1
            return error(503, "unavailable")({})
        return server.handler(request)

    return handler


@pytest.mark.parametrize("failures", [1, 2])
def test_a_connection_that_fails_right_after_enrolling_is_tried_again(
    device_db: Database, tmp_path: Path, failures: int
) -> None:
    # The code is spent once traded; before, one failed connection threw the token away.
    sync = SyncService(device_db, tmp_path, "0.1.0", "tablet",
                       transport=httpx.MockTransport(_enrolling(FakeServer(), failures)),
                       rand=lambda: 0.5)
    result = sync.enroll("https://server.test:8400/", "ABCDE-FGHJK")
    assert result.verified and result.device_name == "TAB-01"
    assert sync.status().configured


def test_when_it_keeps_failing_the_message_says_the_code_is_used(
    device_db: Database, tmp_path: Path
) -> None:
    sync = SyncService(device_db, tmp_path, "0.1.0", "tablet",
                       transport=httpx.MockTransport(_enrolling(FakeServer(), 99)),
                       rand=lambda: 0.5)
    with pytest.raises(ServerUnavailable, match=r"took the enrollment code.*the code is used"):
        sync.enroll("https://server.test:8400/", "ABCDE-FGHJK")
    assert not sync.status().configured


def test_an_oversized_batch_is_halved(device_db: Database, tmp_path: Path) -> None:
    def small_only(body: dict[str, Any]) -> httpx.Response:
        if len(body["ops"]) > 3:
            return error(413, "payload_too_large")(body)
        return ok_push(body)

    server = FakeServer(push_script=[small_only] * 20)
    sync = service(device_db, tmp_path, server, batch_size=16)
    add_ops(device_db, 10)
    report = sync.run_once()
    assert report.ok and report.pushed == 10 and report.set_aside == 0
    sizes = [len(p["ops"]) for p in server.pushes]
    assert sizes[:4] == [10, 8, 4, 2]


def test_the_token_is_never_logged_nor_shown(
    device_db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def down(_: dict[str, Any]) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    with caplog.at_level(logging.DEBUG):
        server = FakeServer(push_script=[down, error(503)])
        sync = service(device_db, tmp_path, server)
        add_ops(device_db, 2)
        sync.run_once()
        sync.run_once()
        sync.run_once()
        status = sync.status().model_dump_json()
    assert TOKEN not in caplog.text
    assert TOKEN not in status
    assert TOKEN not in repr(sync.client())


def test_nothing_happens_before_connecting(device_db: Database, tmp_path: Path) -> None:
    sync = SyncService(device_db, tmp_path, "0.1.0")
    assert sync.run_once().skipped == "not_configured"
    assert sync.status().configured is False


def test_connecting_with_a_wrong_token_stores_nothing(device_db: Database, tmp_path: Path) -> None:
    from sync.errors import AuthError

    sync = SyncService(device_db, tmp_path, "0.1.0",
                       transport=httpx.MockTransport(FakeServer().handler))
    with pytest.raises(AuthError):
        sync.connect("https://server.test", "kd_wrong")
    assert sync.status().configured is False


def _unreachable(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("no route to host")


def test_connecting_while_the_server_is_away_stores_nothing(
    device_db: Database, tmp_path: Path
) -> None:
    from sync.errors import Offline

    sync = SyncService(device_db, tmp_path, "0.1.0", transport=httpx.MockTransport(_unreachable))
    with pytest.raises(Offline, match="nothing was changed"):
        sync.connect("https://server.test", TOKEN)
    assert sync.status().configured is False


class Switchboard:
    """Two servers behind one transport: the working one, and another that may be away or
    refuse the token."""

    def __init__(self) -> None:
        self.home = FakeServer()
        self.other = FakeServer()
        self.other_reachable = True

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "home.test":
            return self.home.handler(request)
        if not self.other_reachable:
            _unreachable(request)
        return self.other.handler(request)


@pytest.mark.parametrize(
    ("url", "token", "reachable", "error"),
    [
        ("https://other.test", TOKEN, False, "Offline"),          # unreachable: kept as it was
        ("https://other.test", "kd_bogus", True, "AuthError"),    # refused token
        ("https://user:s3cr3t@other.test", TOKEN, True, "InvalidRequest"),  # credentials
        ("http://other.test", TOKEN, True, "InsecureUrl"),  # plain http to another machine
        ("https://other.test?x=1", TOKEN, True, "InvalidRequest"),
        ("ftp://other.test", TOKEN, True, "InvalidRequest"),
        ("https://other.test:99999", TOKEN, True, "InvalidRequest"),
        ("https://other.test", TOKEN, True, "ConfirmationRequired"),  # moving needs a yes
    ],
)
def test_a_failed_connect_keeps_the_working_connection(
    device_db: Database, tmp_path: Path, url: str, token: str, reachable: bool, error: str
) -> None:
    board = Switchboard()
    sync = SyncService(device_db, tmp_path, "0.1.0", transport=httpx.MockTransport(board.handler))
    sync.connect("https://home.test", TOKEN)
    before = sync.status()
    board.other_reachable = reachable
    with pytest.raises(Exception) as caught:
        sync.connect(url, token)
    assert type(caught.value).__name__ == error
    after = sync.status()
    assert (after.server_url, after.device_id, after.device_name) == (
        before.server_url, before.device_id, before.device_name)
    assert "s3cr3t" not in str(caught.value.args)
    # The working connection still works: its token was not replaced.
    add_ops(device_db, 1)
    assert sync.run_once().pushed == 1 and board.home.pushes and not board.other.pushes


def test_moving_a_connected_tablet_shows_both_servers_and_needs_the_old_one_echoed(
    device_db: Database, tmp_path: Path
) -> None:
    from sync.errors import ConfirmationRequired

    board = Switchboard()
    sync = SyncService(device_db, tmp_path, "0.1.0", transport=httpx.MockTransport(board.handler))
    sync.connect("https://home.test", TOKEN)
    with pytest.raises(ConfirmationRequired) as asked:
        sync.connect("https://other.test", TOKEN, replace_server_url="https://elsewhere.test")
    assert asked.value.detail["current_server_url"] == "https://home.test"
    assert asked.value.detail["new_server_url"] == "https://other.test"
    # Reconnecting to the same server (a rotated token) needs no confirmation.
    assert sync.connect("https://home.test/", TOKEN).verified
    moved = sync.connect("https://other.test", TOKEN, replace_server_url="https://home.test")
    assert moved.verified and sync.status().server_url == "https://other.test"
    add_ops(device_db, 1)
    assert sync.run_once().pushed == 1 and board.other.pushes


def test_the_scheduler_logs_what_changes_not_every_tick(
    device_db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = FakeServer()
    sync = service(device_db, tmp_path, server, tick_s=0.02)
    caplog.set_level(logging.DEBUG, logger="apscheduler")
    caplog.set_level(logging.INFO)
    sync.start()
    try:
        time.sleep(0.5)  # some twenty ticks with nothing to do
        add_ops(device_db, 2)
        sync.trigger()
        deadline = time.monotonic() + 10
        while outbox_seqs(device_db) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        sync.stop()
    assert outbox_seqs(device_db) == []
    scheduler = [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.levelno >= logging.INFO and r.name.startswith("apscheduler")
    ]
    assert not [line for line in scheduler if line.startswith("apscheduler.executors")]
    # What is left is the job added, the scheduler started and stopped: not a line per tick.
    assert len(scheduler) <= 4, scheduler


def test_scheduler_runs_in_the_background_and_stops(device_db: Database, tmp_path: Path) -> None:
    server = FakeServer()
    sync = service(device_db, tmp_path, server, tick_s=0.05)
    add_ops(device_db, 3)
    sync.start()
    try:
        deadline = time.monotonic() + 10
        while outbox_seqs(device_db) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sync.stop()
    assert outbox_seqs(device_db) == []
    assert not sync.scheduled
