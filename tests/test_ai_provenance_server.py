"""An AI result's provenance on the server, a process on PostgreSQL: each result is checked
against the models the server published and one made by a model it never published is flagged
(and listed by the admin API and the CLI); confidence may be absent; provenance a tablet could
not have written is refused at the push edge, that operation alone, nothing stored."""

from __future__ import annotations

import hashlib
import itertools
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from schema.db import create_engine
from sync.bounds import MAX_MODEL_HASHES, MAX_STEP_TIMINGS, provenance_problem
from sync.server.cli import server_app
from tests.support.postgres import Cluster
from tests.support.sync_harness import wait_until

if TYPE_CHECKING:
    from tests.support.sync_fixtures import Running

ADMIN = ("admin", "admin-pass")
H = "ab" * 32  # a well-formed hash no server published
STEP = {"node": "model", "op": "onnx", "stage": "infer", "start_ms": 1.5, "ms": 12.25}


# --- the rule (pure) ---------------------------------------------------------------------------

GOOD: list[tuple[str, dict[str, Any]]] = [
    ("nothing (a result older than provenance)", {}),
    ("all null", dict.fromkeys(("model_hashes", "image_sha256", "engine_version",
                                "execution_provider", "step_timings", "confidence"))),
    ("a measurement: no model", {"model_hashes": [], "step_timings": [STEP]}),
    ("the job runner's", {"model_hashes": [H, "cd" * 32], "image_sha256": H,
                          "engine_version": "kensa/0.1.0 onnxruntime/1.20.1",
                          "execution_provider": "CPUExecutionProvider",
                          "step_timings": [STEP, {**STEP, "node": "post", "start_ms": 0}],
                          "confidence": 0.93}),
    ("confidence 0 and 1", {"confidence": 0}),
    ("a job of a day", {"processing_time": 86_400}),
    ("confidence 1", {"confidence": 1.0}),
    ("the most hashes", {"model_hashes": [f"{i:064x}" for i in range(MAX_MODEL_HASHES)]}),
    ("the most steps", {"step_timings": [STEP] * MAX_STEP_TIMINGS}),
]

BAD: list[tuple[str, dict[str, Any], str]] = [
    ("hashes not a list", {"model_hashes": H}, "model_hashes"),
    ("hash upper case", {"model_hashes": [H.upper()]}, "model_hashes[0]"),
    ("hash 63", {"model_hashes": [H[:63]]}, "model_hashes[0]"),
    ("hash with a prefix", {"model_hashes": [f"sha256:{H}"]}, "model_hashes[0]"),
    ("hash and a newline", {"model_hashes": [H + "\n"]}, "model_hashes[0]"),
    ("image hash and a newline", {"image_sha256": H + "\n"}, "image_sha256"),
    ("hash not text", {"model_hashes": [1]}, "model_hashes[0]"),
    ("hash twice", {"model_hashes": [H, H]}, "twice"),
    ("too many hashes", {"model_hashes": [f"{i:064x}" for i in range(MAX_MODEL_HASHES + 1)]},
     "model_hashes"),
    ("image hash 65", {"image_sha256": H + "a"}, "image_sha256"),
    ("image hash not hex", {"image_sha256": "g" * 64}, "image_sha256"),
    ("confidence over 1", {"confidence": 1.5}, "confidence"),
    ("confidence negative", {"confidence": -0.1}, "confidence"),
    ("confidence text", {"confidence": "high"}, "confidence"),
    ("confidence boolean", {"confidence": True}, "confidence"),
    ("job time 1e300 s", {"processing_time": 1e300}, "processing_time"),
    ("job time over a day", {"processing_time": 86_400.5}, "processing_time"),
    ("job time negative", {"processing_time": -0.1}, "processing_time"),
    ("job time text", {"processing_time": "fast"}, "processing_time"),
    ("engine with ESC", {"engine_version": "kensa\x1b[2J"}, "engine_version"),
    ("engine with a tab", {"engine_version": "kensa\t0.1"}, "engine_version"),
    ("provider not text", {"execution_provider": ["CPU"]}, "execution_provider"),
    ("steps not a list", {"step_timings": {"model": 1.0}}, "step_timings"),
    ("too many steps", {"step_timings": [STEP] * (MAX_STEP_TIMINGS + 1)}, "step_timings"),
    ("step not an object", {"step_timings": ["model"]}, "step_timings[0]"),
    ("step with an unknown key", {"step_timings": [{**STEP, "gpu": "x"}]}, "step_timings[0]"),
    ("step without a node", {"step_timings": [{k: v for k, v in STEP.items() if k != "node"}]},
     "node"),
    ("step name 101", {"step_timings": [{**STEP, "node": "n" * 101}]}, "node"),
    ("step name with NUL", {"step_timings": [{**STEP, "op": "on\x00nx"}]}, "op"),
    ("step time negative", {"step_timings": [{**STEP, "ms": -1}]}, "ms"),
    ("step time over a day", {"step_timings": [{**STEP, "ms": 86_400_001}]}, "ms"),
    ("step time text", {"step_timings": [{**STEP, "start_ms": "0"}]}, "start_ms"),
]


