"""``kensa qr``: read codes (QR, Data Matrix, Code 128) from image files, the same way the
sidecar reads uploads."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

qr_app = typer.Typer(help="Read QR, Data Matrix and Code 128 codes from image files.",
                     no_args_is_help=True)

# Exit status when some file could not be read or is not an image; 2 like ``kensa db``'s errors.
EXIT_UNREADABLE = 2


@qr_app.callback()
def _group() -> None:
    # A Typer app with a single command otherwise *becomes* that command, so ``kensa qr decode``
    # would take "decode" for a file name; the callback keeps ``qr`` a group.
    pass


_DECODE_HELP = (
    "Print the codes (QR, Data Matrix, Code 128) found in each image, one line per file.\n\n"
    'With --json each line is {"path", "codes": [{"text", "format"}], "ms"}, ms being the time '
    "to decode the image (file reading excluded). A file that cannot be read or is not an image "
    'gets "codes": [] and "error": {"code", "message"}; its "ms" is null if it could not be read.'
    "\n\n"
    "Exit status: 0 when every file was read as an image, whether or not it held a code (finding "
    "none is an answer, not a failure); 2 when any file was missing, unreadable or not an image. "
    "Every file is processed and printed either way."
)


@qr_app.command(help=_DECODE_HELP)
def decode(
    paths: Annotated[list[Path], typer.Argument(
        metavar="PATH", help="Image files (PNG, JPEG, BMP, TIFF, WebP…).", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Decode each file in turn (see _DECODE_HELP for the output and exit status)."""
    # Imported here, not at module level: OpenCV and the decoders take a while to load, and
    # ``kensa --help`` imports this module.
    from sidecar.errors import ImageInvalid
    from sidecar.qr.decode import decode_image

    failed = False
    for path in paths:
        line: dict[str, Any] = {"path": str(path), "codes": [], "ms": None}
        try:
            data = path.read_bytes()
        except OSError as exc:
            code = "not_found" if isinstance(exc, FileNotFoundError) else "unreadable"
            line["error"] = {"code": code, "message": exc.strerror or str(exc)}
        else:
            start = time.perf_counter()
            try:
                codes = decode_image(data)
            except ImageInvalid as exc:
                line["error"] = {"code": exc.code, "message": exc.message}
            else:
                line["codes"] = [{"text": c.text, "format": c.format} for c in codes]
            line["ms"] = round((time.perf_counter() - start) * 1000, 3)
        failed = failed or "error" in line
        typer.echo(json.dumps(line) if as_json else _human(line))
    if failed:
        raise typer.Exit(code=EXIT_UNREADABLE)


def _human(line: dict[str, Any]) -> str:
    if "error" in line:
        return f"{line['path']}: error: {line['error']['message']}"
    # json.dumps quotes the text and escapes its newlines, keeping one line per file.
    found = "; ".join(f"{c['format']} {json.dumps(c['text'], ensure_ascii=False)}"
                      for c in line["codes"]) or "no code found"
    return f"{line['path']}: {found} ({line['ms']:.1f} ms)"
