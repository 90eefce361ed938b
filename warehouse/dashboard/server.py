"""`coinstream dashboard`: a page on 127.0.0.1 that works offline (no CDN): charts from the warehouse."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from coinstream.errors import FatalError
from warehouse.dashboard.data import RANGES, chart_data, study, verdicts
from warehouse.family import Pair
from warehouse.reading import Busy, Reader

logger = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


#: What the page shows about the running pipeline (consumer lag, dead letters, live app); the
#: operator's layer supplies it, since the warehouse side does not know the stream or the consumer.
StackPanel = Callable[[], dict[str, Any]]


def no_stack() -> dict[str, Any]:
    """The panel when nothing reports on the running pipeline."""
    return {"consumer_lag": None, "dead_letters": None, "live_newest": None}


class Studies:
    """The family's verdicts per (range, window), judged in the background and kept until the warehouse's newest
    rows change. Judging reads every pair's minutes through the views (seconds on a month of 10 million posts), so
    a page never waits for it: it shows the last verdicts it has, marked as being judged again, until they come."""

    KEEP = 8

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self._lock = threading.Lock()
        self._kept: dict[tuple[str, int, str], list[Pair]] = {}
        self._latest: dict[tuple[str, int], list[Pair]] = {}
        self._running: set[tuple[str, int, str]] = set()

    def of(self, range_name: str, window: int, newest: dict[str, Any]) -> tuple[list[Pair] | None, bool]:
        """(the verdicts for these rows, or the last ones of this range and window; whether they are current)."""
        key = (range_name, window, json.dumps(newest, sort_keys=True))
        with self._lock:
            if key in self._kept:
                return self._kept[key], True
            if key not in self._running:
                self._running.add(key)
                threading.Thread(target=self._judge, args=(key,), name="coinstream-judge", daemon=True).start()
            return self._latest.get(key[:2]), False

    def _judge(self, key: tuple[str, int, str]) -> None:
        try:
            db = self.reader()
            if db is None:
                return
            try:
                pairs = study(db, key[0], key[1])
            finally:
                db.close()
            with self._lock:
                self._kept[key] = self._latest[key[:2]] = pairs
                while len(self._kept) > self.KEEP:
                    del self._kept[next(iter(self._kept))]
        except Busy:
            pass  # a load holds the warehouse: the page's next request asks again
        except Exception:  # a thread's error would vanish: say it, and let the next request try again
            logger.exception("judging the family of pairs failed")
        finally:
            with self._lock:
                self._running.discard(key)


class Handler(SimpleHTTPRequestHandler):
    """Static files from the package, plus /api/data."""

    def __init__(
        self,
        *args: Any,
        reader: Reader,
        stack_panel: StackPanel,
        hosts: frozenset[str],
        within: dict[str, int] | None,
        studies: Studies,
        **kwargs: Any,
    ) -> None:
        self.reader = reader
        self.stack_panel = stack_panel
        self.hosts = hosts
        self.within = within
        self.studies = studies
        super().__init__(*args, directory=str(STATIC), **kwargs)

    def do_GET(self) -> None:
        if host_name(self.headers.get("Host", "")) not in self.hosts:
            # DNS rebinding: a page elsewhere that points its own name at 127.0.0.1 would read this one
            self.send_error(421, "Misdirected Request", "this dashboard answers only to its own host names")
            return
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
        try:
            db = self.reader()
        except Busy:
            self._json({"error": "the warehouse is busy (a load is running); the page retries"}, 503)
            return
        if db is None:
            self._json({"empty": True, "freshness": {}, "stack": self.stack_panel()})
            return
        try:
            data = chart_data(
                db,
                range_name,
                window,
                exchange=query.get("exchange", [None])[0] or None,
                market=query.get("market", [None])[0] or None,
                within=self.within,
            )
            if not data["empty"]:
                newest = {k: v for k, v in data["freshness"].items() if k != "stale"}
                pairs, current = self.studies.of(range_name, window, newest)
                selected = data["selected"]
                data.update(verdicts(pairs or [], f"{selected['exchange']} {selected['market']}"), judging=not current)
        finally:
            db.close()
        data["stack"] = self.stack_panel()
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


#: The names a browser on this machine uses for loopback: answered on any bind address.
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def host_name(header: str) -> str:
    """The name of a `Host` header, without its port ("[::1]:8050" -> "::1"), lower-cased."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rpartition(":")[0] if header.count(":") == 1 else header


def serve(
    reader: Reader,
    host: str,
    port: int,
    stack_panel: StackPanel = no_stack,
    *,
    names: tuple[str, ...] = (),
    within: dict[str, int] | None = None,
) -> ThreadingHTTPServer:
    """A server bound to host:port (not started) that reads the warehouse through `reader`, and the stack panel.

    It answers only requests whose `Host` is a loopback name, the bound host, or one of `names` (a name it is
    published under); any other gets 421. `within` (`data.within_minutes`) marks the stale sources.
    """
    hosts = LOOPBACK_NAMES | {host.lower()} | {n.lower() for n in names}
    handler = partial(
        Handler, reader=reader, stack_panel=stack_panel, hosts=frozenset(hosts), within=within, studies=Studies(reader)
    )
    return ThreadingHTTPServer((host, port), handler)


def standalone_html(data: dict[str, Any]) -> str:
    """The dashboard as one self-contained HTML file with its data inlined (no server, no network): `data` is
    {"pages": {"<exchange>|<market>": one series' page}, "first": the key shown first}."""
    page = (STATIC / "index.html").read_text()
    css = (STATIC / "dashboard.css").read_text()
    js = (STATIC / "dashboard.js").read_text()
    payload = json.dumps(data).replace("</", "<\\/")
    page = page.replace('<link rel="stylesheet" href="dashboard.css">', f"<style>{css}</style>")
    page = page.replace('<script src="vendor/echarts.min.js"></script>', f"<script>{chart_library()}</script>")
    return page.replace(
        '<script src="dashboard.js"></script>',
        f"<script>window.COINSTREAM_DATA = {payload};</script>\n<script>{js}</script>",
    )


def chart_library() -> str:
    """Apache ECharts as `make setup` copied it from npm (the wheel carries it); FatalError naming the fix if absent."""
    try:
        return (STATIC / "vendor" / "echarts.min.js").read_text().replace("</script", "<\\/script")
    except FileNotFoundError:
        raise FatalError(
            f"the dashboard's chart library is missing from {STATIC / 'vendor'}: run `make setup` "
            "(it copies node_modules/echarts/dist/echarts.min.js there)"
        ) from None
