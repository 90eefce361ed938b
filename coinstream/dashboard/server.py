"""`coinstream dashboard`: a page on 127.0.0.1 that works offline (no CDN): charts from the warehouse."""

from __future__ import annotations

import json
import logging
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import duckdb

from coinstream.config import Pipeline, Settings
from coinstream.dashboard.data import RANGES, chart_data

logger = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


def stack_panel(settings: Settings, pipeline: Pipeline) -> dict[str, Any]:
    """Consumer lag, dead letters and the live app's newest minute, when the local stack runs."""
    from coinstream import local_stack
    from coinstream.aws import client
    from consumer.live_sink import read_minutes
    from consumer.runner import app_progress

    panel: dict[str, Any] = {"consumer_lag": None, "dead_letters": None, "live_newest": None}
    if settings.target != "local" or not local_stack.kinesis_proc(settings).pid():
        return panel
    try:
        panel["consumer_lag"] = sum(s.behind for s in app_progress(settings, pipeline, "warehouse"))
        status = local_stack.status(settings, pipeline)
        panel["dead_letters"] = status.objects.get(pipeline.dead_letter_prefix, (0, 0))[1]
        minutes = read_minutes(client("dynamodb", settings), pipeline.live_table)
        panel["live_newest"] = minutes[-1]["minute"] if minutes else None
    except Exception as exc:
        logger.debug("stack panel: %s", exc)
    return panel


class Handler(SimpleHTTPRequestHandler):
    """Static files from the package, plus /api/data."""

    def __init__(self, *args: Any, settings: Settings, pipeline: Pipeline, **kwargs: Any) -> None:
        self.settings = settings
        self.pipeline = pipeline
        super().__init__(*args, directory=str(STATIC), **kwargs)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != "/api/data":
            super().do_GET()
            return
        query = parse_qs(parts.query)
        range_name = query.get("range", ["24h"])[0]
        if range_name not in RANGES and range_name != "all":
            self._json({"error": f"range must be one of {', '.join([*RANGES, 'all'])}"}, 400)
            return
        try:
            window = max(10, min(720, int(query.get("window", ["60"])[0])))
        except ValueError:
            self._json({"error": "window must be a number of minutes"}, 400)
            return
        if not self.settings.warehouse_path.exists():
            self._json({"empty": True, "freshness": {}, "stack": stack_panel(self.settings, self.pipeline)})
            return
        try:
            db = duckdb.connect(str(self.settings.warehouse_path), read_only=True)
        except duckdb.Error:
            self._json({"error": "the warehouse is busy (a load is running); the page retries"}, 503)
            return
        try:
            data = chart_data(db, range_name, window)
        finally:
            db.close()
        data["stack"] = stack_panel(self.settings, self.pipeline)
        self._json(data)

    def _json(self, payload: dict[str, Any], status: int = 200) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug(format, *args)


def serve(settings: Settings, pipeline: Pipeline, port: int) -> ThreadingHTTPServer:
    """A server bound to 127.0.0.1:port (not started)."""
    return ThreadingHTTPServer((settings.host, port), partial(Handler, settings=settings, pipeline=pipeline))


def standalone_html(data: dict[str, Any]) -> str:
    """The dashboard as one self-contained HTML file with its data inlined (no server, no network)."""
    page = (STATIC / "index.html").read_text()
    css = (STATIC / "dashboard.css").read_text()
    js = (STATIC / "dashboard.js").read_text()
    payload = json.dumps(data).replace("</", "<\\/")
    page = page.replace('<link rel="stylesheet" href="dashboard.css">', f"<style>{css}</style>")
    return page.replace(
        '<script src="dashboard.js"></script>',
        f"<script>window.COINSTREAM_DATA = {payload};</script>\n<script>{js}</script>",
    )
