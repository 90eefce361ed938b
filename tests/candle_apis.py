"""Every exchange's candle history as its API pages it, quirks included, behind an httpx transport.

One `Tape` holds a market's minutes (absent: nobody traded) and the exchange's clock; `transport(exchange, tape)`
answers that exchange's own request (its paging parameter, its page size, its body layout) from it:

- Upbit `to` (exclusive) and `count` <= 200; Coinone `timestamp` (ms, at or before) and `size` <= 500 with
  `is_last`, and errorCode 4 ("blocked") once a client asks more than 300 times in a minute of the tape's clock;
- Binance `endTime`, Bybit `end` (ms, inclusive), OKX `after` (ms, exclusive), 1000 / 1000 / 100 a page;
- Coinbase `start`..`end` (inclusive, at most 300 minutes): only the candles inside, `[]` for a quiet range;
- Kraken: the newest 720 minutes of its clock whatever is asked, the last still open;
- Bitstamp `end` (s): its own candle included or not, as `bitstamp_end_inclusive` says (not documented).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from coinstream.timeutil import epoch_minute, minute_start
from tests.history_api import figures

EXCHANGES = ("upbit", "coinone", "binance", "coinbase", "okx", "bybit", "kraken", "bitstamp")
MARKETS = {"upbit": "KRW-BTC", "coinone": "KRW-BTC"}


@dataclass
class Tape:
    """One market's past as an exchange holds it, and the exchange's clock (epoch minutes of the open minute)."""

    market: str
    #: epoch minutes somebody traded in (each has a candle); every other minute has none
    traded: set[int]
    #: the exchange's clock: the minute still open (a callable, so a test can move it between requests)
    clock: Callable[[], int]
    bitstamp_end_inclusive: bool = True
    #: Coinone: requests it allows per minute of its clock before answering errorCode 4
    coinone_per_minute: int = 300
    asked: list[dict[str, str]] = field(default_factory=list)
    blocked: int = 0
    _per_minute: dict[int, int] = field(default_factory=dict)

    def closed(self, low: int, high: int) -> list[int]:
        """Traded minutes in [low, high], closed by the clock, oldest first."""
        top = min(high, self.clock() - 1)
        return sorted(m for m in self.traded if low <= m <= top)

    def newest(self, high: int, count: int) -> list[int]:
        """The `count` newest traded minutes at or before `high`, oldest first."""
        found = self.closed(-(10**9), high)
        return found[-count:] if count else []


def _ms(minute: int) -> int:
    return minute * 60_000


def _figs(tape: Tape, m: int) -> dict[str, str]:
    return figures(m, tape.market)


def _array_row(tape: Tape, m: int, time: Any, order: tuple[str, ...], tail: tuple[Any, ...] = ()) -> str:
    f = _figs(tape, m)
    return json.dumps([time, *(f[k] for k in order), *tail])


def answer(exchange: str, tape: Tape, query: dict[str, str]) -> tuple[int, str]:
    """(HTTP status, body text) of one request to the exchange."""
    tape.asked.append(query)
    if exchange == "upbit":
        to = query.get("to")
        before = epoch_minute(datetime.strptime(to, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)) if to else 10**9
        minutes = tape.newest(before - 1, min(200, int(query.get("count", "200"))))
        rows = []
        for m in reversed(minutes):
            f = _figs(tape, m)
            rows.append(
                f'{{"market":"{tape.market}","candle_date_time_utc":"{minute_start(m):%Y-%m-%dT%H:%M:%S}",'
                f'"opening_price":{f["open"]},"high_price":{f["high"]},"low_price":{f["low"]},'
                f'"trade_price":{f["close"]},"timestamp":{_ms(m) + 59_000},'
                f'"candle_acc_trade_price":{f["quote_volume"]},"candle_acc_trade_volume":{f["volume"]},"unit":1}}'
            )
        return 200, "[" + ",".join(rows) + "]"
    if exchange == "coinone":
        window = tape.clock()
        tape._per_minute[window] = tape._per_minute.get(window, 0) + 1
        if tape._per_minute[window] > tape.coinone_per_minute:
            tape.blocked += 1
            return 200, '{"result":"error","errorCode":"4","errorMsg":"Blocked user access."}'
        stamp = query.get("timestamp")
        high = int(stamp) // 60_000 if stamp else 10**9
        minutes = tape.newest(high, min(500, int(query.get("size", "200"))))
        chart = [
            {"timestamp": _ms(m), **{k: v for k, v in _figs(tape, m).items() if k not in ("volume",)}}
            | {"target_volume": _figs(tape, m)["volume"]}
            for m in reversed(minutes)
        ]
        oldest_traded = min(tape.traded, default=0)
        is_last = not minutes or minutes[0] <= oldest_traded
        return 200, json.dumps({"result": "success", "error_code": "0", "is_last": is_last, "chart": chart})
    if exchange in ("binance", "bybit"):
        end = query.get("endTime" if exchange == "binance" else "end")
        high = int(end) // 60_000 if end else 10**9
        minutes = tape.newest(high, min(1000, int(query.get("limit", "500"))))
        if exchange == "binance":
            rows = [
                json.dumps(
                    [
                        _ms(m),
                        *(f[k] for k in ("open", "high", "low", "close", "volume")),
                        _ms(m) + 59_999,
                        f["quote_volume"],
                        10,
                        "0",
                        "0",
                        "0",
                    ]
                )
                for m in minutes
                for f in [_figs(tape, m)]
            ]
            return 200, "[" + ",".join(rows) + "]"
        rows = [
            _array_row(tape, m, str(_ms(m)), ("open", "high", "low", "close", "volume", "quote_volume"))
            for m in reversed(minutes)
        ]
        return 200, '{"retCode":0,"retMsg":"OK","result":{"category":"spot","list":[' + ",".join(rows) + "]}}"
    if exchange == "coinbase":
        if "start" in query:
            low = epoch_minute(datetime.fromisoformat(query["start"].replace("Z", "+00:00")))
            high = epoch_minute(datetime.fromisoformat(query["end"].replace("Z", "+00:00")))
            assert high - low < 300, "coinbase: more than 300 candles asked"
            minutes = tape.closed(low, high)
        else:
            minutes = tape.newest(10**9, 300)
        rows = [
            "["
            + ", ".join([str(m * 60), *(_figs(tape, m)[k] for k in ("low", "high", "open", "close", "volume"))])
            + "]"
            for m in reversed(minutes)
        ]
        return 200, "[" + ",".join(rows) + "]"
    if exchange == "okx":
        after = query.get("after")
        high = int(after) // 60_000 - 1 if after else 10**9
        minutes = tape.newest(high, min(100, int(query.get("limit", "100"))))
        rows = [
            _array_row(
                tape, m, str(_ms(m)), ("open", "high", "low", "close", "volume", "volume", "quote_volume"), ("1",)
            )
            for m in reversed(minutes)
        ]
        return 200, '{"code":"0","msg":"","data":[' + ",".join(rows) + "]}"
    if exchange == "kraken":
        open_ = tape.clock()
        minutes = [m for m in tape.closed(open_ - 719, open_ - 1)] + [open_]
        rows = [
            _array_row(tape, m, m * 60, ("open", "high", "low", "close"), ("0", _figs(tape, m)["volume"], 3))
            for m in minutes
        ]
        return 200, '{"error":[],"result":{"XXBTZUSD":[' + ",".join(rows) + f'],"last":{open_ * 60}}}}}'
    if exchange == "bitstamp":
        end = query.get("end")
        high = int(end) // 60 if end else 10**9
        if end and not tape.bitstamp_end_inclusive:
            high -= 1
        minutes = tape.newest(high, min(1000, int(query.get("limit", "1000"))))
        ohlc = [
            {"timestamp": str(m * 60), **{k: _figs(tape, m)[k] for k in ("open", "high", "low", "close", "volume")}}
            for m in minutes
        ]
        return 200, json.dumps({"data": {"pair": "BTC/USD", "ohlc": ohlc}})
    raise AssertionError(exchange)


def transport(exchange: str, tape: Tape) -> httpx.MockTransport:
    """The exchange's candle API over `tape`, as an httpx transport (no socket)."""

    def handle(request: httpx.Request) -> httpx.Response:
        status, text = answer(exchange, tape, dict(request.url.params))
        return httpx.Response(status, text=text, headers={"content-type": "application/json"})

    return httpx.MockTransport(handle)


def history(exchange: str, tape: Tape) -> Any:
    """The exchange's own History for `tape.market`, its requests going to the fake (no pacing: no wall clock)."""
    from coinstream.http import ApiClient
    from producer.sources.registry import SOURCES

    kind: Any = SOURCES[exchange]
    url = "http://exchange.test"
    api = ApiClient(url, httpx.Client(base_url=url, transport=transport(exchange, tape)), max_attempts=1)
    return kind.history(exchange, kind.client(tape.market, api), kind.page_minutes)
