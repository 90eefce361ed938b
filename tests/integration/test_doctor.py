"""`coinstream doctor` against the local stack and loopback stand-ins for the APIs."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import payload
from tests.http_server import Reply, api_server
from tests.jetstream_server import jetstream
from tests.stack import coinstream, running_stack


def test_doctor_says_what_works_and_what_to_fix(tmp_path: Path) -> None:
    with (
        running_stack(tmp_path / "state") as (_settings, _pipeline, env),
        api_server() as api,
        jetstream([]) as (jetstream_url, _),
    ):
        api.on("/public/v2/chart/KRW/BTC", Reply(payload("coinone/chart_KRW_BTC_1m.json")))
        api.on("/v1/candles/minutes/1", Reply({"error": {"name": "too_many_requests"}}, 418))
        api.on("/api/v1/timelines/tag/bitcoin", Reply(payload("mastodon/tag_bitcoin.json")))
        world = {
            "binance": ("/api/v3/klines", "binance/klines_BTCUSDT_1m.json"),
            "coinbase": ("/products/BTC-USD/candles", "coinbase/candles_BTC-USD_60.json"),
            "okx": ("/api/v5/market/candles", "okx/history-candles_BTC-USDT_1m.json"),
            "bybit": ("/v5/market/kline", "bybit/kline_spot_BTCUSDT_1.json"),
            "kraken": ("/0/public/OHLC", "kraken/ohlc_XBTUSD_1.json"),
            "bitstamp": ("/api/v2/ohlc/btcusd/", "bitstamp/ohlc_btcusd_60.json"),
        }
        for path, recorded in world.values():
            api.on(path, Reply(payload(recorded)))
        env = {
            **env,
            **{f"COINSTREAM_{name.upper()}_URL": api.url for name in world},
            "COINSTREAM_COINONE_URL": api.url,
            "COINSTREAM_UPBIT_URL": api.url,
            "COINSTREAM_MASTODON_INSTANCES": api.url,
            "COINSTREAM_X_BEARER_TOKEN": "do-not-print-me",
            "COINSTREAM_BLUESKY_URL": jetstream_url,
        }
        result = coinstream(env, "doctor")
    lines = result.stdout.splitlines()
    assert result.returncode == 1
    assert any(line.startswith("ok   kinesis stream coinstream-raw") and "2 shards" in line for line in lines)
    assert any(line.startswith("ok   firehose coinstream-posts") for line in lines)
    assert any(line.startswith("ok   source coinone") for line in lines)
    assert all(any(line.startswith(f"ok   source {name}") for line in lines) for name in world)
    assert any(line.startswith("FAIL source upbit") and "banned" in line for line in lines)
    assert any(line.startswith("ok   source x") for line in lines)
    assert any(line.startswith("ok   x spend") and "today $0.00 of $0.20" in line for line in lines)
    assert "do-not-print-me" not in result.stdout + result.stderr
    assert any(line.startswith("ok   source bluesky (Jetstream): answers") for line in lines)
    assert any(line.startswith("ok   source bluesky (search, for backfill): not configured") for line in lines)
    for line in lines[:-1]:  # each problem once: not prefixed by its own check's name again
        what = line[5:].split(": ", 1)[0]
        assert f"{what}: {what}" not in line, line
    assert lines[-1] == "1 problem(s)"
