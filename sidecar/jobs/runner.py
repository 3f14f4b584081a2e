"""Workers that take AI jobs from the queue, run the item's pipeline and store the judgment.

A job's life: claim (item → ai_running) in one transaction; run the pipeline with no database
lock held; then, in one transaction, the AI result, the item's ai_completed and the job's
completed — or, on failure, the item's failed and the job's error with ``recoverable`` and a
suggested action. A bad model or image is a failed item with a clear message, never a crashed
worker. After a crash, ``recover`` returns processing jobs to the queue; since the result and
the job's completion commit together, no image is ever judged twice.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from schema import device as d
from schema.db import Database
from schema.formats.workflow import SESSION_ENDS
from schema.types import utcnow
from sidecar import photo_crypto
from sidecar.errors import ImageInvalid, KensaError
from sidecar.jobs import queue
from sidecar.jobs.estimate import StageEstimator
from sidecar.keys import DataKey
from sidecar.services import calibration, inspection

log = logging.getLogger("kensa.jobs")

Publish = Callable[[str, dict[str, Any]], None]


class _Stale(Exception):
    """The job was cancelled, or its inspection closed, while it ran."""


def _heatmap_png(value: Any, ext: str = ".png") -> str | None:
    """A heat map as base64 PNG (or ``ext``): a rendered BGR image as it is, a bare 2-D map
    coloured first.

    A rendered image must keep both of its dimensions: taking its first row (as for a batch
    axis) sends a 224×3 strip that the UI stretches over the photo, red where nothing is.
    """
    import cv2
    import numpy as np

    arr = np.asarray(value)
    while arr.ndim > 3 or (arr.ndim == 3 and arr.shape[0] == 1 and arr.shape[2] not in (3, 4)):
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[2] in (3, 4) and arr.dtype == np.uint8:
        image = arr
    elif arr.ndim == 2 and arr.size:
        flt = arr.astype(np.float32)
        lo, hi = float(flt.min()), float(flt.max())
        norm = ((flt - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(flt)).astype(np.uint8)
        image = cv2.applyColorMap(norm, cv2.COLORMAP_JET)
    else:
        return None
    if ext == ".jpg" and image.shape[2] == 4:
        image = image[..., :3]
    params = [cv2.IMWRITE_JPEG_QUALITY, 85] if ext == ".jpg" else []
    ok, png = cv2.imencode(ext, image, params)
    return base64.b64encode(png.tobytes()).decode() if ok else None


def _overlay(result: Any) -> dict[str, Any] | None:
    """The pipeline's findings placed on the photo, as the UI draws them (photo pixels)."""
    overlay = result.overlay
    if overlay is None:
        return None
    shapes = list(overlay.shapes)
    for image, rect in overlay.heatmaps:
        # A JPEG: a rendered heat map is a picture, a tenth of a PNG's size in the synced result.
        jpeg = _heatmap_png(image, ".jpg")
        if jpeg is not None:
            shapes.insert(0, {"kind": "heatmap", **rect, "src": f"data:image/jpeg;base64,{jpeg}"})
    return {"width": overlay.width, "height": overlay.height, "shapes": shapes,
            "drawn": list(overlay.drawn)}


