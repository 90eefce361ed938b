"""Mastodon hashtag timelines (free, no key on most instances): new posts since the last run, per instance."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any, ClassVar

from pydantic import Field

from coinstream import records
from coinstream.config import Settings
from coinstream.errors import BadPayload, CoinstreamError, FatalError
from coinstream.http import ApiClient, Pacer, Refused, link_params
from coinstream.records import Envelope, Kind
from producer.sources.base import Cursor, Probe, RecordedParser, RunOptions, Source, api_probe
from producer.sources.history import History, Page
from producer.sources.parsing import OnSkip, parse_items

SOURCE = "mastodon"
logger = logging.getLogger(__name__)


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("br", "p") and self.parts:
            self.parts.append("\n")


def html_text(html: str) -> str:
    """The text of a status's HTML content."""
    parser = _Text()
    parser.feed(html)
    return "".join(parser.parts).strip()


def parse_statuses(body: Any, fetched_at: datetime, on_skip: OnSkip | None = None) -> list[Envelope]:
    """Post envelopes for one page of a tag timeline. The key is the status URI, the same on every instance."""
    if isinstance(body, dict) and "error" in body:
        raise BadPayload(f"mastodon timeline: error {str(body['error'])[:200]!r}")
    if not isinstance(body, list):
        raise BadPayload(f"mastodon timeline: expected a JSON list, got {type(body).__name__}")

    def build(status: Any) -> Envelope:
        if not isinstance(status, dict) or not isinstance(status.get("uri"), str):
            raise BadPayload("mastodon timeline: a status has no 'uri'")
        try:
            created = datetime.fromisoformat(str(status["created_at"]))
        except (KeyError, ValueError):
            raise BadPayload(f"mastodon timeline: status {status['uri'][:200]} has a bad created_at") from None
        account = status.get("account")
        author = account.get("url") if isinstance(account, dict) else None
        return records.post(
            SOURCE,
            status["uri"],
            created,
            fetched_at,
            text=html_text(str(status.get("content") or "")),
            author_id=author if isinstance(author, str) else None,
            lang=status.get("language"),
            is_retweet=status.get("reblog") is not None,
            is_reply=status.get("in_reply_to_id") is not None,
        )

    return parse_items(body, build, "mastodon timeline", on_skip)


def newest_id(ids: list[str]) -> str:
    """The newest of some status ids. Mastodon's are decimal strings, Akkoma's and Pleroma's fixed-length
    base62 flake ids: ordering by (length, text) is right for both."""
    return max(ids, key=lambda i: (len(i), i))


class MastodonTag:
    """Statuses of one hashtag on one instance, newer than the last id seen there.

    Pages are named by the answer's `Link` header (`rel="prev"`: newer statuses, `rel="next"`: older), as
    Mastodon documents; ids are compared only where a server sends no header.
    """

    PAGE = 40

    def __init__(self, api: ApiClient, tag: str = "bitcoin", *, max_pages: int = 5) -> None:
        self.api = api
        self.tag = tag
        self.max_pages = max_pages

    def page(self, params: dict[str, Any], now: datetime, on_skip: OnSkip | None) -> TagPage:
        """One page of the timeline asked with `params` (min_id, max_id, since_id)."""
        try:
            body, headers = self.api.get(
                f"/api/v1/timelines/tag/{self.tag}", {"limit": self.PAGE, **params}, f"mastodon #{self.tag}"
            )
        except Refused as exc:
            if exc.status in (401, 403):
                raise FatalError(
                    f"{exc}; this instance serves hashtag timelines to signed-in users only (public feeds "
                    "disabled): drop it from COINSTREAM_MASTODON_INSTANCES"
                ) from None
            raise
        posts = parse_statuses(body, now, on_skip)
        ids = [str(s["id"]) for s in body if isinstance(s, dict) and isinstance(s.get("id"), str | int)]
        link = headers.get("link")
        created = {}
        for status in body if isinstance(body, list) else []:
            try:
                created[str(status["id"])] = datetime.fromisoformat(str(status["created_at"]))
            except (KeyError, TypeError, ValueError):
                continue
        return TagPage(posts, ids, link_params(link, "prev"), link_params(link, "next"), created)

    def fetch(
        self, min_id: str | None, now: datetime, on_skip: OnSkip | None = None
    ) -> tuple[list[Envelope], str | None]:
        """(posts newer than `min_id`, the newest id seen): pass that id to the next run."""
        found: dict[str, Envelope] = {}
        newest = min_id
        params: dict[str, Any] = {"min_id": min_id} if min_id else {}
        for _ in range(self.max_pages):
            page = self.page(params, now, on_skip)
            if not page.ids:
                break
            for post in page.posts:
                found[post.key] = post
            newest = newest_id(page.ids + ([newest] if newest else []))
            if min_id is None or len(page.ids) < self.PAGE:
                break  # first run: one page; otherwise stop once caught up
            params = {"min_id": page.newer.get("min_id", newest)}
        return sorted(found.values(), key=lambda e: e.event_time), newest

    def back(self, max_id: str | None, now: datetime, on_skip: OnSkip | None = None) -> TagPage:
        """One page older than `max_id` (the newest page when None): follow `page.older` for the next one."""
        return self.page({"max_id": max_id} if max_id else {}, now, on_skip)


@dataclass(frozen=True)
class TagPage:
    """One page of a tag timeline: its posts, the status ids it held, and the queries of its neighbours."""

    posts: list[Envelope]
    ids: list[str]
    #: the query of the next newer page (`Link` rel="prev"), {} if the server named none
    newer: dict[str, str]
    #: the query of the next older page (`Link` rel="next"), {} at the end of the timeline
    older: dict[str, str]
    #: each status's `created_at` by its id (where it has one that reads)
    created: dict[str, datetime] = field(default_factory=dict)


