"""An AI result the way an inspection gets one: the item's pipeline run by the sidecar's job
runner on the item's photo (``POST …/analyse``), with the demo models ``seed_device`` installs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from sidecar.keys import DataKey


def analyse(client: httpx.Client, sid: str, item_id: str, image_id: str | None = None,
            timeout: float = 60.0) -> dict[str, Any]:
    """Queue the item's pipeline (on ``image_id``, else its newest photo), wait for the job to
    end, and return the AI result it stored (as ``GET /sessions/{sid}`` shows it)."""
    body = {"image_id": image_id} if image_id else {}
    queued = client.post(f"/sessions/{sid}/items/{item_id}/analyse", json=body)
    assert queued.status_code == 202, queued.text
    job_id = queued.json()["id"]
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in ("completed", "failed", "cancelled"):
            break
        assert time.monotonic() < deadline, f"AI job {job_id} still {job['status']}"
        time.sleep(0.05)
    assert job["status"] == "completed", job
    detail = client.get(f"/sessions/{sid}").json()
    item = next(i for i in detail["items"] if i["item_id"] == item_id)
    result: dict[str, Any] = next(r for r in item["ai_results"] if r["id"] == job["result_id"])
    return result


def judge_here(data_dir: Path, session_id: str, item_id: str, image_id: str,
               data_key: DataKey | None = None) -> str:
    """Run the item's pipeline in this process, as the job runner of the tablet whose data
    directory is ``data_dir`` would (for a sidecar started without AI workers): queue the job,
    run it with the models in ``data_dir/models`` on the photo opened with ``data_key``, and
    return the AI result's id."""
    from schema import device as d
    from schema.db import Database, create_sqlite_engine
    from sidecar.jobs import queue
    from sidecar.jobs.runner import JobRunner
    from sidecar.pipeline.engine import PipelineEngine
    from sidecar.pipeline.store import ModelStore

    db = Database(create_sqlite_engine(data_dir / "kensa.db"))
    engine = PipelineEngine(ModelStore.for_device(data_dir / "models"))
    try:
        with db.atomic() as session:
            master = session.get(d.InspectionItemMaster, item_id)
            assert master is not None and master.pipeline_id is not None
            pipeline = session.get(d.Pipeline, master.pipeline_id)
            assert pipeline is not None
            job, _ = queue.enqueue(session, image_id=image_id, session_id=session_id,
                                   item_id=item_id, pipeline_id=pipeline.id,
                                   pipeline_version=pipeline.version)
            job_id = job.id
        assert JobRunner(db, data_dir, lambda: engine, data_key=data_key).run_one()
        with db.read() as session:
            done = queue.get(session, job_id)
        assert done.status == "completed" and done.result_id, done.error_message
        return done.result_id
    finally:
        engine.close()
        db.dispose()
