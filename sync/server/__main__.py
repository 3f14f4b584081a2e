"""``python -m sync.server …``: the same as ``kensa-server …``."""

from sync.server.cli import main

if __name__ == "__main__":
    main()
