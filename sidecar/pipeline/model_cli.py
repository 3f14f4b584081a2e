"""``kensa model check``: a model and its pipeline, checked and run before they are published."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from sidecar.errors import KensaError

# Exit status of a check that found a problem: the model, pipeline or an image cannot be used.
EXIT_INVALID = 2

model_app = typer.Typer(
    help="Check your own ONNX models with the pipelines that run them.",
    no_args_is_help=True,
    add_completion=False,
)


@model_app.callback()
def _group() -> None:
    """Check your own ONNX models with the pipelines that run them."""


@model_app.command("check")
def check_cmd(
    model: Annotated[Path, typer.Argument(help="The ONNX model file.")],
    pipeline: Annotated[Path, typer.Option("--pipeline", "-p",
                                           help="The pipeline definition (JSON) that runs it.")],
    images: Annotated[list[Path] | None, typer.Argument(help="Images to run through it.")]
    = None,
    models: Annotated[list[Path] | None, typer.Option(
        "--models", "-m", help="Folder of the other models the pipeline names (repeatable).")]
    = None,
    provider: Annotated[str, typer.Option(
        help="Execution providers in order: auto, or e.g. cuda,cpu (cpu, cuda, directml, coreml).")]
    = "auto",
    threads: Annotated[int | None, typer.Option(help="ONNX Runtime threads per model.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")]
    = False,
) -> None:
    """Validate the pipeline as the server does at publish, then the model's file, opsets,
    shapes and providers; run the images and print their outputs and timings. Exit 2 naming
    the file or step at fault."""
    from sidecar.pipeline.model_check import check
    from sidecar.pipeline.providers import ProviderSettingInvalid, parse

    try:
        parse(provider)
    except ProviderSettingInvalid as exc:
        raise typer.BadParameter(exc.message, param_hint="--provider") from exc
    emit = (lambda line: None) if as_json else typer.echo
    try:
        report = check(model, pipeline, images or [], model_dirs=models or [],
                       provider=provider, threads=threads, emit=emit)
    except KensaError as exc:
        if as_json:
            typer.echo(json.dumps({"ok": False, "error": {
                "code": exc.code, "message": exc.message,
                "detail": {k: v for k, v in exc.detail.items() if v is not None}}},
                ensure_ascii=False, default=str))
        typer.secho(f"error: {exc.message}", err=True, fg=typer.colors.RED)
        raise typer.Exit(EXIT_INVALID) from exc
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False))
    else:
        typer.echo(f"ok: {model.name} with {pipeline.name}"
                   f"{f', {len(images or [])} images run' if images else ''}")
