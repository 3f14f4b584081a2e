"""``kensa pipeline …`` and ``kensa doctor``: run pipelines by hand, check the device's AI setup."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sidecar.errors import KensaError

if TYPE_CHECKING:
    from sidecar.pipeline.runtime import SessionPool
    from sidecar.pipeline.store import ModelStore

# Imports of numpy / ONNX Runtime happen inside the commands, so that ``kensa --help`` stays fast.

pipeline_app = typer.Typer(
    help="Run and check inspection pipelines (ONNX) on this device.",
    no_args_is_help=True,
    add_completion=False,
)

ModelsOpt = Annotated[
    list[Path] | None,
    typer.Option("--models", "-m", help="Extra folder of model files (repeatable)."),
]
ProviderOpt = Annotated[
    str, typer.Option("--provider", help="Execution providers in order: auto, or e.g. cuda,cpu "
                      "(cpu, cuda, directml, coreml, or ONNX Runtime names).")
]
ThreadsOpt = Annotated[
    int | None, typer.Option("--threads", help="ONNX Runtime threads per model (default ≤ 4).")
]


def _store(models: list[Path] | None) -> ModelStore:
    """What the sidecar sees (the models sync pulled into the data directory, and the OCR
    models of rapidocr's wheel), plus the folders given with ``--models``."""
    from sidecar.pipeline.store import ModelStore
    from sidecar.settings import Settings

    return ModelStore.for_device(Settings().models_dir, models or [])


def _load_definition(ref: str) -> dict[str, Any]:
    path = Path(ref)
    if not path.is_file():
        raise typer.BadParameter(f"{ref}: no such file")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _criteria(criteria: str | None) -> Any:
    if criteria:
        p = Path(criteria)
        return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else json.loads(criteria)
    return None


@pipeline_app.command("run")
def run_cmd(
    definition: Annotated[str, typer.Argument(help="Pipeline JSON file.")],
    images: Annotated[list[Path], typer.Argument(help="Image files.", exists=True,
                                                 dir_okay=False)],
    criteria: Annotated[str | None, typer.Option(help="Criteria JSON (or a file) to judge by.")]
    = None,
    target: Annotated[str, typer.Option(help="Context for judgment, e.g. "
                                        "'{\"batch_id\": \"A12-3456\"}'.")] = "{}",
    models: ModelsOpt = None,
    provider: ProviderOpt = "auto",
    threads: ThreadsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per image.")] = False,
) -> None:
    """Run a pipeline on images; print measurements, per-stage timings and (optionally) verdicts."""
    from sidecar.pipeline.engine import PipelineEngine
    from sidecar.pipeline.judgment import judge
    from sidecar.pipeline.runtime import RuntimeConfig

    config = RuntimeConfig(provider=provider, intra_op_threads=threads)
    engine = PipelineEngine(_store(models), config)
    defn = _load_definition(definition)
    crit = _criteria(criteria)
    context = {"target": json.loads(target)}
    failures = 0
    try:
        plan = engine.compile(defn)
    except KensaError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    lines: list[str] = []
    with typer.progressbar(images, label=f"{plan.definition.name} v{plan.definition.version}",
                           file=sys.stderr) as bar:
        for path in bar:
            try:
                result = engine.run(plan, path.read_bytes(), context=context)
            except KensaError as exc:
                failures += 1
                lines.append(json.dumps({"image": str(path), "error": exc.code,
                                         "message": exc.message}) if as_json
                             else f"{path}: ERROR {exc.message}")
                continue
            record = result.record()
            verdict = None
            if crit is not None:
                verdict = judge(crit, result.outputs, context, result.units).to_dict()
            if as_json:
                lines.append(json.dumps({"image": str(path), **record, "judgment": verdict},
                                        ensure_ascii=False))
            else:
                stages = " ".join(f"{k}={v:.1f}" for k, v in result.stage_ms.items())
                meas = ", ".join(f"{k}={_short(v)}" for k, v in result.outputs.items())
                tail = f"  → {verdict['result']} ({verdict['reason']})" if verdict else ""
                lines.append(f"{path}: {meas}  [{result.total_ms:.1f} ms: {stages}]{tail}")
    for line in lines:
        typer.echo(line)
    engine.close()
    if failures:
        raise typer.Exit(1)


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "[" + ", ".join(_short(x) for x in v) + "]"
    return repr(v) if isinstance(v, str) else str(v)


@pipeline_app.command("validate")
def validate_cmd(
    definition: Annotated[str, typer.Argument(help="Pipeline JSON file.")],
    models: ModelsOpt = None,
) -> None:
    """Validate a definition (ops, wiring, cycles, parameters, model shapes) without running it."""
    from sidecar.pipeline.engine import PipelineEngine

    engine = PipelineEngine(_store(models), None)
    try:
        plan = engine.compile(_load_definition(definition))
    except KensaError as exc:
        typer.echo(f"invalid: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    d = plan.definition
    typer.echo(f"ok: {d.name} v{d.version}, {len(plan.steps)} steps, outputs "
               f"{', '.join(d.outputs)}, models {', '.join(m[7:19] for m in plan.models) or '-'}")


def _gpu_lines() -> list[str]:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return ["no NVIDIA driver (nvidia-smi not found)"]
    try:
        out = subprocess.run([smi, "--query-gpu=name,memory.total,driver_version",
                              "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [f"nvidia-smi failed: {exc}"]
    return [ln.strip() for ln in out.stdout.splitlines() if ln.strip()] or ["no GPU listed"]


def _store_encryption() -> None:
    """Whether the device store is encrypted, loudly when it is not."""
    from schema.migrate import is_plaintext_sqlite
    from sidecar import key_source
    from sidecar.settings import Settings

    path = Settings().database_path
    if not path.is_file() or path.stat().st_size == 0:
        state = "none yet"
    elif is_plaintext_sqlite(path):
        state = "PLAINTEXT — NOT ENCRYPTED (development only; 'kensa db encrypt' encrypts it)"
    else:
        state = "encrypted (SQLCipher, AES-256)"
    loud = state.startswith("PLAINTEXT")
    typer.secho(f"device store {path}: {state}", fg=typer.colors.RED if loud else None, bold=loud)
    if key_source.plaintext_allowed():
        typer.secho(
            f"  {key_source.PLAINTEXT_ENV}=1: a store without a data key is allowed in clear "
            "(development only)",
            fg=typer.colors.RED,
            bold=True,
        )


def doctor(
    models: ModelsOpt = None,
    provider: ProviderOpt = "auto",
    load: Annotated[bool, typer.Option(help="Load each model to time it and show its provider.")]
    = True,
) -> None:
    """Show ONNX Runtime providers, the GPU, every model file with its verified SHA-256, and the
    provider each installed pipeline's sessions actually got."""
    from sidecar.pipeline.errors import ModelCorrupt
    from sidecar.pipeline.providers import ProviderSettingInvalid
    from sidecar.pipeline.runtime import RuntimeConfig, SessionPool, ort_build, provider_choice
    from sidecar.pipeline.store import package_models_dir
    from sidecar.settings import Settings

    typer.echo(f"data folder: {Settings().data_dir}")
    _store_encryption()
    store = _store(models)
    config = RuntimeConfig(provider=provider)
    try:
        choice = provider_choice(config)
    except ProviderSettingInvalid as exc:
        raise typer.BadParameter(exc.message, param_hint="--provider") from exc
    pool = SessionPool(store, config)
    rep = pool.report()
    typer.echo(f"onnxruntime {rep['onnxruntime']} ({ort_build()})")
    typer.echo(f"  available providers: {', '.join(rep['available_providers'])}")
    typer.echo(f"  requested: {rep['requested']} → {', '.join(rep['requested_providers'])}")
    if choice.explicit and choice.unavailable:
        typer.secho(f"  not in this build: {', '.join(choice.unavailable)}",
                    fg=typer.colors.YELLOW)
    typer.echo(f"  chosen: {choice.providers[0]} (what each session asks for first; the "
               "provider it got is listed per model and pipeline below)")
    typer.echo(f"  threads: intra-op {rep['intra_op_threads']}, inter-op "
               f"{rep['inter_op_threads']}")
    typer.echo("GPU: " + "; ".join(_gpu_lines()))
    ocr_dir = package_models_dir("rapidocr")
    typer.echo(f"OCR models (rapidocr wheel): {ocr_dir or 'not installed'}")
    typer.echo("models:")
    bad = 0
    for sha, path in store.entries():
        size = path.stat().st_size / 1e6
        try:
            store.get(f"sha256:{sha}")
            status = "sha256 ok"
        except ModelCorrupt:
            status, bad = "CORRUPT (hash mismatch)", bad + 1
            typer.echo(f"  {path}  {size:.1f} MB  {sha[:16]}…  {status}")
            continue
        extra = ""
        if load:
            try:
                m = pool.get(f"sha256:{sha}")
                extra = (f"  {m.provider}, load {m.load_ms:.0f} ms + warm-up "
                         f"{m.warmup_ms:.0f} ms")
            except KensaError as exc:
                bad += 1
                extra = f"  LOAD FAILED: {exc.message}"
        typer.echo(f"  {path}  {size:.1f} MB  {sha[:16]}…  {status}{extra}")
    seen = {sha for sha, _ in store.entries()}
    for folder in models or []:
        manifest = folder / "manifest.json"
        if manifest.is_file():
            known = {e["sha256"] for e in json.loads(manifest.read_text())["models"]}
            for sha in sorted(known - seen):
                bad += 1
                typer.echo(f"  MISSING: sha256:{sha[:16]}… (listed in {manifest})")
    bad += _pipelines(pool, load)
    if bad:
        raise typer.Exit(1)


def _installed_pipelines() -> list[tuple[str, str, int, dict[str, Any]]] | str:
    """The pipelines synced to this tablet (id, name, version, definition), read-only; or why
    they cannot be read."""
    from schema import migrate
    from schema.db import DRIVER_ERRORS
    from schema.errors import SchemaError
    from sidecar import key_source
    from sidecar.audit_verify import open_read_only
    from sidecar.settings import Settings

    path = Settings().database_path
    if not path.is_file() or path.stat().st_size == 0:
        return []
    unreadable: tuple[type[Exception], ...] = (OSError, SchemaError, *DRIVER_ERRORS)
    try:
        key = None if migrate.is_plaintext_sqlite(path) else key_source.load(path.parent).key
        conn = open_read_only(path, key)
        try:
            rows = conn.execute("SELECT id, name, version, definition FROM pipelines "
                                "WHERE deleted_at IS NULL ORDER BY id").fetchall()
        finally:
            conn.close()
    except KensaError as exc:
        return exc.message
    except unreadable as exc:
        return f"cannot read {path}: {exc}"
    return [(str(r[0]), str(r[1]), int(r[2]),
             json.loads(r[3]) if isinstance(r[3], str) else dict(r[3])) for r in rows]


def _pipelines(pool: SessionPool, load: bool) -> int:
    """Each installed pipeline and the provider its model sessions got; the number that fail."""
    from sidecar.pipeline.engine import PipelineEngine

    installed = _installed_pipelines()
    if isinstance(installed, str):
        typer.secho(f"pipelines: {installed}", fg=typer.colors.RED)
        return 1
    typer.echo("pipelines:" if installed else "pipelines: none on this tablet")
    engine = PipelineEngine(pool=pool)
    bad = 0
    for pid, name, version, definition in installed:
        head = f"  {pid} ({name} v{version})"
        try:
            plan = engine.compile(definition)
            if not plan.models:
                typer.echo(f"{head}: runs no model")
                continue
            if not load:
                typer.echo(f"{head}: {len(plan.models)} model(s), not loaded (--no-load)")
                continue
            got = [pool.get(m).provider for m in plan.models]
        except KensaError as exc:
            bad += 1
            typer.echo(f"{head}: CANNOT RUN: {exc.message}")
            continue
        typer.echo(f"{head}: {', '.join(sorted(set(got)))}")
    return bad
