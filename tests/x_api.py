"""X's recent counts and recent search endpoints, generated, on a loopback server: counts what X would bill.

Shaped like the real answers (`data` of `start`/`end`/`tweet_count` buckets with `meta.next_token`; posts
newest first with `meta.newest_id`), with X's rules that matter for the bill: a counts request is billed
whatever its page holds, every post returned by a search is billed, `end_time` must be at least 10 s
old, `max_results` is 10..100. Posts are indexed late: a minute's count grows for a few minutes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from coinstream.timeutil import epoch_minute, minute_start
from tests.http_server import Reply, api_server

#: X ids are 64-bit; these are made from the minute and the post's place in it, so newer is larger
ID_BASE = 1_990_000_000_000_000_000


@dataclass
class FakeX:
    """The state of the fake X: its clock (set by the test), what it was asked, what it would bill."""

    now: datetime = field(default_factory=lambda: datetime(2026, 11, 28, tzinfo=UTC))
    #: minute buckets per counts page (X does not document it for the recent endpoint)
    page_buckets: int = 300
    #: posts indexed after the minute closed: a minute's count is this much lower for its first minutes
    late_posts: int = 2
    late_minutes: int = 3
    counts_requests: int = 0
    search_requests: int = 0
    posts_returned: int = 0
    errors: list[str] = field(default_factory=list)
    url: str = ""
    #: counts request numbers (1-based) answered 429, each with its reset this many seconds after `clock()`
    rate_limited: dict[int, float] = field(default_factory=dict)
    clock: Callable[[], float] = time.time

    @staticmethod
    def posts_in(minute: int) -> int:
        """How many matching posts minute `minute` finally holds."""
        return 20 + (minute * 7919) % 60

    def count_now(self, minute: int) -> int:
        """What X's index holds for `minute` at the fake's `now` (late posts not yet there)."""
        settled = epoch_minute(self.now) - minute > self.late_minutes
        return self.posts_in(minute) - (0 if settled else self.late_posts)

    def _time(self, query: dict[str, str], name: str) -> datetime | None:
        value = query.get(name)
        if value is None:
            return None
        try:
            return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            self.errors.append(f"{name}={value!r} is not YYYY-MM-DDTHH:mm:ssZ")
            return None

    def counts(self, query: dict[str, str]) -> dict[str, Any] | Reply:
        """`GET /2/tweets/counts/recent`."""
        self.counts_requests += 1
        if self.counts_requests in self.rate_limited:
            reset = int(self.clock() + self.rate_limited[self.counts_requests])
            problem = {
                "title": "Too Many Requests",
                "detail": "Too Many Requests",
                "type": "about:blank",
                "status": 429,
            }
            return Reply(problem, 429, {"x-rate-limit-reset": str(reset), "content-type": "application/problem+json"})
        if query.get("granularity") != "minute":
            self.errors.append(f"granularity={query.get('granularity')!r}")
        start, end = self._time(query, "start_time"), self._time(query, "end_time")
        end = end or self.now - timedelta(seconds=30)
        start = start or self.now - timedelta(days=7)
        if end > self.now - timedelta(seconds=10):
            self.errors.append(f"end_time {end} is less than 10 s before {self.now}")
        if start < self.now - timedelta(days=7):
            self.errors.append(f"start_time {start} is older than 7 days")
        minutes = list(range(epoch_minute(start), epoch_minute(end)))
        offset = int(query.get("next_token") or 0)
        page = minutes[offset : offset + self.page_buckets]
        data = [
            {
                "end": minute_start(m + 1).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "start": minute_start(m).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "tweet_count": self.count_now(m),
            }
            for m in page
        ]
        meta: dict[str, Any] = {"total_tweet_count": sum(d["tweet_count"] for d in data)}
        if offset + self.page_buckets < len(minutes):
            meta["next_token"] = str(offset + self.page_buckets)
        return {"data": data, "meta": meta}

    def _newest_posts(self, since_id: int) -> Iterator[tuple[int, datetime]]:
        minute = epoch_minute(self.now - timedelta(seconds=10))
        while minute > epoch_minute(self.now) - 7 * 1440:
            for place in reversed(range(self.count_now(minute))):
                post_id = ID_BASE + minute * 1000 + place
                if post_id <= since_id:
                    return
                yield post_id, minute_start(minute) + timedelta(seconds=place % 60)
            minute -= 1

    def search(self, query: dict[str, str]) -> dict[str, Any]:
        """`GET /2/tweets/search/recent`: the newest posts after since_id, at most max_results, newest first."""
        self.search_requests += 1
        size = int(query.get("max_results", "10"))
        if not 10 <= size <= 100:
            self.errors.append(f"max_results={size}")
        since = int(query.get("since_id") or 0)
        posts = []
        for post_id, created in self._newest_posts(since):
            if len(posts) == size:
                break
            posts.append(
                {
                    "id": str(post_id),
                    "text": f"bitcoin post {post_id} #bitcoin",
                    "created_at": created.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                    "author_id": str(post_id % 9973),
                    "lang": "en",
                    "edit_history_tweet_ids": [str(post_id)],
                }
            )
        self.posts_returned += len(posts)
        if not posts:
            return {"meta": {"result_count": 0}}
        return {
            "data": posts,
            "meta": {"newest_id": posts[0]["id"], "oldest_id": posts[-1]["id"], "result_count": len(posts)},
        }


@contextmanager
def fake_x() -> Iterator[FakeX]:
    """A FakeX served on 127.0.0.1 (its base URL in `.url`) for the block."""
    fake = FakeX()
    with api_server() as server:
        server.on("/2/tweets/counts/recent", Reply(fake.counts))
        server.on("/2/tweets/search/recent", Reply(fake.search))
        fake.url = server.url
        yield fake