class JobRunner:
    def __init__(
        self,
        db: Database,
        data_dir: Path,
        engine_factory: Callable[[], Any],
        *,
        workers: int = 1,
        publish: Publish | None = None,
        idle_poll_s: float = 1.0,
        data_key: DataKey | None = None,
    ) -> None:
        self.db = db
        self.data_dir = data_dir
        # Opens the stored photos; None reads only the plain ones of a development store.
        self.data_key = data_key
        self._engine_factory = engine_factory
        self._engine: Any = None
        self._engine_lock = threading.Lock()
        # Settings default to one worker per two cores: each ONNX Runtime session already runs
        # several threads, and more workers would only make them fight for the cores.
        self.workers = max(1, workers)
        self._publish = publish or (lambda kind, payload: None)
        self._idle_poll_s = idle_poll_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        # Measured stage durations per pipeline, for progress and time left (kept per process).
        self.estimator = StageEstimator()

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        with self.db.atomic() as session:
            back = queue.recover(session)
        if back:
            log.warning("%d AI jobs were interrupted and are queued again", back)
        for n in range(self.workers):
            thread = threading.Thread(target=self._loop, name=f"ai-worker-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def wake(self) -> None:
        """A job was queued: do not wait for the next poll."""
        self._wake.set()

    def engine(self) -> Any:
        with self._engine_lock:
            if self._engine is None:
                self._engine = self._engine_factory()
            return self._engine

    # -- the loop ---------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                worked = self.run_one()
            except Exception:  # a worker must outlive any single job's surprise
                log.exception("AI worker error; carrying on")
                worked = False
            if not worked:
                self._wake.wait(self._idle_poll_s)
                self._wake.clear()

    def run_one(self) -> bool:
        """Claim and run one job; False when the queue is empty."""
        with self.db.atomic() as session:
            job = queue.claim_next(session)
            if job is None:
                return False
            job_id = job.id
            pipeline = _pipeline_key(job)
            try:
                self._start_item(session, job)
            except KensaError as exc:
                queue.fail(session, job, exc.message, recoverable=False)
                log.info("AI job %s not started: %s", job_id, exc.message)
                started = False
            else:
                started = True
        if not started:
            # The UI learns a job ended from the event stream alone: this one too.
            self._publish("progress", {"kind": "job", "id": job_id, "stage": "failed",
                                       "percentage": None, "eta_s": None})
            return True
        self._estimated(job_id, pipeline, "preprocessing")
        try:
            self._process(job_id, pipeline)
        except _Stale:
            log.info("AI job %s was cancelled while it ran; its result is discarded", job_id)
        return True

    def _start_item(self, session: Any, job: d.AnalysisJob) -> None:
        assert job.session_id is not None and job.item_id is not None
        row = inspection.get_session(session, job.session_id)
        if row.status in SESSION_ENDS:
            raise KensaError(f"the inspection is already {row.status}")
        item = inspection.get_item(session, job.session_id, job.item_id)
        if item.status != "ai_running":
            inspection.mark_ai_running(session, job.session_id, job.item_id)

    def _load(
        self, job_id: str
    ) -> tuple[d.AnalysisJob, dict[str, Any], bytes, Any, dict[str, Any]]:
        with self.db.read() as session:
            job = queue.get(session, job_id)
            image = session.get(d.InspectionImage, job.image_id)
            pipeline = session.get(d.Pipeline, job.pipeline_id)
            item = session.get(d.InspectionItemMaster, job.item_id)
            assert job.session_id is not None
            target = session.get(
                d.InspectionTarget, inspection.get_session(session, job.session_id).target_id
            )
            # The cameras' scales as calibrated now: a measurement uses the newest.
            scales = calibration.in_use(session)
        if image is None:
            raise ImageInvalid("the photo of this item is no longer on the tablet")
        if pipeline is None or item is None:
            raise KensaError(f"pipeline {job.pipeline_id} is not on this tablet; sync the masters")
        # A photo that does not open (missing, damaged, another key) fails the job with its own
        # reason: the item shows it, and nothing else is judged in its place.
        data = photo_crypto.read(self.data_dir, image.file_path, self.data_key)
        context = {
            "target": {
                "product_id": target.product_id if target else None,
                "batch_id": target.batch_id if target else None,
                "serial": target.serial if target else None,
            },
            "calibrations": scales,
        }
        return job, pipeline.definition, data, item.criteria, context

    def _process(self, job_id: str, pipeline: str) -> None:
        started = time.perf_counter()
        try:
            job, definition, data, criteria, context = self._load(job_id)
            loaded = time.perf_counter()
            self._estimated(job_id, pipeline, "model_execution")
            ran = time.perf_counter()
            result, verdict = self.engine().inspect(definition, data, criteria, context)
            inspected = time.perf_counter()
        except KensaError as exc:
            # A broken model, pipeline or photo will not heal by retrying: the item shows why.
            self._failed(job_id, exc.message, recoverable=False, action=_suggestion(exc))
            return
        except Exception as exc:
            log.exception("AI job %s failed unexpectedly", job_id)
            self._failed(job_id, f"{type(exc).__name__}: {exc}", recoverable=True, action="retry")
            return
        self._estimated(job_id, pipeline, "postprocessing")
        record = result.record()
        # The engine times its steps from its own start; the job began earlier (loading the
        # photo and pipeline), and processing_time counts from there: offsets on the same clock.
        lead_ms = (ran - started) * 1000
        steps = [{**step, "start_ms": round(step["start_ms"] + lead_ms, 3)}
                 for step in record["steps"]]
        heatmap = result.artifacts.get("heatmap")
        details: dict[str, Any] = {
            **record,
            "judgment": {
                "result": str(verdict.result),
                "measurement": verdict.measurement,
                "value": verdict.value,
                "reason": verdict.reason,
                "expected": verdict.expected,
                # The reason as data: the UI words it in the inspector's language.
                "reason_code": verdict.reason_code,
                "reason_params": dict(verdict.reason_params),
            },
        }
        overlay = _overlay(result)
        if overlay is not None:
            details["overlay"] = overlay
        # A heat map the overlay placed travels once (the operation's size is bounded).
        if heatmap is not None and not (overlay and any(
                s["kind"] == "heatmap" for s in overlay["shapes"])):
            details["heatmap"] = _heatmap_png(heatmap)
        if "boxes" in result.artifacts:
            details["boxes"] = record["artifacts"].get("boxes")
        if result.scales:
            # The px→mm scale each measuring step used and where it came from: a measurement
            # is traceable to its calibration photo, or shown to rest on the nominal value.
            details["scales"] = record["scales"]
        models = list(result.models.values())
        providers = sorted(set(result.providers.values()))
        outcome = inspection.AIOutcome(
            image_id=job.image_id,
            pipeline_id=job.pipeline_id,
            pipeline_version=str(job.pipeline_version),
            model_sha256=models[0] if models else None,
            overall_result=str(verdict.result),
            # The model's own confidence, or none: never a number made up to fill the field.
            confidence=verdict.confidence,
            processing_time=round(time.perf_counter() - started, 4),
            measurements=record["measurements"],
            timings={k: round(v, 3) for k, v in result.stage_ms.items()},
            detailed_results=details,
            # Every model that ran: a step may run several (the OCR's detector and recogniser),
            # and ``providers`` holds each one's hash where ``models`` keeps one per step.
            model_hashes=sorted(result.providers),
            # The bytes the pipeline was given, hashed as read: the photo that was judged.
            image_sha256=hashlib.sha256(data).hexdigest(),
            engine_version=result.engine_version,
            # What the ONNX Runtime sessions got (they fall back silently), not the setting;
            # None for a pipeline that ran no model.
            execution_provider=",".join(providers) or None,
            step_timings=steps,
        )
        with self.db.atomic() as session:
            job = queue.get(session, job_id)
            if job.status != "processing":
                raise _Stale(job_id)
            assert job.session_id is not None and job.item_id is not None
            row = inspection.get_session(session, job.session_id)
            if row.status in SESSION_ENDS:
                queue.cancel(session, job_id)
                raise _Stale(job_id)
            stored = inspection.record_ai_result(session, job.session_id, job.item_id, outcome)
            queue.finish(session, job, stored.id)
        # Only a run that went through every stage teaches the estimator.
        for stage, seconds in (("preprocessing", loaded - started),
                               ("model_execution", inspected - ran),
                               ("postprocessing", time.perf_counter() - inspected)):
            self.estimator.record(pipeline, stage, seconds)
        self._progress(job_id, "completed", 100.0, eta_s=0.0)

    def _failed(self, job_id: str, message: str, *, recoverable: bool, action: str) -> None:
        with self.db.atomic() as session:
            job = queue.get(session, job_id)
            if job.status != "processing":
                return
            final = queue.fail(
                session, job, message, recoverable=recoverable, suggested_action=action
            )
            if final and job.session_id and job.item_id:
                row = inspection.get_session(session, job.session_id)
                item = inspection.get_item(session, job.session_id, job.item_id)
                if row.status not in SESSION_ENDS and item.status == "ai_running":
                    inspection.mark_ai_failed(session, job.session_id, job.item_id)
        # The queue decided (retries left or not); the progress bar says what it decided, with
        # no share done: a job that will run again, or never will, is not "100 %".
        self._progress(job_id, "failed" if final else "retrying", None)

    def _estimated(self, job_id: str, pipeline: str, stage: str) -> None:
        estimate = self.estimator.at(pipeline, stage)
        self._progress(job_id, stage, estimate.percentage, estimate.eta_s)

    def _progress(
        self, job_id: str, stage: str, percentage: float | None, eta_s: float | None = None
    ) -> None:
        eta = utcnow() + timedelta(seconds=eta_s) if eta_s is not None else None
        try:
            with self.db.atomic() as session:
                job = queue.get(session, job_id)
                # The log holds measured progress only; a stage with no estimate yet is said by
                # the event alone (the job's status answers the stage of its last logged step).
                if percentage is not None:
                    queue.log_progress(session, job, percentage, stage, eta=eta)
        except KensaError:
            return
        self._publish(
            "progress",
            {"kind": "job", "id": job_id, "stage": stage, "percentage": percentage, "eta_s": eta_s},
        )


def _pipeline_key(job: d.AnalysisJob) -> str:
    """Averages are kept per pipeline version: a new version may run at another speed."""
    return f"{job.pipeline_id}@{job.pipeline_version}"


def _suggestion(exc: KensaError) -> str:
    code = exc.code
    if code in ("model_unavailable", "model_corrupt"):
        return "sync the masters again (the model file is missing or damaged), or judge by eye"
    if code == "image_invalid":
        return "take the photo again"
    if code == "pipeline_definition_invalid":
        return "ask an administrator to fix the pipeline; judge by eye meanwhile"
    return "take the photo again, or judge by eye"
