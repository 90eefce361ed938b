"""The dashboard in Debian's Chromium, driven by Playwright, over a warehouse with known data."""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from coinstream import records
from coinstream.processes import free_port
from coinstream.timeutil import epoch_minute, minute_start
from producer.sources import simulated
from tests.warehouse_data import NOW, warehouse_of

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Skipped where chromium is missing, except in CI (.ci/run sets this), where a skip would hide a gap.
needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not os.environ.get("COINSTREAM_REQUIRE_BROWSER"),
    reason="Debian chromium is installed by `make test` (apt-get install chromium)",
)
FLAGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
MINUTES = 180


def upbit_volume(minute: int) -> str:
    """Upbit's (unrelated) volume in an epoch minute, as exact decimal text; no trade in every 7th minute."""
    return f"{(minute * 7919) % 1000 / 997 + 0.5:.8f}"


@contextmanager
def dashboard(warehouse_file: Path, state: Path) -> Iterator[int]:
    """`coinstream dashboard` on a free port over `warehouse_file`, answering; its port."""
    port = free_port()
    env = {**os.environ, "COINSTREAM_WAREHOUSE_FILE": str(warehouse_file), "COINSTREAM_STATE_DIR": str(state)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "operate", "dashboard", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).read()
                break
            except OSError:
                time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def two_series(path: Path) -> None:
    """A warehouse of the simulation (posts leading volume by 5 min) and an unrelated Upbit series."""
    sim = simulated.Simulation()
    last = epoch_minute(NOW) - 1
    first = last - MINUTES + 1
    upbit = [
        records.candle(
            "upbit",
            "KRW-BTC",
            minute_start(m),
            NOW,
            {"open": "100", "high": "110", "low": "90", "close": "105", "volume": upbit_volume(m), "quote_volume": "1"},
        )
        for m in range(first, last + 1)
        if m % 7 or m == last
    ]
    warehouse_of(path, [*simulated.candles(sim, first, last, NOW), *simulated.posts(sim, first, last, NOW), *upbit])


@pytest.fixture
def dashboard_url(tmp_path: Path) -> Iterator[str]:
    two_series(tmp_path / "w.duckdb")
    with dashboard(tmp_path / "w.duckdb", tmp_path) as port:
        yield f"http://127.0.0.1:{port}/"


#: Points drawn per series of a chart, read from the chart library itself ("-" and null are gaps).
POINTS = """id => Object.fromEntries(echarts.getInstanceByDom(document.getElementById(id)).getOption().series.map(
    s => [s.name || s.type, s.data.filter(v => v !== null && v !== "-" && !(v && v.value === null)).length]))"""


def hover(page: Any, chart_id: str, index: int) -> str:
    """Move the mouse over minute `index` of a chart, as a user would; the tooltip's text."""
    x, y = page.evaluate(
        """([id, i]) => echarts.getInstanceByDom(document.getElementById(id))
               .convertToPixel({xAxisIndex: 0, yAxisIndex: 0}, [i, 0])""",
        [chart_id, index],
    )
    box = page.locator(f"#{chart_id}").bounding_box()
    page.mouse.move(box["x"] + x, box["y"] + y - 20)
    tip = page.locator(f"#{chart_id} .tip")
    tip.wait_for(state="visible", timeout=10_000)
    return str(tip.inner_text())


