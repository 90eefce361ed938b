"""The dashboard in Debian's Chromium, driven by Playwright, over a warehouse with known data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from coinstream.processes import free_port
from producer.sources import simulated
from tests.warehouse_data import simulated_warehouse

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


@pytest.fixture
def dashboard_url(tmp_path: Path) -> str:
    simulated_warehouse(tmp_path / "w.duckdb", simulated.Simulation(), minutes=MINUTES)
    port = free_port()
    env = {**os.environ, "COINSTREAM_WAREHOUSE_FILE": str(tmp_path / "w.duckdb"), "COINSTREAM_STATE_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "operate", "dashboard", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            break
        except OSError:
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@needs_chromium
def test_every_chart_draws_the_known_points_and_freshness_shows_the_newest_times(
    dashboard_url: str, tmp_path: Path
) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        requests_outside: list[str] = []
        page.on("request", lambda r: requests_outside.append(r.url) if not r.url.startswith(dashboard_url) else None)
        page.goto(dashboard_url)
        page.select_option("#range", "all")
        page.wait_for_selector("body[data-ready=true] #chart-cross rect", timeout=30_000)
        points = lambda series: int(page.get_attribute(f'[data-series="{series}"]', "data-points"))  # noqa: E731
        assert points("volume") == MINUTES and points("close") == MINUTES and points("high-low") == MINUTES
        assert points("posts-simulated") == MINUTES  # posts per minute, zero-filled: one point a minute
        assert points("rolling") == MINUTES - 60 + 1  # a 60-minute window starts at its 60th minute
        assert page.locator("#chart-cross rect").count() == 61  # lags -30..+30
        assert page.get_attribute("#chart-cross", "data-best-lag") == "5"  # the planted lag, marked
        assert page.locator("#chart-cross rect.best").get_attribute("data-lag") == "5"
        newest = page.text_content("#fresh-candle-simulated")
        assert newest == "2026-11-28T11:59:00Z"
        assert page.text_content("#fresh-post-simulated").startswith("2026-11-28T11:59:")
        assert page.is_hidden("#empty") and requests_outside == []  # works offline: nothing beyond localhost
        shot = Path(os.environ.get("COINSTREAM_SCREENSHOT", tmp_path / "dashboard.png"))
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        browser.close()


@needs_chromium
def test_no_data_yet_says_so(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "COINSTREAM_WAREHOUSE_FILE": str(tmp_path / "none.duckdb"),
        "COINSTREAM_STATE_DIR": str(tmp_path),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "operate", "dashboard", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
            page = browser.new_page()
            for _ in range(50):
                try:
                    page.goto(f"http://127.0.0.1:{port}/")
                    break
                except Exception:
                    time.sleep(0.2)
            page.wait_for_selector("body[data-ready=true]", timeout=30_000)
            assert page.is_visible("#empty") and "No data yet" in page.text_content("#empty")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@needs_chromium
def test_analyze_writes_a_self_contained_html_report(tmp_path: Path) -> None:
    simulated_warehouse(tmp_path / "w.duckdb", simulated.Simulation(), minutes=MINUTES)
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
        page.wait_for_selector("body[data-ready=true] #chart-cross rect.best")
        assert page.get_attribute('[data-series="volume"]', "data-points") == str(MINUTES)
        assert fetched == [report.as_uri()]  # one file, nothing else loaded
        browser.close()
