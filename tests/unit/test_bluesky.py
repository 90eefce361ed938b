"""Bluesky Jetstream over a real websocket on loopback, replaying recorded events."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from coinstream.errors import TransientError
from producer.sources.bluesky import JetstreamListener
from tests.conftest import payload
from tests.jetstream_server import jetstream

NOW = datetime(2026, 11, 27, 12, 30, tzinfo=UTC)
EVENTS = payload("bluesky/jetstream_events.json")


def test_only_new_posts_about_bitcoin_are_kept_and_the_cursor_moves_on() -> None:
    with jetstream(EVENTS) as (url, paths):
        heard = JetstreamListener(url, seconds=1.5).listen(None, NOW)
    texts = [p.payload.text for p in heard.posts]
    assert texts == ["Bitcoin is at a new high today", "stacking #sats", "비트코인 오늘", "btc chart looks wild"]
    assert heard.posts[0].key == "bluesky:at://did:plc:user1/app.bsky.feed.post/3lrkey1"
    assert heard.posts[2].payload.is_reply is True and heard.posts[2].payload.lang == "ko"
    assert heard.cursor == EVENTS[-1]["time_us"] and heard.events == len(EVENTS)
    assert "wantedCollections=app.bsky.feed.post" in paths[0]


def test_a_run_resumes_from_its_cursor() -> None:
    with jetstream(EVENTS) as (url, paths):
        heard = JetstreamListener(url, seconds=1.0).listen(int(EVENTS[3]["time_us"]), NOW)  # type: ignore[call-overload]
    assert [p.payload.text for p in heard.posts] == ["비트코인 오늘", "btc chart looks wild"]
    assert f"cursor={EVENTS[3]['time_us']}" in paths[0]


def test_bounded_by_posts_and_a_dropped_connection_keeps_what_was_heard() -> None:
    with jetstream(EVENTS) as (url, _):
        assert len(JetstreamListener(url, seconds=5, max_posts=2).listen(None, NOW).posts) == 2
    with jetstream(EVENTS, close_after=3) as (url, _):
        heard = JetstreamListener(url, seconds=5).listen(None, NOW)
    assert heard.events == 3 and len(heard.posts) == 2


def test_unreachable_jetstream_is_transient() -> None:
    with pytest.raises(TransientError, match="bluesky jetstream"):
        JetstreamListener("ws://127.0.0.1:1/subscribe", seconds=1).listen(None, NOW)
