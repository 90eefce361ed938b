"""Post sources' histories as their APIs page them, with the quirks that hide posts from a careless pager.

- Mastodon: a tag timeline in the order the instance *received* statuses (a federated status's id comes from its
  arrival), paged back by `max_id` with the `Link` header; remote statuses arrive late, so an old `created_at` can
  sit on the first page while posts written inside a window sit further back.
- Bluesky: `app.bsky.feed.searchPosts` with `sort=latest` orders and filters `since`/`until` by `sortAt` (the
  earlier of `createdAt` and `indexedAt`), not by `indexedAt`, the time the project counts a post at; `cursor` is
  an offset into the matching posts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tests.http_server import Reply


@dataclass(frozen=True)
class Status:
    """A status as the instance holds it: when it arrived there (its id's order) and when it was written."""

    arrived: datetime
    created: datetime
    n: int
    #: a Pleroma/Akkoma flake id (fixed-length text, sortable, not decimal) instead of Mastodon's snowflake
    flake: bool = False

    @property
    def id(self) -> str:
        if self.flake:
            return f"AF{int(self.arrived.timestamp() * 1000):015d}{self.n & 0xFFFF:05d}"
        return str(int(self.arrived.timestamp() * 1000) << 16 | (self.n & 0xFFFF))

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "uri": f"https://remote.example/users/a/statuses/{self.n}",
            "created_at": self.created.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "content": "<p>#bitcoin</p>",
            "account": {"url": "https://remote.example/@a"},
            "language": "en",
            "reblog": None,
            "in_reply_to_id": None,
        }


@dataclass
class Timeline:
    """An instance's #bitcoin timeline: newest arrival first, `limit` a page, `max_id` pages back."""

    statuses: list[Status]
    url: str = ""
    asked: list[dict[str, str]] = field(default_factory=list)

    def reply(self, query: dict[str, str]) -> Reply:
        self.asked.append(query)

        def order(i: str) -> tuple[int, str]:
            return len(i), i

        ordered = sorted(self.statuses, key=lambda s: order(s.id), reverse=True)
        page = [s for s in ordered if "max_id" not in query or order(s.id) < order(query["max_id"])]
        page = page[: int(query.get("limit", "20"))]
        older = f'<{self.url}/api/v1/timelines/tag/bitcoin?max_id={page[-1].id}>; rel="next"' if page else ""
        return Reply([s.json() for s in page], headers={"Link": older} if older else {})


def zulu(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class BskyPost:
    """A Bluesky post with its three times: the author's `createdAt`, the AppView's `indexedAt`, and `sortAt`."""

    created: datetime
    indexed: datetime
    n: int

    @property
    def sort_at(self) -> datetime:
        return min(self.created, self.indexed)

    def view(self) -> dict[str, Any]:
        return {
            "uri": f"at://did:plc:a/app.bsky.feed.post/{self.n}",
            "author": {"did": "did:plc:a"},
            "record": {"text": "bitcoin", "createdAt": zulu(self.created), "langs": ["en"]},
            "indexedAt": zulu(self.indexed),
        }


@dataclass
class Search:
    """`searchPosts` over some posts: `since` (inclusive) and `until` (exclusive) on `sortAt`, newest `sortAt`
    first, `limit` a page, `cursor` an offset."""

    posts: list[BskyPost]
    asked: list[dict[str, str]] = field(default_factory=list)

    def reply(self, query: dict[str, str]) -> Reply:
        self.asked.append(query)
        since = datetime.fromisoformat(query["since"].replace("Z", "+00:00")) if "since" in query else None
        until = datetime.fromisoformat(query["until"].replace("Z", "+00:00")) if "until" in query else None
        matching = sorted(
            (p for p in self.posts if (since is None or p.sort_at >= since) and (until is None or p.sort_at < until)),
            key=lambda p: (p.sort_at, p.n),
            reverse=True,
        )
        offset, limit = int(query.get("cursor", "0")), int(query.get("limit", "25"))
        page = matching[offset : offset + limit]
        more = {"cursor": str(offset + limit)} if offset + limit < len(matching) else {}
        return Reply({"posts": [p.view() for p in page], **more})


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)
