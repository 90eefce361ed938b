"""A real HTTP server on loopback that answers with recorded payloads, for the API clients' tests."""

from __future__ import annotations

import json
import threading
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Reply:
    """One scripted answer."""

    #: the JSON body, or a function of the request's query that returns it (or a whole Reply)
    body: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # sent as is (truncated JSON and such)


class Recorded:
    """Answers per path, in order; the last one repeats. Requests are recorded with their query."""

    def __init__(self) -> None:
        self.replies: dict[str, deque[Reply]] = defaultdict(deque)
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.url = ""

    def on(self, path: str, *replies: Reply) -> None:
        self.replies[path].extend(replies)

    def next(self, path: str) -> Reply:
        queue = self.replies.get(path)
        if not queue:
            return Reply({"error": "no route"}, 404)
        return queue.popleft() if len(queue) > 1 else queue[0]


@contextmanager
def api_server() -> Iterator[Recorded]:
    """Serve `Recorded` answers on 127.0.0.1 (a free port) for the duration of the block."""
    recorded = Recorded()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            recorded.requests.append((parts.path, dict(parse_qsl(parts.query))))
            reply = recorded.next(parts.path)
            body = reply.body(dict(parse_qsl(parts.query))) if callable(reply.body) else reply.body
            if isinstance(body, Reply):  # a function may answer with a whole reply (its status and headers)
                reply, body = body, body.body
            data = reply.raw if reply.raw is not None else json.dumps(body).encode()
            self.send_response(reply.status)
            if not any(name.lower() == "content-type" for name in reply.headers):
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    recorded.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorded
    finally:
        server.shutdown()
        server.server_close()
