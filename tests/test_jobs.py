"""The AI job queue and its workers, on a real SQLite file with the real demo models."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, func, select

from schema import device as d
from schema.db import Database, create_sqlite_engine
from scripts.devkit import DEMO_MODELS_DIR, demo_store, synthetic
from sidecar.errors import Conflict
from sidecar.jobs import queue
from sidecar.jobs.runner import JobRunner
from sidecar.keys import DataKey
from sidecar.pipeline.engine import PipelineEngine
from sidecar.pipeline.store import ModelStore
from sidecar.qr.payload import parse_payload
from sidecar.services import images, inspection
from tests.support.seed import QR_JSON, item_id, seed_device

HELD_OUT = 9_000_000  # seeds the demo models never saw (scripts/devkit/models/manifest.json)
# The tablet's data key: the photos the runner reads are encrypted, as on a tablet.
KEY = DataKey.generate()


@pytest.fixture(scope="module")
def engine() -> Iterator[PipelineEngine]:
    eng = PipelineEngine(demo_store())
    yield eng
    eng.close()


@pytest.fixture
def device(tmp_path: Path) -> Iterator[tuple[Database, Path]]:
    seed_device(tmp_path / "kensa.db")
    db = Database(create_sqlite_engine(tmp_path / "kensa.db"))
    yield db, tmp_path
    db.dispose()


def _user(db: Database) -> d.User:
    with db.read() as session:
        user = session.exec(select(d.User).where(d.User.username == "tanaka")).one()
    return user


def capture(
    db: Database, data_dir: Path, code: str, photo: bytes, key: DataKey | None = KEY
) -> tuple[str, str, str]:
    """Open an inspection and attach ``photo`` (stored under ``key``) to item ``code``:
    (session, item, image) ids."""
    user = _user(db)
    stored = images.store(data_dir, photo, key=key)
    with db.atomic() as session:
        row = inspection.start(session, parse_payload(QR_JSON), user)
        image = inspection.attach_image(session, row.id, item_id(code), stored)
    return row.id, item_id(code), image.id


def enqueue(db: Database, sid: str, iid: str, image_id: str, priority: str = "normal") -> str:
    with db.atomic() as session:
        item = session.get(d.InspectionItemMaster, iid)
        assert item is not None and item.pipeline_id is not None
        pipeline = session.get(d.Pipeline, item.pipeline_id)
        assert pipeline is not None
        job, _ = queue.enqueue(
            session,
            image_id=image_id,
            session_id=sid,
            item_id=iid,
            pipeline_id=pipeline.id,
            pipeline_version=pipeline.version,
            priority=priority,
        )
        return job.id


def runner(db: Database, data_dir: Path, engine: PipelineEngine) -> JobRunner:
    return JobRunner(db, data_dir, lambda: engine, data_key=KEY)


def job(db: Database, job_id: str) -> d.AnalysisJob:
    with db.read() as session:
        return queue.get(session, job_id)


def item(db: Database, sid: str, iid: str) -> d.InspectionSessionItem:
    with db.read() as session:
        return inspection.get_item(session, sid, iid)


def surface(defect: Any = None, seed: int = HELD_OUT) -> bytes:
    return synthetic.encode(synthetic.make_surface(seed, defect), ".jpg")


# --- the queue -----------------------------------------------------------------------------------


def test_enqueue_is_idempotent_and_priority_goes_first(device: tuple[Database, Path]) -> None:
    db, data_dir = device
    a = capture(db, data_dir, "V-SCRATCH", surface(seed=HELD_OUT + 1))
    b = capture(db, data_dir, "V-SCRATCH", surface(seed=HELD_OUT + 2))
    first = enqueue(db, *a)
    assert enqueue(db, *a) == first  # the same analysis asked twice is one job
    urgent = enqueue(db, *b, priority="urgent")
    with db.atomic() as session:
        assert queue.waiting_ahead(session, queue.get(session, first)) == 1
        claimed = queue.claim_next(session)
        assert claimed is not None and claimed.id == urgent
    with db.atomic() as session:
        claimed = queue.claim_next(session)
        assert claimed is not None and claimed.id == first
        assert queue.claim_next(session) is None


def test_recoverable_failures_retry_up_to_the_limit(device: tuple[Database, Path]) -> None:
    db, data_dir = device
    job_id = enqueue(db, *capture(db, data_dir, "V-SCRATCH", surface()))
    for attempt in range(1, 4):
        with db.atomic() as session:
            claimed = queue.claim_next(session)
            assert claimed is not None
            assert queue.fail(session, claimed, "camera busy", recoverable=True) is False
        assert job(db, job_id).retry_count == attempt
    with db.atomic() as session:
        claimed = queue.claim_next(session)
        assert claimed is not None
        assert queue.fail(session, claimed, "camera busy", recoverable=True) is True
    assert job(db, job_id).status == "failed"


def test_a_job_that_fails_says_retrying_then_failed_with_no_share_done(
    device: tuple[Database, Path],
) -> None:
    db, data_dir = device
    job_id = enqueue(db, *capture(db, data_dir, "V-SCRATCH", surface()))
    events: list[dict[str, Any]] = []

    class Breaks:
        def inspect(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("the accelerator went away")

    jobs = JobRunner(db, data_dir, lambda: Breaks(), data_key=KEY,
                     publish=lambda kind, payload: events.append(payload))
    while job(db, job_id).status != "failed":
        assert jobs.run_one() is True
    ends = [(e["stage"], e["percentage"]) for e in events
            if e["id"] == job_id and e["stage"] in ("retrying", "failed")]
    # Before, each said 100 %: the tray showed a job that would run again as done.
    assert ends == [("retrying", None)] * (len(ends) - 1) + [("failed", None)]
    assert len(ends) == job(db, job_id).retry_count + 1


def test_processing_jobs_return_to_the_queue_after_a_crash(device: tuple[Database, Path]) -> None:
    db, data_dir = device
    job_id = enqueue(db, *capture(db, data_dir, "V-SCRATCH", surface()))
    with db.atomic() as session:
        queue.claim_next(session)
    with db.atomic() as session:
        assert queue.recover(session) == 1
    assert job(db, job_id).status == "waiting"


def test_cancel(device: tuple[Database, Path], engine: PipelineEngine) -> None:
    db, data_dir = device
    sid, iid, image_id = capture(db, data_dir, "V-SCRATCH", surface())
    job_id = enqueue(db, sid, iid, image_id)
    with db.atomic() as session:
        queue.cancel(session, job_id)
    assert runner(db, data_dir, engine).run_one() is False  # nothing left to do
    with pytest.raises(Conflict, match="already cancelled"), db.atomic() as session:
        queue.cancel(session, job_id)


def test_a_job_cancelled_while_it_runs_writes_no_result(
    device: tuple[Database, Path], engine: PipelineEngine
) -> None:
    db, data_dir = device
    sid, iid, image_id = capture(db, data_dir, "V-SCRATCH", surface())
    job_id = enqueue(db, sid, iid, image_id)

    class CancelsMidway:
        def inspect(self, *args: Any, **kwargs: Any) -> Any:
            with db.atomic() as session:
                queue.cancel(session, job_id)
            return engine.inspect(*args, **kwargs)

    assert JobRunner(db, data_dir, lambda: CancelsMidway(), data_key=KEY).run_one() is True
    assert job(db, job_id).status == "cancelled"
    with db.read() as session:
        assert session.exec(select(func.count()).select_from(d.AIInspectionResult)).one() == 0


# --- real pipelines on real images ---------------------------------------------------------------


def test_a_photo_under_another_key_fails_its_job_and_judges_nothing(
    device: tuple[Database, Path], engine: PipelineEngine
) -> None:
    db, data_dir = device
    sid, iid, image_id = capture(db, data_dir, "V-SCRATCH", surface())
    job_id = enqueue(db, sid, iid, image_id)
    other = JobRunner(db, data_dir, lambda: engine, data_key=DataKey.generate())
    assert other.run_one() is True
    done = job(db, job_id)
    assert done.status == "failed" and done.result_id is None
    assert "cannot be opened with this tablet's data key" in (done.error_message or "")
    with db.read() as session:
        assert session.exec(select(func.count()).select_from(d.AIInspectionResult)).one() == 0


@pytest.mark.parametrize(
    "code,photo,expected",
    [
        ("V-SCRATCH", lambda: surface(None), "OK"),
        ("V-SCRATCH", lambda: surface("scratch"), "NG"),
        ("V-FOREIGN", lambda: surface(None, HELD_OUT + 3), "OK"),
        ("V-FOREIGN", lambda: surface("spot", HELD_OUT + 3), "NG"),
        ("T-MARKING", lambda: synthetic.encode(synthetic.make_marking("LOT A12-3456", 5)), "OK"),
        ("T-MARKING", lambda: synthetic.encode(synthetic.make_marking("LOT B99-0001", 5)), "NG"),
        ("D-BORE", lambda: synthetic.encode(synthetic.make_bore(12.0, 7)), "OK"),
        ("D-BORE", lambda: synthetic.encode(synthetic.make_bore(12.3, 7)), "NG"),
    ],
)
def test_demo_pipelines_judge_real_images(
    device: tuple[Database, Path], engine: PipelineEngine, code: str, photo: Any, expected: str
) -> None:
    db, data_dir = device
    sid, iid, image_id = capture(db, data_dir, code, photo())
    job_id = enqueue(db, sid, iid, image_id)
    assert runner(db, data_dir, engine).run_one() is True
    done = job(db, job_id)
    assert done.status == "completed", done.error_message
    assert item(db, sid, iid).status == "ai_completed"
    with db.read() as session:
        result = session.get(d.AIInspectionResult, done.result_id)
        assert result is not None
        assert result.overall_result == expected
        assert result.image_id == image_id and result.item_id == iid
        assert result.pipeline_id == done.pipeline_id and result.pipeline_version == "1"
        assert result.timings is not None
        assert set(result.timings) >= {"decode", "pre", "infer", "post", "judge"}
        if code != "D-BORE":  # the bore is measured without a model
            assert result.model_sha256 is not None and len(result.model_sha256) == 64
        logs = session.exec(
            select(d.ProgressLog)
            .where(d.ProgressLog.job_id == job_id)
            .order_by(col(d.ProgressLog.id))
        ).all()
        assert [p.current_stage for p in logs][-1] == "completed"
        # The AI result reached the outbox in the same transaction.
        assert (
            session.exec(
                select(func.count())
                .select_from(d.Outbox)
                .where(
                    d.Outbox.entity_type == "ai_inspection_result", d.Outbox.entity_id == result.id
                )
            ).one()
            == 1
        )


# --- progress from measured durations --------------------------------------------------------


def test_progress_is_estimated_from_measured_stage_durations(
    device: tuple[Database, Path], engine: PipelineEngine
) -> None:
    db, data_dir = device
    events: list[dict[str, Any]] = []
    jobs = JobRunner(db, data_dir, lambda: engine, data_key=KEY,
                     publish=lambda kind, payload: events.append(payload))
    ids = []
    for seed in range(3):
        sid, iid, image_id = capture(db, data_dir, "D-BORE",
                                     synthetic.encode(synthetic.make_bore(12.0, seed)))
        ids.append(enqueue(db, sid, iid, image_id))
        assert jobs.run_one() is True
        assert job(db, ids[-1]).status == "completed"

    def said(job_id: str) -> list[tuple[str, float | None, float | None]]:
        return [(e["stage"], e["percentage"], e["eta_s"]) for e in events if e["id"] == job_id]

    stages = ["preprocessing", "model_execution", "postprocessing", "completed"]
    # The pipeline's first job: nothing measured yet, so its stages come without a number.
    first = said(ids[0])
    assert [s for s, _, _ in first] == stages
    assert first[:3] == [(s, None, None) for s in stages[:3]]
    assert first[3] == ("completed", 100.0, 0.0)
    # Later jobs: percentages and time left from the durations the earlier ones measured.
    for job_id in ids[1:]:
        later = said(job_id)
        assert [s for s, _, _ in later] == stages
        pcts = [p for _, p, _ in later]
        etas = [e for _, _, e in later]
        assert pcts[0] == 0.0 and all(p is not None for p in pcts)
        assert pcts == sorted(pcts) and 0 < pcts[1] < pcts[2] < 100  # type: ignore[operator]
        assert all(e is not None and e >= 0 for e in etas)
        assert etas == sorted(etas, reverse=True)  # type: ignore[type-var]
    means = [jobs.estimator.average("brk100-d-bore@1", s) for s in stages[:3]]
    assert all(m is not None and m > 0 for m in means)
    # The estimate is what the averages say: the share of a run behind the stage entered.
    est = jobs.estimator.at("brk100-d-bore@1", "postprocessing")
    total = sum(m for m in means if m is not None)
    assert est.eta_s == pytest.approx(means[2], abs=1e-3)
    assert est.percentage == pytest.approx(100 * (total - means[2]) / total, abs=0.1)  # type: ignore[operator]
    # The job log holds measured progress only: none for the first job's stages.
    with db.read() as session:
        logged = {job_id: [(p.current_stage, p.progress_percentage) for p in session.exec(
            select(d.ProgressLog).where(d.ProgressLog.job_id == job_id)
            .order_by(col(d.ProgressLog.id))).all()] for job_id in ids}
    assert logged[ids[0]] == [("completed", 100.0)]
    assert [s for s, _ in logged[ids[2]]] == stages


# --- broken models are an error on the item, not a crashed worker --------------------------------


def _point_pipeline_at(db: Database, sha: str) -> None:
    with db.atomic() as session:
        pipeline = session.get(d.Pipeline, "brk100-v-scratch")
        assert pipeline is not None
        definition = dict(pipeline.definition)
        definition["steps"] = [
            {**step, "params": {**step["params"], "model": f"sha256:{sha}"}}
            if step["type"] == "onnx"
            else step
            for step in definition["steps"]
        ]
        pipeline.definition = definition
        session.add(pipeline)


@pytest.mark.parametrize("kind", ["missing", "corrupt"])
def test_a_broken_model_fails_the_item_clearly(device: tuple[Database, Path], kind: str) -> None:
    db, data_dir = device
    models = data_dir / "models"
    models.mkdir(exist_ok=True)
    if kind == "missing":
        sha = "0" * 64
    else:
        good = next(p for p in DEMO_MODELS_DIR.glob("*classifier*.onnx"))
        sha = hashlib.sha256(good.read_bytes()).hexdigest()
        # A download cut short: the file is named by the right hash but holds half the bytes.
        (models / f"{sha}.onnx").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    _point_pipeline_at(db, sha)
    sid, iid, image_id = capture(db, data_dir, "V-SCRATCH", surface())
    job_id = enqueue(db, sid, iid, image_id)
    own_engine = PipelineEngine(ModelStore([models]))
    try:
        assert JobRunner(db, data_dir, lambda: own_engine, data_key=KEY).run_one() is True
    finally:
        own_engine.close()
    failed = job(db, job_id)
    assert failed.status == "failed" and failed.error_recoverable is False
    assert failed.error_message is not None and sha[:12] in failed.error_message
    assert failed.suggested_action is not None
    assert item(db, sid, iid).status == "failed"


# --- provenance: what ran, on what, how long ----------------------------------------------------


class Recording:
    """The real engine, keeping each result it returned, so the test can compare what the job
    stored with what the engine measured."""

    def __init__(self, engine: PipelineEngine) -> None:
        self.engine = engine
        self.results: list[Any] = []

    def inspect(self, *args: Any, **kwargs: Any) -> Any:
        result, verdict = self.engine.inspect(*args, **kwargs)
        self.results.append(result)
        return result, verdict


PHOTOS = {
    "V-SCRATCH": lambda: surface("scratch"),
    "V-FOREIGN": lambda: surface("spot", HELD_OUT + 3),
    "T-MARKING": lambda: synthetic.encode(synthetic.make_marking("LOT A12-3456", 5)),
    "D-BORE": lambda: synthetic.encode(synthetic.make_bore(12.0, 7)),
}


@pytest.mark.parametrize("code", list(PHOTOS))
def test_a_job_records_the_provenance_of_its_result(
    device: tuple[Database, Path], engine: PipelineEngine, code: str
) -> None:
    import onnxruntime as ort

    from sidecar import __version__

    db, data_dir = device
    photo = PHOTOS[code]()
    sid, iid, image_id = capture(db, data_dir, code, photo)
    job_id = enqueue(db, sid, iid, image_id)
    recording = Recording(engine)
    assert JobRunner(db, data_dir, lambda: recording, data_key=KEY).run_one() is True
    done = job(db, job_id)
    assert done.status == "completed", done.error_message
    (ran,) = recording.results
    with db.read() as session:
        result = session.get(d.AIInspectionResult, done.result_id)
        assert result is not None
        pipeline = session.get(d.Pipeline, result.pipeline_id)
        assert pipeline is not None
        image = session.get(d.InspectionImage, image_id)
        assert image is not None
        outbox_row = session.exec(
            select(d.Outbox).where(d.Outbox.entity_id == result.id)
        ).one()

    # Every model the pipeline names, hashed from the files the store holds.
    names = sorted(inspection.pipeline_models(pipeline.definition))
    files = {hashlib.sha256(engine.pool.store.locate(f"sha256:{h}").read_bytes()).hexdigest()
             for h in names}
    assert result.model_hashes == names == sorted(files)
    if code == "D-BORE":
        assert result.model_hashes == [] and result.execution_provider is None
    else:
        assert result.model_hashes and result.model_sha256 in result.model_hashes
        # The provider ONNX Runtime gave the sessions, one of those it reports.
        got = {engine.pool.get(f"sha256:{h}").session.get_providers()[0] for h in names}
        assert result.execution_provider == ",".join(sorted(got))
        assert set(result.execution_provider.split(",")) <= set(ort.get_available_providers())
    # The photo as the pipeline read it, the one the tablet stored.
    assert result.image_sha256 == hashlib.sha256(photo).hexdigest() == image.sha256
    assert result.engine_version == f"kensa/{__version__} onnxruntime/{ort.__version__}"
    # The engine's own per-step timings, as it measured them for this run, their start offsets
    # counted from the job's start (as processing_time is), not the engine's.
    engine_steps = ran.record()["steps"]
    assert [{k: v for k, v in s.items() if k != "start_ms"} for s in result.step_timings] == [
        {k: v for k, v in s.items() if k != "start_ms"} for s in engine_steps]
    leads = [s["start_ms"] - e["start_ms"]
             for s, e in zip(result.step_timings, engine_steps, strict=True)]
    # One measured lead for every step: the job's load, before the engine started.
    assert min(leads) > 0 and max(leads) - min(leads) < 0.01
    last = max(s["start_ms"] + s["ms"] for s in result.step_timings)
    assert last <= result.processing_time * 1000 + 1
    assert [s["node"] for s in result.step_timings] == [s.name for s in
                                                        engine.compile(pipeline.definition).steps]
    assert all(s["ms"] > 0 for s in result.step_timings)
    # Confidence: the model's own or none. The marking's OCR gives its text score, the scratch
    # classifier its calibrated top-class probability; the anomaly score and the measured bore
    # give none.
    if code == "T-MARKING":
        assert result.confidence == ran.outputs["text_score"]
        assert result.confidence is not None and 0 < result.confidence <= 1
    elif code == "V-SCRATCH":
        assert result.confidence == ran.outputs["confidence"]
        # The model's own probabilities, through the temperature its manifest records.
        temperature = next(m["calibration"]["temperature"] for m in json.loads(
            (DEMO_MODELS_DIR / "manifest.json").read_text())["models"] if m["kind"] == "classifier")
        p = ran.outputs["defect_probability"]
        z = (math.log(max(p, 1e-12)) - math.log(max(1 - p, 1e-12))) / temperature
        assert result.confidence == pytest.approx(1 / (1 + math.exp(-abs(z))), abs=1e-5)
        assert result.confidence is not None and 0.5 <= result.confidence <= 1
    else:
        assert result.confidence is None
    # All of it travels to the server with the result.
    data = outbox_row.data if isinstance(outbox_row.data, dict) else json.loads(outbox_row.data)
    for field in ("model_hashes", "image_sha256", "engine_version", "execution_provider",
                  "step_timings", "confidence"):
        assert data[field] == getattr(result, field), field