@pytest.mark.parametrize(("name", "data"), GOOD, ids=[n for n, _ in GOOD])
def test_what_a_job_runner_writes_is_accepted(name: str, data: dict[str, Any]) -> None:
    assert provenance_problem(data) is None


@pytest.mark.parametrize(("name", "data", "names"), BAD, ids=[n for n, _, _ in BAD])
def test_provenance_no_tablet_writes_is_refused(name: str, data: dict[str, Any],
                                                names: str) -> None:
    problem = provenance_problem(data)
    assert problem is not None and names in problem, problem


# --- on the server ------------------------------------------------------------------------------

pg = pytest.mark.postgres


@pytest.fixture(scope="module")
def site(pg_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A seeded site (with one published model) and its server, for this module."""
    from tests.support.sync_fixtures import running_site

    with running_site(pg_cluster, tmp_path_factory.mktemp("provenance")) as running:
        # running_site seeds no model; publish one, as an admin would.
        with httpx.Client(base_url=running.url, auth=ADMIN, timeout=30) as admin:
            body = b"a model the server published" * 100
            sha = hashlib.sha256(body).hexdigest()
            answer = admin.put(f"/admin/v1/models/{sha}", content=body)
            assert answer.status_code == 201, answer.text
        running.site.model_sha = sha
        yield running


_seqs = itertools.count(1)


def _op(entity_type: str, data: dict[str, Any]) -> dict[str, Any]:
    key = data.get("id") or str(uuid.uuid4())
    return {"seq": next(_seqs), "op_id": str(uuid.uuid4()), "entity_type": entity_type,
            "entity_id": key, "operation": "INSERT", "data": {**data, "id": key}}


def _push(site: Running, ops: list[dict[str, Any]]) -> httpx.Response:
    me = site.site.device_ids["TAB-01"]
    with site.client("TAB-01") as client:
        return client.post("/sync/v1/push", json={"device_id": me, "device_type": "tablet",
                                                  "app_version": "0.1.0", "ops": ops})


def _inspection() -> tuple[list[dict[str, Any]], str, str]:
    """A target, a session and a photo: the parents of an AI result."""
    now = datetime.now(UTC).isoformat()
    target, session, image = (str(uuid.uuid4()) for _ in range(3))
    ops = [
        _op("inspection_target", {"id": target, "product_id": "BRK-100", "batch_id": "A12-3456",
                                  "qr_code": "{}", "created_at": now}),
        _op("inspection_session", {"id": session, "target_id": target, "status": "in_progress",
                                   "started_at": now, "version": 1, "user_server_id": None,
                                   "username": "tanaka"}),
        _op("inspection_image", {"id": image, "session_id": session, "sha256": H,
                                 "file_size": 10, "created_at": now}),
    ]
    return ops, session, image


def _result(session: str, image: str, **provenance: Any) -> dict[str, Any]:
    return _op("ai_inspection_result", {
        "session_id": session, "image_id": image, "overall_result": "OK", "confidence": None,
        "processing_time": 0.05, "pipeline_version": "1", "timings": {"infer": 12.0},
        "created_at": datetime.now(UTC).isoformat(), **provenance})


def _rows(url: str, sql: str, **params: Any) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params).all())
    finally:
        engine.dispose()


@pg
def test_results_of_models_the_server_never_published_are_flagged(site: Running) -> None:
    url = site.site.database_url
    known = site.site.model_sha
    assert known is not None
    ops, session, image = _inspection()
    steps = [STEP, {**STEP, "node": "judge", "op": "judge", "stage": "judge", "start_ms": 14.0,
                    "ms": 0.5}]
    results = {
        "known": _result(session, image, model_hashes=[known], image_sha256=H,
                         engine_version="kensa/0.1.0 onnxruntime/1.20.1",
                         execution_provider="CPUExecutionProvider", step_timings=steps),
        "unknown": _result(session, image, model_hashes=[H, known], confidence=0.25,
                           step_timings=steps),
        "no model": _result(session, image, model_hashes=[]),
        "older": _result(session, image),
    }
    answer = _push(site, [*ops, *results.values()])
    assert answer.status_code == 200, answer.text
    ids = {name: op["entity_id"] for name, op in results.items()}

    def applied() -> bool:
        rows = _rows(url, "SELECT count(*) FROM ai_inspection_results WHERE session_id = :s",
                     s=session)
        return bool(rows[0][0] == len(results))

    wait_until(applied, 30, what="the results to be applied")
    stored = {
        str(r[0]): r[1:] for r in _rows(
            url, "SELECT id, models_known, unknown_models, confidence, model_hashes, "
                 "engine_version, execution_provider FROM ai_inspection_results "
                 "WHERE session_id = :s", s=session)
    }
    assert stored[ids["known"]][:3] == (True, None, None)
    assert stored[ids["known"]][3:] == ([known], "kensa/0.1.0 onnxruntime/1.20.1",
                                        "CPUExecutionProvider")
    assert stored[ids["unknown"]][:3] == (False, [H], 0.25)
    assert stored[ids["no model"]][:3] == (True, None, None)
    assert stored[ids["older"]][:3] == (None, None, None)  # nothing to check it by
    # The engine's steps became the execution's components as measured: name, duration, and
    # start offset from the run's start (processing_time, 50 ms, before it was recorded).
    components = _rows(
        url, "SELECT c.step_name, c.execution_time_ms, "
             "extract(epoch FROM c.started_at - e.started_at) * 1000, "
             "extract(epoch FROM c.completed_at - c.started_at) * 1000, "
             "extract(epoch FROM e.completed_at - e.started_at) * 1000 "
             "FROM component_executions c "
             "JOIN pipeline_executions e ON e.id = c.execution_id WHERE e.ai_result_id = :r "
             "ORDER BY c.started_at", r=ids["known"])
    assert [(c[0], c[1]) for c in components] == [("model", 12), ("judge", 0)]
    assert [(float(c[2]), float(c[3])) for c in components] == [
        pytest.approx((1.5, 12.25), abs=0.002), pytest.approx((14.0, 0.5), abs=0.002)]
    assert [float(c[4]) for c in components] == [pytest.approx(50.0, abs=0.002)] * 2
    # A result from before the engine reported its steps has stage totals only: its execution
    # is recorded, with no components made up from them.
    older = _rows(
        url, "SELECT e.id, (SELECT count(*) FROM component_executions c "
             "WHERE c.execution_id = e.id) FROM pipeline_executions e WHERE e.ai_result_id = :r",
        r=ids["older"])
    assert len(older) == 1 and older[0][1] == 0

    # The admin API lists the flagged one (and only it, of this inspection), with its device.
    answer = httpx.get(f"{site.url}/admin/v1/ai-results/unknown-models", auth=ADMIN)
    assert answer.status_code == 200, answer.text
    listed = [r for r in answer.json() if r["session_id"] == session]
    assert [(r["id"], r["device"], r["unknown_models"]) for r in listed] == [
        (ids["unknown"], "TAB-01", [H])]
    assert httpx.get(f"{site.url}/admin/v1/ai-results/unknown-models").status_code == 401
    assert httpx.get(f"{site.url}/admin/v1/ai-results/unknown-models?limit=0",
                     auth=ADMIN).status_code == 422

    # So does the CLI, which exits 1 while there are any.
    out = CliRunner().invoke(server_app, ["results", "unknown-models", "--json",
                                          "--database-url", url])
    assert out.exit_code == 1, out.output
    lines = [json.loads(line) for line in out.output.splitlines()]
    assert ids["unknown"] in {line["id"] for line in lines}
    assert all(line["unknown_models"] for line in lines)


BAD_AT_THE_EDGE = [
    ("hash not hex", {"model_hashes": ["z" * 64]}),
    ("hash with a prefix", {"model_hashes": [f"sha256:{H}"]}),
    ("image hash short", {"image_sha256": "ab"}),
    ("engine version 101", {"engine_version": "k" * 101}),
    ("provider 101", {"execution_provider": "P" * 101}),
    ("provider with a newline", {"execution_provider": "CPU\nCUDA"}),
    ("step name 101", {"step_timings": [{**STEP, "node": "n" * 101}]}),
    ("step time negative", {"step_timings": [{**STEP, "ms": -3}]}),
    ("confidence 1.5", {"confidence": 1.5}),
    ("job time 1e300 s", {"processing_time": 1e300}),
]


@pg
@pytest.mark.parametrize(("name", "bad"), BAD_AT_THE_EDGE, ids=[n for n, _ in BAD_AT_THE_EDGE])
def test_provenance_over_its_bounds_is_refused_at_the_edge(
    site: Running, name: str, bad: dict[str, Any]
) -> None:
    url = site.site.database_url
    ops, session, image = _inspection()
    refused = _result(session, image, **bad)
    before = _rows(url, "SELECT count(*) FROM tauri_sync_queue")[0][0]
    answer = _push(site, [*ops, refused])
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "operation_rejected"
    rejected = error["detail"]["rejected"]
    assert [r["op_id"] for r in rejected] == [refused["op_id"]]
    field = next(iter(bad))
    assert f"data.{field}" in rejected[0]["reason"], rejected
    assert _rows(url, "SELECT count(*) FROM tauri_sync_queue")[0][0] == before
