"""``python -m sidecar``: what the Tauri shell spawns (see ``sidecar.launch``)."""

from __future__ import annotations

import argparse
import sys

from sidecar.launch import serve
from sidecar.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sidecar")
    parser.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 (default: any)")
    parser.add_argument(
        "--no-stdin-watch", action="store_true", help="keep running when stdin closes"
    )
    parser.add_argument(
        "--key-stdin",
        action="store_true",
        help='read the data key from the first line on stdin: {"data_key": "<64 hex>"}',
    )
    args = parser.parse_args(argv)
    settings = Settings()
    if args.port is not None:
        settings.port = args.port
    return serve(settings, watch_stdin=not args.no_stdin_watch, key_stdin=args.key_stdin)


if __name__ == "__main__":
    sys.exit(main())
