"""Upbit's and Coinone's candle history on a loopback server, paged and rate-limited as the real APIs are.

Upbit: `GET /v1/candles/minutes/1?market=&count<=200&to=` (exclusive), newest first, numbers as JSON numbers,
`candle_date_time_utc` without a zone, no candle for a minute without trades, a `Remaining-Req` header, and
429 (then 418) past 10 requests a second. Coinone: `GET /public/v2/chart/KRW/{target}?interval=1m&timestamp=`
(candles at or before it, `size` a page: 200 unless asked, 500 at most), numbers as strings, `is_last` once nothing older exists, and an empty
chart before the first candle. Each minute's figures come from the minute itself, so a test knows them.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from coinstream.timeutil import epoch_minute, minute_start
from tests.http_server import Reply, api_server


def figures(minute: int, market: str) -> dict[str, str]:
    """What the exchange says of a minute: exact decimal text, different for every minute and market."""
    base = 130_000_000 + (minute % 997) * 1000 + (len(market) * 7)
    return {
        "open": f"{base}",
        "high": f"{base + 5000}",
        "low": f"{base - 5000}",
        "close": f"{base + 1000}",
        "volume": f"{(minute % 89) + 1}.{minute % 100_000_000:08d}",
        "quote_volume": f"{base * ((minute % 89) + 1)}.5",
    }


@dataclass
class Exchange:
    """The state of one fake exchange: its candles, its clock, what it was asked and how often it said 429."""

    first: int
    last: int
    #: minutes nobody traded in (Upbit sends no candle for them)
    quiet: set[int] = field(default_factory=set)
    #: minutes whose candle comes malformed
    malformed: set[int] = field(default_factory=set)
    #: request numbers (1-based) answered 429 with Retry-After: 0, as a rate limiter would
    fail_requests: set[int] = field(default_factory=set)
    per_second: int = 10
    #: a limit per minute instead (Coinone's 300): over it, Coinone's errorCode 4 ("blocked") in an HTTP 200
    per_minute: int | None = None
    requests: int = 0
    asked: list[dict[str, str]] = field(default_factory=list)
    rate_limited: int = 0
    _recent: deque[float] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def minutes_before(self, before: int, count: int) -> list[int]:
        """The minutes with a candle before epoch minute `before`, newest first, at most `count`."""
        out = []
        minute = min(before - 1, self.last)
        while minute >= self.first and len(out) < count:
            if minute not in self.quiet:
                out.append(minute)
            minute -= 1
        return out

    def admit(self, query: dict[str, str]) -> Reply | None:
        """Count the request; a 429 if it is over the published rate (or scripted to fail), else None."""
        with self._lock:
            self.requests += 1
            self.asked.append(query)
            now = time.monotonic()
            self._recent.append(now)
            window, limit = (60.0, self.per_minute) if self.per_minute else (1.0, self.per_second)
            while self._recent and self._recent[0] <= now - window:
                self._recent.popleft()
            scripted = self.requests in self.fail_requests
            if self.per_minute and not scripted and len(self._recent) > limit:
                self.rate_limited += 1
                return Reply({"result": "error", "errorCode": "4", "errorMsg": "Blocked user access."})
            if scripted or len(self._recent) > limit:
                self.rate_limited += 1
                # a scripted 429 says when to come back; one over the rate says nothing (the client backs off)
                headers = {"Retry-After": "0"} if scripted else {}
                body = {"error": {"name": "too_many_requests", "message": "Too many requests"}}
                return Reply(body, 429, headers)
        return None

    def upbit(self, query: dict[str, str]) -> Reply:
        """`GET /v1/candles/minutes/1`."""
        refused = self.admit(query)
        if refused:
            return refused
        market = query["market"]
        to = query.get("to")
        before = epoch_minute(datetime.strptime(to, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)) if to else self.last + 1
        parts = []
        for m in self.minutes_before(before, min(200, int(query.get("count", "200")))):
            f = figures(m, market)
            at = minute_start(m)
            open_ = '"abc"' if m in self.malformed else f["open"]
            parts.append(
                f'{{"market":"{market}","candle_date_time_utc":"{at:%Y-%m-%dT%H:%M:%S}",'
                f'"candle_date_time_kst":"{minute_start(m + 540):%Y-%m-%dT%H:%M:%S}","opening_price":{open_},'
                f'"high_price":{f["high"]},"low_price":{f["low"]},"trade_price":{f["close"]},'
                f'"timestamp":{m * 60_000 + 59_000},"candle_acc_trade_price":{f["quote_volume"]},'
                f'"candle_acc_trade_volume":{f["volume"]},"unit":1}}'
            )
        with self._lock:
            left = self.per_second - len(self._recent)
        return Reply(
            raw=("[" + ",".join(parts) + "]").encode(),
            headers={"Remaining-Req": f"group=candles; min=599; sec={max(0, left)}"},
        )

    def coinone(self, query: dict[str, str], target: str = "BTC") -> Reply:
        """`GET /public/v2/chart/KRW/{target}`."""
        refused = self.admit(query)
        if refused:
            return refused
        stamp = query.get("timestamp")
        before = int(stamp) // 60_000 + 1 if stamp else self.last + 1
        minutes = self.minutes_before(before, min(500, int(query.get("size", "200"))))
        chart = []
        for m in minutes:
            f = figures(m, f"KRW-{target}")
            chart.append(
                {
                    "timestamp": m * 60_000,
                    "open": "abc" if m in self.malformed else f["open"],
                    "high": f["high"],
                    "low": f["low"],
                    "close": f["close"],
                    "target_volume": f["volume"],
                    "quote_volume": f["quote_volume"],
                }
            )
        chart.reverse()  # Coinone's order is not the time order: a client sorts
        is_last = bool(minutes) and minutes[-1] <= self.first
        return Reply({"result": "success", "error_code": "0", "is_last": is_last, "chart": chart})


@contextmanager
def exchanges(upbit: Exchange, coinone: Exchange) -> Iterator[tuple[Exchange, Exchange]]:
    """Both fakes on their own loopback servers (their base URLs in `.url`)."""
    with api_server() as up, api_server() as one:
        up.on("/v1/candles/minutes/1", Reply(lambda q: upbit.upbit(q)))
        one.on("/public/v2/chart/KRW/BTC", Reply(lambda q: coinone.coinone(q)))
        one.on("/public/v2/chart/KRW/ETH", Reply(lambda q: coinone.coinone(q, "ETH")))
        upbit.url, coinone.url = up.url, one.url
        yield upbit, coinone


def expected_rows(exchange: Exchange, start: int, end: int, market: str) -> dict[int, dict[str, Any]]:
    """The figures of every minute in [start, end) the exchange has a well-formed candle for."""
    return {
        m: figures(m, market)
        for m in range(max(start, exchange.first), min(end, exchange.last + 1))
        if m not in exchange.quiet and m not in exchange.malformed
    }
