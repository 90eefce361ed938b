from __future__ import annotations

import json
from datetime import datetime

import pytest
from msgspec.structs import replace

from coinstream.errors import SkippableError
from coinstream.records import Envelope, Kind
from tests.conftest import make_candle, make_post


def test_envelope_round_trips_through_stream_bytes() -> None:
    env = make_candle(3)
    assert Envelope.from_bytes(env.to_bytes()) == env
    assert json.loads(env.to_bytes())["v"] == 1


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not json", "not a coinstream v1 envelope"),
        (b'{"v": 2}', "v:"),
        (json.dumps({**json.loads(make_post().to_bytes()), "kind": "tweet"}).encode(), "kind"),
        (json.dumps({**json.loads(make_post().to_bytes()), "event_time": "2026-11-27T12:00:00"}).encode(), "UTC"),
        (b"\xff\xfe", "not a coinstream"),
    ],
)
def test_bad_stream_bytes_are_skippable_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(SkippableError, match=reason):
        Envelope.from_bytes(data)


def test_one_markets_candles_share_a_partition_key_posts_spread() -> None:
    assert make_candle(1).partition_key == make_candle(2).partition_key == "candle:coinone:KRW-BTC"
    assert make_candle(1, market="KRW-ETH").partition_key != make_candle(1).partition_key
    assert make_post("1").partition_key != make_post("2").partition_key


def test_fingerprint_ignores_fetch_time_but_not_content() -> None:
    a = make_candle(1)
    refetched = replace(a, **{"fetched_at": datetime.fromisoformat("2026-11-28T00:00:00+00:00")})
    assert a.fingerprint == refetched.fingerprint
    assert make_candle(1, volume="2").fingerprint != a.fingerprint
    assert make_post("1").kind is Kind.POST