@needs_chromium
def test_every_chart_draws_the_known_points_and_the_tooltip_shows_exact_values(
    dashboard_url: str, tmp_path: Path
) -> None:
    sim = simulated.Simulation()
    last = epoch_minute(NOW) - 1
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        requests_outside: list[str] = []
        page.on("request", lambda r: requests_outside.append(r.url) if not r.url.startswith(dashboard_url) else None)
        page.goto(dashboard_url)
        page.wait_for_selector("body[data-ready=true]", timeout=30_000)
        assert page.eval_on_selector_all("#series option", "os => os.map(o => o.textContent)") == [
            "simulated KRW-BTC",
            "upbit KRW-BTC",
        ]
        page.select_option("#range", "all")
        page.wait_for_selector("body[data-ready=true]", timeout=30_000)
        points = lambda chart_id: page.evaluate(POINTS, chart_id)  # noqa: E731
        assert points("chart-activity") == {"posts simulated": MINUTES, "volume": MINUTES}
        assert points("chart-price") == {"OHLC": MINUTES}  # one candle a minute
        assert points("chart-rolling") == {"r over 60 min": MINUTES - 60 + 1}  # a 60-minute window starts at its 60th
        assert points("chart-cross") == {"bar": 61}  # lags -30..+30
        assert page.get_attribute("#chart-cross", "data-best-lag") == "5"  # the planted lag, marked
        tip = hover(page, "chart-activity", MINUTES - 1)
        assert "2026-11-28T11:59:00Z" in tip
        assert f"{sim.volume(last):.8f}".rstrip("0") in tip  # the decimal as stored, not a rounded float
        assert page.text_content("#fresh-candle-simulated") == "2026-11-28T11:59:00Z"
        assert page.text_content("#fresh-post-simulated").startswith("2026-11-28T11:59:")
        # days older than its schedule allows (the producers run every minute): marked, with the allowance
        stale = page.get_attribute("#fresh-candle-simulated", "data-stale")
        assert stale.startswith("stale: ") and stale.endswith("days old, expected within 18 min")
        # the verdict of the selected series, from the family adjusted together (judged in the background, so the
        # page asks again until it has it); its row marked in the table
        page.wait_for_selector("body[data-judging=false]", timeout=30_000)
        assert page.text_content("#report-series") == "simulated KRW-BTC"
        assert page.text_content("#verdict").startswith("posts lead volume by 5 min")
        # two pairs, but the Upbit one has too little data and tests nothing: the adjustment counts the one pair's
        # three claims (together, posts lead, volume leads)
        assert "adjusted p=" in page.text_content("#verdict") and "[Holm over 3 claims]" in page.text_content(
            "#verdict"
        )
        assert page.text_content("#family-title").startswith("1 pair tested (1 other with too little data)")
        rows = page.eval_on_selector_all("#pairs tr", "rs => rs.map(r => [r.className, r.cells[0].textContent])")
        assert rows == [["selected", "simulated KRW-BTC x simulated"], ["", "upbit KRW-BTC x real"]]

        page.select_option("#series", "upbit|KRW-BTC")  # the other exchange: its own series, nothing mixed
        page.wait_for_selector("body[data-ready=true]", timeout=30_000)
        assert points("chart-activity") == {"volume": MINUTES}  # simulated posts never meet real candles
        no_trade = next(i for i in range(MINUTES) if (last - MINUTES + 1 + i) % 7 == 0)
        assert points("chart-price") == {
            "OHLC": MINUTES - sum(1 for i in range(MINUTES - 1) if (last - MINUTES + 1 + i) % 7 == 0)
        }
        tip = hover(page, "chart-activity", no_trade)
        assert "no trade this minute" in tip and "0" in tip.split("volume")[1]
        tip = hover(page, "chart-activity", MINUTES - 1)
        assert upbit_volume(last).rstrip("0").rstrip(".") in tip
        assert page.is_hidden("#empty") and requests_outside == []  # works offline: nothing beyond localhost
        page.select_option("#series", "simulated|KRW-BTC")
        page.wait_for_selector("body[data-ready=true]", timeout=30_000)
        assert "posts simulated" in hover(page, "chart-activity", 120)  # the README's screenshot shows a tooltip
        shot = Path(os.environ.get("COINSTREAM_SCREENSHOT", tmp_path / "dashboard.png"))
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        browser.close()


@needs_chromium
def test_no_data_yet_says_so(tmp_path: Path) -> None:
    with dashboard(tmp_path / "none.duckdb", tmp_path) as port, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("body[data-ready=true]", timeout=30_000)
        assert page.is_visible("#empty") and "No data yet" in page.text_content("#empty")
        browser.close()


@needs_chromium
def test_analyze_writes_a_self_contained_html_report_of_every_series(tmp_path: Path) -> None:
    two_series(tmp_path / "w.duckdb")
    env = {**os.environ, "COINSTREAM_WAREHOUSE_FILE": str(tmp_path / "w.duckdb"), "COINSTREAM_STATE_DIR": str(tmp_path)}
    report = tmp_path / "report.html"
    done = subprocess.run(
        [sys.executable, "-m", "operate", "analyze", "--html", str(report)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page()
        fetched: list[str] = []
        page.on("request", lambda r: fetched.append(r.url))
        page.goto(report.as_uri())
        page.wait_for_selector("body[data-ready=true]")
        assert page.get_attribute("#chart-cross", "data-best-lag") == "5"
        assert page.is_visible("#report") and page.text_content("#verdict").startswith("posts lead volume by 5 min")
        assert "Granger causality" in page.text_content("#checks") and "stationarity" in page.text_content("#checks")
        assert page.evaluate(POINTS, "chart-price") == {"OHLC": MINUTES}
        assert page.eval_on_selector_all("#pairs tr td:first-child", "ds => ds.map(d => d.textContent)") == [
            "simulated KRW-BTC x simulated",
            "upbit KRW-BTC x real",
        ]
        page.select_option("#series", "upbit|KRW-BTC")  # the other series, from the same file
        page.wait_for_selector("body[data-ready=true]")
        assert page.text_content("#report-series") == "upbit KRW-BTC"
        assert page.evaluate(POINTS, "chart-activity") == {"volume": MINUTES}
        assert page.text_content("#pairs tr.selected td") == "upbit KRW-BTC x real"
        assert fetched == [report.as_uri()]  # one file, nothing else loaded
        page.select_option("#series", "simulated|KRW-BTC")
        page.wait_for_selector("body[data-ready=true]")
        # the docs' picture of a saved report (`make screenshots` writes it there)
        shot = Path(os.environ.get("COINSTREAM_REPORT_SCREENSHOT", tmp_path / "report.png"))
        page.set_viewport_size({"width": 1400, "height": 1000})
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        browser.close()


def test_the_dashboard_answers_only_its_own_host_names(tmp_path: Path) -> None:
    """DNS rebinding: a page on attacker.example that points its name at 127.0.0.1 must not read the dashboard."""
    with dashboard(tmp_path / "none.duckdb", tmp_path) as port:

        def status(host: str, path: str) -> int:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                connection.request("GET", path, headers={"Host": host})
                return connection.getresponse().status
            finally:
                connection.close()

        for path in ("/", "/api/data"):
            assert status(f"127.0.0.1:{port}", path) == 200
            assert status(f"localhost:{port}", path) == 200
            assert status(f"[::1]:{port}", path) == 200
            assert status(f"attacker.example:{port}", path) == 421
            assert status("attacker.example", path) == 421
            assert status(f"127.0.0.1.attacker.example:{port}", path) == 421
