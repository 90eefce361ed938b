"""A Jetstream websocket server on loopback that replays recorded events after the client's cursor."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qs, urlsplit

from websockets.sync.server import ServerConnection, serve


@contextmanager
def jetstream(events: list[dict[str, object]], close_after: int | None = None) -> Iterator[tuple[str, list[str]]]:
    paths: list[str] = []

    def handler(ws: ServerConnection) -> None:
        paths.append(ws.request.path if ws.request else "")
        query = parse_qs(urlsplit(paths[-1]).query)
        cursor = int(query["cursor"][0]) if "cursor" in query else 0
        sent = 0
        for event in events:
            if int(event["time_us"]) > cursor:  # type: ignore[call-overload]
                ws.send(json.dumps(event))
                sent += 1
                if close_after and sent >= close_after:
                    return
        ws.recv()  # then idle, like a quiet firehose, until the client leaves

    with serve(handler, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        host, port = server.socket.getsockname()[:2]
        try:
            yield f"ws://{host}:{port}/subscribe", paths
        finally:
            server.shutdown()
