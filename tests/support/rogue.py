"""A server that is not ours: it speaks the sync protocol, accepts any device token, stores
nothing, and serves whatever change pages a test hands it. What a tablet re-pointed at the
wrong address (by mistake or by someone holding it) would talk to."""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class RogueServer:
    def __init__(self, changes: list[dict[str, Any]]) -> None:
        self.changes = changes
        self.device_id = str(uuid.uuid4())
        self.pushed: list[dict[str, Any]] = []
        rogue = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def _answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> Any:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length) or b"{}")

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/sync/v1/ping":
                    self._answer(200, {"ok": True})
                elif path == "/sync/v1/changes":
                    self._answer(200, {"changes": rogue.changes, "cursor": "r:1",
                                       "has_more": False})
                elif path == "/sync/v1/conflicts":
                    self._answer(200, {"conflicts": [], "cursor": 0})
                else:
                    self._answer(404, {"error": {"code": "not_found", "message": path}})

            def do_POST(self) -> None:
                path = self.path.split("?", 1)[0]
                body = self._body()
                if path == "/sync/v1/auth":
                    self._answer(200, {"access_token": "rogue", "expires_in": 3600,
                                       "device_id": rogue.device_id, "device_name": "ROGUE",
                                       "device_type": "tablet", "last_applied_seq": 0})
                elif path == "/sync/v1/push":
                    rogue.pushed.append(body)
                    seqs = [op["seq"] for op in body["ops"]]
                    self._answer(200, {"applied_through_seq": seqs[-1], "stored": len(seqs),
                                       "duplicates": 0, "last_applied_seq": max(seqs)})
                elif path == "/sync/v1/files/missing":
                    self._answer(200, {"missing": []})
                else:
                    self._answer(404, {"error": {"code": "not_found", "message": path}})

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def __enter__(self) -> RogueServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._http.shutdown()
        self._http.server_close()
