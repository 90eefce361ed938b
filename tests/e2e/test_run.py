"""`coinstream run`: the whole pipeline in one command, killed with SIGKILL and started again, nothing lost."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from coinstream.timeutil import epoch_minute
from tests.history_api import Exchange, exchanges, expected_rows
from tests.stack import coinstream, processes_mentioning, stack_env

#: The window healing keeps whole, and the flags that make a test's minutes pass quickly.
HISTORY_MINUTES = 180
FAST = (
    "--history",
    f"{HISTORY_MINUTES}m",
    "--produce-every",
    "5s",
    "--load-every",
    "3s",
    "--heal-every",
    "20s",
    "--compact-every",
    "45s",
)


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "operate", "run", "--source", "upbit", "--source", "coinone", *FAST],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _candles(warehouse: Path) -> dict[str, dict[int, tuple[Decimal, Decimal, Decimal, int]]] | None:
    """Per exchange: minute -> (open, close, volume, copies in the view); None while a load holds the file."""
    if not warehouse.exists():
        return {}
    try:
        db = duckdb.connect(str(warehouse), read_only=True)
    except duckdb.Error:
        return None
    try:
        rows = db.execute(
            "SELECT exchange, epoch(minute_utc)::BIGINT // 60, any_value(open_price), any_value(close_price), "
            "any_value(volume), count(*) FROM candles GROUP BY ALL"
        ).fetchall()
    except duckdb.Error:
        return None
    finally:
        db.close()
    out: dict[str, dict[int, tuple[Decimal, Decimal, Decimal, int]]] = {}
    for exchange, minute, o, c, v, n in rows:
        out.setdefault(exchange, {})[minute] = (o, c, v, n)
    return out


@pytest.mark.takes(170)
def test_run_killed_and_started_again_ends_with_every_minute_once(tmp_path: Path) -> None:
    """Kill -9 at random points (while the stack starts, while healing reads, while workers run), start again:
    at the end every minute the APIs have in the window is in the warehouse once, with the APIs' figures, and a
    stop leaves no worker behind."""
    now = datetime.now(UTC)
    last = epoch_minute(now) - 1
    upbit = Exchange(first=last - 400, last=last, quiet={last - 100, last - 101})
    coinone = Exchange(first=last - 400, last=last)
    state = tmp_path / "state"
    log = tmp_path / "run.log"
    rng = random.Random(7)
    ticking = threading.Event()

    def tick() -> None:  # the exchanges' clocks move on: a new candle every minute, as on the real APIs
        while not ticking.wait(1.0):
            upbit.last = coinone.last = epoch_minute(datetime.now(UTC)) - 1

    clock = threading.Thread(target=tick, daemon=True)
    clock.start()
    with exchanges(upbit, coinone):
        env = {
            **os.environ,
            **stack_env(state),
            "COINSTREAM_UPBIT_URL": upbit.url,
            "COINSTREAM_COINONE_URL": coinone.url,
        }
        try:
            for n, pause in enumerate((rng.uniform(3, 8), rng.uniform(15, 30), rng.uniform(30, 50))):
                proc = _start(env, log)
                time.sleep(pause)
                os.killpg(proc.pid, signal.SIGKILL)  # the supervisor alone: its workers are told by Linux
                proc.wait()
                if n == 1:  # as a reboot would: the stand-ins too (kinesis-mock reads its stream back, moto forgets)
                    for name in ("kinesis-mock", "moto"):
                        os.killpg(int((state / "run" / f"{name}.pid").read_text()), signal.SIGKILL)
            before = log.read_text().count("collecting from")
            proc = _start(env, log)
            started = time.monotonic() + 120
            while log.read_text().count("collecting from") <= before:  # the last start is up
                assert proc.poll() is None and time.monotonic() < started, log.read_text()[-3000:]
                time.sleep(0.5)
            start = epoch_minute(now - timedelta(minutes=HISTORY_MINUTES)) + 1
            want = {
                "upbit": expected_rows(upbit, start, last + 1, "KRW-BTC"),
                "coinone": expected_rows(coinone, start, last + 1, "KRW-BTC"),
            }
            deadline = time.monotonic() + 300
            got: dict[str, dict[int, tuple[Decimal, Decimal, Decimal, int]]] | None = {}
            while time.monotonic() < deadline:
                got = _candles(state / "warehouse.duckdb")
                if got is not None and all(set(want[e]) <= set(got.get(e, {})) for e in want):
                    break
                assert proc.poll() is None, log.read_text()[-3000:]
                time.sleep(3)
            while "the stream is emptied" not in log.read_text():  # a compaction, with every record read
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(1)
            # the minute running when the stream was emptied closes after it: it travels through the new stream
            newest = epoch_minute(datetime.now(UTC))
            while not all(newest in (got or {}).get(e, {}) for e in want):
                assert proc.poll() is None and time.monotonic() < deadline + 120, log.read_text()[-3000:]
                time.sleep(2)
                got = _candles(state / "warehouse.duckdb")
            proc.send_signal(signal.SIGINT)  # Ctrl-C: every part stops in order (the workers deliver, a last load)
            assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
            said = log.read_text()
            print(said)
            assert "stopped: the producers finished their runs" in said, said[-3000:]
            # a stop leaves the stack (local down stops it) and nothing else
            left = [p for p in processes_mentioning(str(state)) if "kinesis-local" not in p and "moto_server" not in p]
            assert left == [], left
        finally:
            down = coinstream(env, "local", "down")
            assert down.returncode == 0, down.stderr
        assert processes_mentioning(str(state)) == []
    ticking.set()
    # every minute of the window up to that one is in the warehouse once, with the API's figures
    assert newest > last
    want = {
        "upbit": expected_rows(upbit, start, newest + 1, "KRW-BTC"),
        "coinone": expected_rows(coinone, start, newest + 1, "KRW-BTC"),
    }
    got = _candles(state / "warehouse.duckdb")
    assert got is not None
    for exchange, rows in want.items():
        held = got[exchange]
        assert set(rows) <= set(held), (exchange, sorted(set(rows) - set(held))[:10], log.read_text()[-3000:])
        for minute, f in rows.items():
            o, c, v, copies = held[minute]
            assert copies == 1
            assert (o, c, v) == (Decimal(f["open"]), Decimal(f["close"]), Decimal(f["volume"]))
    # nothing invented: every minute held is one the exchange has
    assert set(got["upbit"]) <= set(expected_rows(upbit, 0, upbit.last + 1, "KRW-BTC"))
