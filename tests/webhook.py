"""A real HTTP server on loopback that records JSON POSTs: the alert webhook the lifecycle tests listen with."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any


class Recorder:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.fail_first = 0  # answer the first N requests with 503
        self.url = ""


@contextmanager
def loopback_webhook() -> Iterator[Recorder]:
    rec = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if rec.fail_first > 0:
                rec.fail_first -= 1
                self.send_response(503)
                self.end_headers()
                return
            rec.received.append(body)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
