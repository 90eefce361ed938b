"""Coinone and Upbit clients over real HTTP against a loopback server answering like the real APIs."""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from coinstream.errors import BadPayload, FatalError, TransientError, TryLater
from coinstream.http import ApiClient
from producer.sources.coinone import CoinoneCandles
from producer.sources.parsing import Skips
from producer.sources.upbit import UpbitCandles
from tests.conftest import payload
from tests.http_server import Reply, api_server

NOW = datetime(2026, 11, 27, 12, 29, 20, tzinfo=UTC)  # 12:29 is still open
CHART = "/public/v2/chart/KRW/BTC"
UPBIT = "/v1/candles/minutes/1"


def api(url: str, **kw: object) -> ApiClient:
    return ApiClient(url, sleep=lambda s: None, **kw)  # type: ignore[arg-type]


def test_coinone_closed_minutes_exact_and_sorted() -> None:
    with api_server() as server:
        server.on(CHART, Reply(payload("coinone/chart_KRW_BTC_1m.json")))
        candles = CoinoneCandles("KRW-BTC", api(server.url)).fetch(None, NOW)
    assert len(candles) == 29 and candles[0].key == "coinone:KRW-BTC:2026-11-27T12:00Z"
    assert all(a.event_time < b.event_time for a, b in itertools.pairwise(candles))
    assert server.requests[0][1] == {"interval": "1m", "size": "500"}


def test_coinone_backfills_missed_minutes_by_paging_back_with_timestamp() -> None:
    chart = payload("coinone/chart_KRW_BTC_1m.json")
    ordered = sorted(chart["chart"], key=lambda c: c["timestamp"])
    newer = {**chart, "chart": ordered[15:]}  # 12:15..12:29
    older = {**chart, "chart": ordered[:16]}  # 12:00..12:15: the pages overlap by one minute
    with api_server() as server:
        server.on(CHART, Reply(newer), Reply(older))
        since = datetime(2026, 11, 27, 12, 4, tzinfo=UTC)
        candles = CoinoneCandles("KRW-BTC", api(server.url)).fetch(since, NOW)
    assert [c.event_time.minute for c in candles] == list(range(5, 29))  # 12:05..12:28, each once
    assert server.requests[1][1]["timestamp"] == str(ordered[15]["timestamp"] - 1)


@pytest.mark.parametrize(
    ("reply", "error", "match"),
    [
        (
            Reply({"result": "error", "error_code": "4", "error_msg": "Blocked user access"}),
            TryLater,
            r"rate-limiting this client: result='error' error code '4' \(Blocked user access\); try later",
        ),
        (Reply(raw=b'{"result": "success", "chart": [{"timest'), BadPayload, "not JSON"),
        (Reply({"error": "busy"}, 503), TransientError, "HTTP 503"),
        (Reply({}, 418), FatalError, "banned"),
    ],
)
def test_coinone_failures_say_what_went_wrong(reply: Reply, error: type[Exception], match: str) -> None:
    with api_server() as server:
        server.on(CHART, reply)
        with pytest.raises(error, match=match):
            CoinoneCandles("KRW-BTC", api(server.url, max_attempts=2)).fetch(None, NOW)


def test_429_is_retried_after_the_time_the_server_asks() -> None:
    waits: list[float] = []
    with api_server() as server:
        server.on(CHART, Reply({}, 429, {"Retry-After": "7"}), Reply(payload("coinone/chart_KRW_BTC_1m.json")))
        client = ApiClient(server.url, sleep=waits.append)
        assert len(CoinoneCandles("KRW-BTC", client).fetch(None, NOW)) == 29
    assert 7.0 in waits and len(server.requests) == 2


def test_the_server_wait_replaces_the_backoff_and_is_bounded() -> None:
    waits: list[float] = []
    with api_server() as server:
        server.on(
            CHART,
            Reply({}, 429, {"Retry-After": "7"}),
            Reply({}, 503, {"Retry-After": "600"}),
            Reply(payload("coinone/chart_KRW_BTC_1m.json")),
        )
        CoinoneCandles("KRW-BTC", ApiClient(server.url, sleep=waits.append, max_wait=30)).fetch(None, NOW)
    assert waits == [7.0, 30.0]  # what the server asked (capped at max_wait), never a backoff on top of it


