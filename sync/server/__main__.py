"""``python -m sync.server …``: the ``kensa server`` commands without the sidecar's imports."""

from sync.cli import server_app

if __name__ == "__main__":
    server_app(prog_name="kensa server")
