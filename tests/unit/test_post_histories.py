"""The history rule for post sources (issue 38): Mastodon's arrival-ordered timelines and Bluesky's search by
`sortAt` hide posts from a pager that stops at the first old post or asks by the counting clock. Fakes with those
quirks: tests/post_apis.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from coinstream.config import Settings
from coinstream.http import Pacer
from producer.sources.bluesky import SearchHistory
from producer.sources.bluesky_posts import post_from_event, post_from_view, tid_time
from producer.sources.history import Page
from producer.sources.mastodon import TagHistory
from tests.http_server import Reply, api_server
from tests.post_apis import BskyPost, Search, Status, Timeline, minutes, zulu

START = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
END = START + timedelta(hours=2)
NOW = END + timedelta(hours=1)


def mastodon_pages(timeline: Timeline, late_hours: float = 24) -> list[Page]:
    with api_server() as instance:
        timeline.url = instance.url
        instance.on("/api/v1/timelines/tag/bitcoin", Reply(timeline.reply))
        history = TagHistory(instance.url, Pacer(1000), timedelta(hours=late_hours))
        return list(history.pages(START, END, None, NOW))


def test_a_late_old_post_on_the_first_page_does_not_end_the_mastodon_history() -> None:
    """A remote status written three days ago arrives now and tops the timeline; the posts written inside the window
    sit on older pages. The history stopped at that first old post before (the checkpoint then said the whole window
    was read); it pages on until the posts were written the lateness margin before the window's start."""
    local = [Status(START + minutes(n), START + minutes(n), n) for n in range(-30 * 60, 150)]
    late = Status(END + minutes(25), START - timedelta(days=3), 100_000)
    pages = mastodon_pages(Timeline([*local, late]))
    found = {p.key for page in pages for p in page.records}
    assert found == {f"mastodon:https://remote.example/users/a/statuses/{n}" for n in range(120)}
    reached = [p.reached for p in pages]
    assert reached == sorted(reached, reverse=True) and reached[-1] == START and pages[-1].token is None
    assert len(pages) > 1


@pytest.mark.parametrize("flake", [False, True])
def test_a_mastodon_post_written_in_the_window_that_arrived_late_is_read(flake: bool) -> None:
    """Mastodon's snowflake ids say when each status arrived; other servers' flake ids do not, and their pages are
    bounded by the oldest status's `created_at` plus the lateness margin (COINSTREAM_MASTODON_LATE_HOURS)."""
    written = Status(END + timedelta(hours=20), START + minutes(5), 7, flake)  # arrived 20 h after it was written
    others = [Status(START + minutes(n), START + minutes(n), 1000 + n, flake) for n in range(-26 * 60, 200, 10)]
    pages = mastodon_pages(Timeline([*others, written]))
    assert "mastodon:https://remote.example/users/a/statuses/7" in {p.key for page in pages for p in page.records}
    assert pages[-1].reached == START and pages[-1].token is None


@contextmanager
def bluesky(search: Search) -> Iterator[Settings]:
    from tests.unit.test_backfill import _session_server

    with api_server() as bsky:
        bsky.on("/xrpc/app.bsky.feed.searchPosts", Reply(search.reply))
        with _session_server(bsky.url, []) as api_url:
            yield Settings(
                bluesky_handle="me.bsky.social",
                bluesky_app_password=SecretStr("abcd-efgh-ijkl-mnop"),
                bluesky_api_url=api_url,
            )


def read_bluesky(settings: Settings, start: datetime, end: datetime) -> list[Page]:
    return list(SearchHistory(settings).pages(start, end, None, NOW))


def test_bluesky_counts_each_post_in_exactly_one_window_whatever_its_three_times_say() -> None:
    """searchPosts filters by `sortAt` (the earlier of createdAt and indexedAt); a post counts at indexedAt. A post
    indexed inside the window but written before it, and one written inside it but indexed after it, were lost
    before (asked by the counting clock: the first never, the second by neither window)."""
    plain = [
        BskyPost(
            START + minutes(n),
            START
            + minutes(
                n,
            ),
            n,
        )
        for n in range(-90, 240, 3)
    ]
    written_before = BskyPost(START - minutes(30), START + minutes(2), 10_001)  # sortAt before the window
    indexed_after = BskyPost(END - minutes(1), END + minutes(3), 10_002)  # sortAt inside, counted in the next
    search = Search([*plain, written_before, indexed_after])
    with bluesky(search) as settings:
        first = read_bluesky(settings, START, END)
        second = read_bluesky(settings, END, END + timedelta(hours=2))
    one = {p.key for page in first for p in page.records}
    two = {p.key for page in second for p in page.records}
    uri = "bluesky:at://did:plc:a/app.bsky.feed.post/"
    assert f"{uri}10001" in one and f"{uri}10002" in two and not one & two
    assert one | two == {f"{uri}{p.n}" for p in search.posts if START <= p.indexed < END + timedelta(hours=2)}
    assert first[-1].reached == START and first[-1].token is None
    assert search.asked[0]["since"] == zulu(START - timedelta(minutes=60))[:19] + "Z"


def tid(at: datetime, clock: int = 7) -> str:
    alphabet = "234567abcdefghijklmnopqrstuvwxyz"
    value = (int(at.timestamp() * 1_000_000) << 10) | clock
    return "".join(alphabet[(value >> (5 * i)) & 31] for i in reversed(range(13)))


def test_the_live_path_and_the_history_count_one_post_in_the_same_minute() -> None:
    """Jetstream's `time_us` and the AppView's `indexedAt` are two machines' clocks, often a second apart across a
    minute's edge; both count a post at its record key's TID (in the URI both carry) where that is within seconds of them."""
    written = datetime(2026, 11, 28, 12, 0, 59, 400_000, tzinfo=UTC)
    rkey = tid(written)
    assert tid_time(rkey) == written
    record: dict[str, Any] = {"$type": "app.bsky.feed.post", "text": "bitcoin!", "createdAt": "2026-11-28T11:58:00Z"}
    event = {
        "did": "did:plc:a",
        "time_us": int(datetime(2026, 11, 28, 12, 0, 59, 900_000, tzinfo=UTC).timestamp() * 1_000_000),
        "kind": "commit",
        "commit": {"operation": "create", "collection": "app.bsky.feed.post", "rkey": rkey, "record": record},
    }
    view = {
        "uri": f"at://did:plc:a/app.bsky.feed.post/{rkey}",
        "author": {"did": "did:plc:a"},
        "record": record,
        "indexedAt": "2026-11-28T12:01:00.300Z",
    }
    live, history = post_from_event(event, NOW), post_from_view(view, NOW)
    assert live is not None and history is not None
    assert live.key == history.key and live.event_time == history.event_time == written
    # a key that is no TID, or a TID far from the network's time (an import, a wrong clock): the network's time
    far = {**view, "uri": f"at://did:plc:a/app.bsky.feed.post/{tid(written - timedelta(days=400))}"}
    assert post_from_view(far, NOW).event_time == datetime(2026, 11, 28, 12, 1, 0, 300_000, tzinfo=UTC)  # type: ignore[union-attr]
