"""Mastodon's tag timeline over real HTTP, and producer runs that carry their position between cron runs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from coinstream.config import Pipeline, Settings
from coinstream.errors import BadPayload, FatalError
from coinstream.http import ApiClient
from coinstream.records import Kind
from producer.run import Code, produce
from producer.sources.mastodon import MastodonTag, html_text
from tests.conftest import PAYLOADS, payload
from tests.http_server import Reply, api_server

TAG = "/api/v1/timelines/tag/bitcoin"
NOW = datetime(2026, 11, 27, 12, 29, 20, tzinfo=UTC)


def test_mastodon_posts_keyed_by_uri_with_text_and_flags() -> None:
    body = payload("mastodon/tag_bitcoin.json")
    with api_server() as server:
        server.on(TAG, Reply(body))
        posts, newest = MastodonTag(ApiClient(server.url, sleep=lambda s: None)).fetch(None, NOW)
    assert len(posts) == 6 and newest == max((s["id"] for s in body), key=int)
    assert posts[0].key.startswith("mastodon:https://mastodon.example/users/alice0/")
    assert posts[0].payload.text == "Watching #bitcoin today 0"
    assert [p.payload.is_reply for p in posts] == [False, False, False, True, False, False]
    # the remote post that arrived last (the newest id) counts in its own, older minute; it has no language
    late = next(p for p in posts if "remote.example" in p.key)
    assert late.event_time == datetime(2026, 11, 27, 12, 0, 41, tzinfo=UTC) and late.post.lang is None


def test_mastodon_asks_only_for_newer_posts_on_the_next_run() -> None:
    body = payload("mastodon/tag_bitcoin.json")
    with api_server() as server:
        server.on(TAG, Reply(body[:2]), Reply([]))
        posts, newest = MastodonTag(ApiClient(server.url, sleep=lambda s: None)).fetch(body[2]["id"], NOW)
    assert len(posts) == 2 and server.requests[0][1]["min_id"] == body[2]["id"] and newest == body[0]["id"]


def test_mastodon_bad_answers() -> None:
    with api_server() as server:
        server.on(TAG, Reply({"error": "This action is not allowed"}, 200))
        with pytest.raises(BadPayload, match="not allowed"):
            MastodonTag(ApiClient(server.url, sleep=lambda s: None)).fetch(None, NOW)
    assert html_text("<p>a<br>b</p>") == "a\nb"


def test_exchange_runs_carry_the_last_minute_and_backfill_after_downtime(
    tmp_path: Path, moto_kinesis: tuple[Pipeline, Any]
) -> None:
    pipeline, _ = moto_kinesis
    chart = payload("coinone/chart_KRW_BTC_1m.json")
    ordered = sorted(chart["chart"], key=lambda c: c["timestamp"])
    with api_server() as server:
        settings = Settings(state_dir=tmp_path, coinone_url=server.url, candle_reread_minutes=0)
        server.on("/public/v2/chart/KRW/BTC", Reply({**chart, "chart": ordered[:10]}))
        first = produce(Kind.CANDLE, "coinone", settings, pipeline, from_dir=PAYLOADS, now=NOW)
        assert first.code is Code.SENT and first.sent == 10
        # downtime: the next answer's page starts at 12:20, the one before it covers 12:08..12:20
        server.replies.clear()
        server.on(
            "/public/v2/chart/KRW/BTC",
            Reply({**chart, "chart": ordered[20:]}),
            Reply({**chart, "chart": ordered[8:21]}),
        )
        second = produce(Kind.CANDLE, "coinone", settings, pipeline, from_dir=PAYLOADS, now=NOW)
    assert second.code is Code.SENT and second.sent == 19  # 12:10..12:28, nothing twice, 12:29 still open
    assert server.requests[-1][1]["timestamp"] == str(ordered[20]["timestamp"] - 1)


def test_posts_from_an_exchange_source_are_refused(tmp_path: Path, moto_kinesis: tuple[Pipeline, Any]) -> None:
    pipeline, _ = moto_kinesis
    with pytest.raises(FatalError, match="gives candles"):
        produce(Kind.POST, "upbit", Settings(state_dir=tmp_path), pipeline, from_dir=PAYLOADS, now=NOW)