def test_empty_chart_is_nothing_new() -> None:
    with api_server() as server:
        server.on(CHART, Reply({"result": "success", "error_code": "0", "is_last": True, "chart": []}))
        assert CoinoneCandles("KRW-BTC", api(server.url)).fetch(None, NOW) == []


def test_upbit_minutes_without_trades_have_no_candle_and_numbers_stay_exact() -> None:
    body = payload("upbit/candles_KRW_BTC_1m.json")
    with api_server() as server:
        server.on(UPBIT, Reply(body))
        candles = UpbitCandles("KRW-BTC", api(server.url)).fetch(None, NOW)
    minutes = [c.event_time.minute for c in candles]
    assert 7 not in minutes and 8 not in minutes and len(candles) == 27  # 30 - 2 missing - the open one
    newest_closed = next(c for c in body if c["candle_date_time_utc"] == "2026-11-27T12:28:00")
    assert Decimal(candles[-1].payload.volume) == Decimal(str(newest_closed["candle_acc_trade_volume"]))
    assert server.requests[0][1] == {"market": "KRW-BTC", "count": "200"}


def test_upbit_pages_back_with_to_and_refuses_wrong_types() -> None:
    body = payload("upbit/candles_KRW_BTC_1m.json")
    with api_server() as server:
        server.on(UPBIT, Reply(body[:10]), Reply(body[9:]))
        since = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
        candles = UpbitCandles("KRW-BTC", api(server.url)).fetch(since, NOW)
    assert len(candles) == 26 and server.requests[1][1]["to"] == body[9]["candle_date_time_utc"] + "Z"
    broken = copy.deepcopy(body)
    broken[0]["trade_price"] = "lots"
    skips = Skips()
    with api_server() as server:
        server.on(UPBIT, Reply(broken))
        kept = UpbitCandles("KRW-BTC", api(server.url)).fetch(None, datetime(2026, 11, 28, tzinfo=UTC), skips)
    assert len(kept) == len(body) - 1  # the malformed candle is skipped, the others kept
    assert len(skips.reasons) == 1 and "trade_price='lots' is not a number" in skips.reasons[0]


def test_a_request_that_never_got_an_answer_names_what_to_check() -> None:
    import httpx

    from coinstream.http import transport_error

    no_name = httpx.ConnectError("[Errno -2] Name or service not known")
    assert transport_error(no_name, "api.upbit.com").startswith("cannot resolve api.upbit.com (ConnectError: ")
    assert "network and DNS" in transport_error(no_name, "api.upbit.com")
    refused = httpx.ConnectError("[Errno 111] Connection refused")
    assert transport_error(refused, "127.0.0.1").startswith("cannot connect to 127.0.0.1")
    assert "did not answer in time" in transport_error(httpx.ReadTimeout("timed out"), "api.upbit.com")


def test_kraken_too_many_requests_is_try_later_and_binance_451_is_one_line() -> None:
    """Real answers' edges (issue 38): Kraken's EGeneral:Too many requests says "not now", as EAPI:Rate limit does;
    Binance's 451 for a restricted location comes pretty-printed, and is one line naming what to do."""
    import httpx

    from coinstream.errors import TryLater
    from coinstream.http import Refused, classify_response
    from producer.sources.kraken import parse_ohlc

    with pytest.raises(TryLater, match="EGeneral:Too many requests; try later"):
        parse_ohlc({"error": ["EGeneral:Too many requests"]}, "USD-BTC", datetime(2026, 12, 7, tzinfo=UTC))
    body = (
        '{\n  "code": 0,\n  "msg": "Service unavailable from a restricted location according to \'b. Eligibility\'."\n}'
    )
    with pytest.raises(Refused) as refused:
        classify_response(httpx.Response(451, text=body), "binance klines USDT-BTC")
    said = str(refused.value)
    assert "\n" not in said and said.startswith("binance klines USDT-BTC: HTTP 451, the API refuses requests from")
    assert "restricted location" in said and "leave this source out" in said
