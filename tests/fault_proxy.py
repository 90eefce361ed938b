"""A loopback proxy in front of one AWS endpoint of the local stack that can answer errors for a while.

Point one service at it (AWS_ENDPOINT_URL_FIREHOSE=proxy.url) and switch `failing` on to stage an outage of
that service alone; everything else keeps talking to moto directly.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


class FaultProxy:
    """Forwards requests to `upstream`; while `failing`, answers 503 ServiceUnavailableException instead."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.failing = False
        self.forwarded = 0
        self.refused = 0
        self.url = ""


@contextmanager
def fault_proxy(upstream: str) -> Iterator[FaultProxy]:
    """A running proxy on 127.0.0.1 (a free port) for the duration of the block."""
    proxy = FaultProxy(upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if proxy.failing:
                proxy.refused += 1
                data = json.dumps({"__type": "ServiceUnavailableException", "message": "staged outage"}).encode()
                self._answer(503, {"Content-Type": "application/x-amz-json-1.1"}, data)
                return
            conn = http.client.HTTPConnection(proxy.upstream.hostname or "127.0.0.1", proxy.upstream.port, timeout=30)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                conn.request("POST", self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                kept = {
                    k: v
                    for k, v in response.getheaders()
                    if k.lower() not in ("content-length", "transfer-encoding", "connection")
                }
                proxy.forwarded += 1
                self._answer(response.status, kept, data)
            finally:
                conn.close()

        def _answer(self, status: int, headers: dict[str, str], data: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