class InstanceCursors(Cursor):
    """The newest status id seen on each instance."""

    min_id: dict[str, str] = Field(default_factory=dict)


class Mastodon(Source[InstanceCursors]):
    """The #bitcoin hashtag timeline of each configured instance."""

    name = "mastodon"
    kinds = frozenset({Kind.POST})
    cursor_type = InstanceCursors
    summary = "posts tagged #bitcoin on Mastodon instances (COINSTREAM_MASTODON_INSTANCES, no key)"
    recorded: ClassVar[Mapping[str, RecordedParser]] = {
        "mastodon": lambda body, options, now: parse_statuses(body, now)
    }

    def __init__(self, instances: list[str]) -> None:
        self.instances = instances

    @staticmethod
    def instances_of(settings: Settings) -> list[str]:
        """The instances named by COINSTREAM_MASTODON_INSTANCES."""
        return [i.strip() for i in settings.mastodon_instances.split(",") if i.strip()]

    @classmethod
    def build(cls, settings: Settings, options: RunOptions) -> Mastodon:
        """One timeline per instance."""
        return cls(cls.instances_of(settings))

    def fetch(self, cursor: InstanceCursors | None, now: datetime) -> tuple[list[Envelope], InstanceCursors | None]:
        """New statuses of every instance since its own newest id."""
        cursors = dict(cursor.min_id) if cursor else {}
        posts: list[Envelope] = []
        failures: list[CoinstreamError] = []
        for instance in self.instances:
            try:
                found, newest = MastodonTag(ApiClient(instance)).fetch(cursors.get(instance), now, self.skips)
            except CoinstreamError as exc:  # each instance fails alone; its cursor stays for the next run
                logger.error("mastodon %s: %s; the other instances go on", instance, exc)
                failures.append(exc)
                continue
            posts.extend(found)
            if newest:
                cursors[instance] = newest
        if failures and len(failures) == len(self.instances):
            raise failures[0]
        return posts, InstanceCursors(min_id=cursors)

    @classmethod
    def histories(cls, settings: Settings, markets: list[str] | None) -> list[History]:
        """Each configured instance's tag timeline, each within Mastodon's rate (300 requests per 5 minutes)."""
        late = timedelta(hours=settings.mastodon_late_hours)
        return [TagHistory(i, Pacer(settings.mastodon_requests_per_second), late) for i in cls.instances_of(settings)]

    @classmethod
    def probes(cls, settings: Settings) -> list[Probe]:
        """One timeline request per instance."""
        return [
            api_probe(
                f"source mastodon {instance}",
                instance,
                "/api/v1/timelines/tag/bitcoin",
                {"limit": 1},
                "check the network or COINSTREAM_MASTODON_INSTANCES",
            )
            for instance in cls.instances_of(settings)
        ]


#: Mastodon's snowflake ids hold milliseconds since the epoch above 16 bits; a smaller decimal id is no snowflake.
SNOWFLAKES_FROM = datetime(2016, 1, 1, tzinfo=UTC)


class TagHistory(History):
    """One instance's #bitcoin timeline read back page by page (the `Link` header's next page) until its posts
    are older than the window by the lateness margin. How many pages that takes depends on how much was posted.

    A tag timeline is in the order the instance received statuses, not `created_at` order: a remote status that
    arrives late sits among newer ones. A page records as read only the minutes from its oldest status's arrival on
    (`arrived_by`), and paging stops once that is older than the window's start, not at the first old post.
    """

    source = SOURCE

    def __init__(self, instance: str, pacer: Pacer, late: timedelta = timedelta(hours=24)) -> None:
        self.series = f"mastodon {instance}"
        self.tag = MastodonTag(ApiClient(instance, pacer=pacer))
        self.late = late

    def plan(self, start: datetime, end: datetime) -> None:
        """Pages until the posts reach the start: as many as were posted."""
        return None

    def arrived_by(self, page: TagPage) -> datetime | None:
        """A time no later than the arrival of the page's oldest status: every status written since then is read
        once this page is. Mastodon's ids are snowflakes of that arrival (milliseconds << 16), read exactly; other
        servers' (Pleroma's, Akkoma's flake ids) are bounded by the oldest status's `created_at` plus the margin."""
        if not page.ids:
            return None
        oldest = min(page.ids, key=lambda i: (len(i), i))
        if oldest.isdigit():
            at = datetime.fromtimestamp((int(oldest) >> 16) / 1000, UTC)
            if SNOWFLAKES_FROM <= at:
                return at
        created = page.created.get(oldest)
        return created + self.late if created is not None else None

    def pages(self, start: datetime, end: datetime, token: str | None, now: datetime) -> Iterator[Page]:
        """Newest page first (or the page after `token`, a status id), then older ones, to the window's start."""
        max_id = token
        reached = end
        while True:
            asked = self.tag.api.requests
            page = self.tag.back(max_id, now, self.skips)
            requests = self.tag.api.requests - asked
            older = page.older.get("max_id") or (min(page.ids, key=lambda i: (len(i), i)) if page.ids else None)
            bound = self.arrived_by(page)
            if bound is not None:
                reached = max(start, min(reached, bound))
            done = not page.ids or not older or reached <= start
            if done:
                reached = start  # the timeline's end, or every post of the window read
            kept = [p for p in page.posts if start <= p.event_time < end]
            yield Page(kept, reached, None if done else older, requests)
            if done:
                return
            max_id = older
