"""Bluesky Jetstream (free): a bounded listen to the firehose of new posts, keeping those about bitcoin.

Jetstream sends every new post on the network; we keep posts whose text or tags mention bitcoin,
and resume from the saved cursor (the last event's `time_us`) on the next run.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit

import httpx
from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

from coinstream.config import Settings
from coinstream.errors import BadPayload, CoinstreamError, FatalError, TransientError
from coinstream.http import USER_AGENT, ApiClient, Pacer, classify_response
from coinstream.records import Envelope, Kind
from producer.sources.base import Cursor, Probe, RecordedParser, RunOptions, Source
from producer.sources.bluesky_posts import (
    COLLECTION,
    SOURCE,
    TID_TOLERANCE,
    post_from_event,
    post_from_view,
    xrpc_error,
)
from producer.sources.history import History, Page
from producer.sources.parsing import OnSkip, parse_items

logger = logging.getLogger(__name__)

DEFAULT_URL = "wss://jetstream2.us-east.bsky.network/subscribe"


@dataclass
class ListenResult:
    """One bounded listen: the kept posts, the cursor to resume from, events seen."""

    posts: list[Envelope]
    cursor: int | None
    events: int


class JetstreamListener:
    """Listen for at most `seconds` or until `max_posts` posts about bitcoin were kept."""

    def __init__(self, url: str = DEFAULT_URL, *, seconds: float = 50.0, max_posts: int = 1000) -> None:
        self.url = url
        self.seconds = seconds
        self.max_posts = max_posts

    def listen(self, cursor: int | None, now: datetime, on_skip: OnSkip | None = None) -> ListenResult:
        """Read events from `cursor` (or live) within the bounds; a dropped connection ends the run early."""
        query = {"wantedCollections": COLLECTION, **({"cursor": str(cursor)} if cursor else {})}
        posts: list[Envelope] = []
        events = 0
        deadline = time.monotonic() + self.seconds
        try:
            with connect(f"{self.url}?{urlencode(query)}", open_timeout=10, close_timeout=2) as ws:
                while len(posts) < self.max_posts:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    try:
                        message = ws.recv(timeout=left)
                    except TimeoutError:
                        break
                    try:
                        event = json.loads(message)
                    except ValueError:
                        continue
                    events += 1
                    if isinstance(event, dict) and type(event.get("time_us")) is int:
                        cursor = event["time_us"]  # moves past a bad event too: it is never read again
                    try:
                        post = post_from_event(event, now)
                    except CoinstreamError as exc:
                        (on_skip or logger.warning)(str(exc))
                        continue
                    if post is not None:
                        posts.append(post)
        except (OSError, WebSocketException) as exc:
            if not events:
                raise TransientError(f"bluesky jetstream {self.url}: {type(exc).__name__}: {exc}") from None
            logger.warning("bluesky jetstream: connection ended after %d events (%s); resuming next run", events, exc)
        return ListenResult(posts, cursor, events)


class JetstreamCursor(Cursor):
    """The `time_us` of the last Jetstream event read."""

    cursor: int


def _recorded(body: Any, options: RunOptions, now: datetime) -> list[Envelope]:
    """A recorded answer: Jetstream events (one, or a list), a searchPosts page (`posts`), a feed page (`feed`)."""
    error = xrpc_error(body)
    if error:
        hint = " (searchPosts needs a signed-in session)" if "Auth" in error else ""
        raise BadPayload(f"bluesky: the answer is an error, {error}{hint}")
    if isinstance(body, dict) and isinstance(body.get("posts"), list):
        return parse_items(body["posts"], lambda v: post_from_view(v, now), "bluesky search", None)
    if isinstance(body, dict) and isinstance(body.get("feed"), list):
        views = [item.get("post") if isinstance(item, dict) else item for item in body["feed"]]
        return parse_items(views, lambda v: post_from_view(v, now), "bluesky feed", None)
    return parse_items(body if isinstance(body, list) else [body], lambda e: post_from_event(e, now), "bluesky", None)


class Bluesky(Source[JetstreamCursor]):
    """A bounded listen to Bluesky's Jetstream, keeping posts about bitcoin."""

    name = "bluesky"
    kinds = frozenset({Kind.POST})
    cursor_type = JetstreamCursor
    summary = "Bluesky posts about bitcoin from the Jetstream firehose (free, no key)"
    recorded: ClassVar[Mapping[str, RecordedParser]] = {"bluesky": _recorded}

    def __init__(self, listener: JetstreamListener) -> None:
        self.listener = listener

    @classmethod
    def build(cls, settings: Settings, options: RunOptions) -> Bluesky:
        """Listen at COINSTREAM_BLUESKY_URL within COINSTREAM_BLUESKY_SECONDS / _MAX_POSTS."""
        return cls(
            JetstreamListener(
                settings.bluesky_url, seconds=settings.bluesky_seconds, max_posts=settings.bluesky_max_posts
            )
        )

    @classmethod
    def histories(cls, settings: Settings, markets: list[str] | None) -> list[History]:
        """Search's past posts (needs an app password: the search refuses unauthenticated calls)."""
        return [SearchHistory(settings)]

    @classmethod
    def probes(cls, settings: Settings) -> list[Probe]:
        """The live path: Jetstream's websocket handshake (no event is read); the history's: its sign-in settings."""

        def jetstream() -> str:
            query = urlencode({"wantedCollections": "app.bsky.feed.post"})
            try:
                with connect(f"{settings.bluesky_url}?{query}", open_timeout=10, close_timeout=2):
                    return "answers"
            except socket.gaierror as exc:
                host = urlsplit(settings.bluesky_url).hostname
                raise TransientError(f"cannot resolve {host} ({exc}): check this machine's network and DNS") from None
            except (OSError, WebSocketException) as exc:
                raise TransientError(f"{type(exc).__name__}: {exc}") from None

        def search() -> str:
            if settings.bluesky_handle and settings.bluesky_app_password is not None:
                return f"sign-in configured for {settings.bluesky_handle} (checked by the first backfill)"
            return "not configured (live posts need none; `backfill` of Bluesky does)"

        return [
            Probe("source bluesky (Jetstream)", jetstream, "check the network or COINSTREAM_BLUESKY_URL"),
            Probe(
                "source bluesky (search, for backfill)",
                search,
                "set COINSTREAM_BLUESKY_HANDLE and COINSTREAM_BLUESKY_APP_PASSWORD",
            ),
        ]

    def fetch(self, cursor: JetstreamCursor | None, now: datetime) -> tuple[list[Envelope], JetstreamCursor | None]:
        """Posts heard since the cursor (or live on the first run)."""
        heard = self.listener.listen(cursor.cursor if cursor else None, now, self.skips)
        return heard.posts, JetstreamCursor(cursor=heard.cursor) if heard.cursor else cursor


class SearchHistory(History):
    """Bluesky posts about bitcoin of a past window, from `app.bsky.feed.searchPosts` (`sort=latest`, paged by
    `cursor`), counted at `indexedAt`. The search refuses unauthenticated calls (403 AuthMissing), so it signs in
    with an app password (`com.atproto.server.createSession`); Jetstream's own replay reaches back hours, not days.
    """

    source = SOURCE
    #: Bluesky's published limit is 3000 requests per 5 minutes per address; this stays well inside it
    PER_SECOND = 5.0

    def __init__(self, settings: Settings) -> None:
        if not settings.bluesky_handle or settings.bluesky_app_password is None:
            raise FatalError(
                "bluesky history reads app.bsky.feed.searchPosts, which needs a signed-in session: set "
                "COINSTREAM_BLUESKY_HANDLE and COINSTREAM_BLUESKY_APP_PASSWORD (an app password, from Bluesky's "
                "Settings > Privacy and security > App passwords), or leave bluesky out with --source"
            )
        self.settings = settings
        self.series = f"bluesky search {settings.bluesky_query!r}"

    def plan(self, start: datetime, end: datetime) -> None:
        """Pages until the posts reach the start: as many as were posted."""
        return None

    def _signed_in(self) -> ApiClient:
        s = self.settings
        assert s.bluesky_app_password is not None  # checked when built
        with httpx.Client(base_url=s.bluesky_api_url, timeout=10.0, headers={"User-Agent": USER_AGENT}) as http:
            try:
                response = http.post(
                    "/xrpc/com.atproto.server.createSession",
                    json={"identifier": s.bluesky_handle, "password": s.bluesky_app_password.get_secret_value()},
                )
            except httpx.TransportError as exc:
                raise TransientError(f"bluesky sign-in at {s.bluesky_api_url}: {type(exc).__name__}") from None
        if response.status_code in (400, 401):
            raise FatalError(
                f"bluesky sign-in: HTTP {response.status_code}, the handle or app password was refused "
                "(COINSTREAM_BLUESKY_HANDLE, COINSTREAM_BLUESKY_APP_PASSWORD)"
            )
        classify_response(response, "bluesky sign-in")
        token = response.json().get("accessJwt")
        if not isinstance(token, str):
            raise BadPayload("bluesky sign-in: the answer has no accessJwt")
        http = httpx.Client(
            base_url=s.bluesky_api_url,
            timeout=10.0,
            headers={"User-Agent": USER_AGENT, "Authorization": f"Bearer {token}"},
        )
        return ApiClient(s.bluesky_api_url, http, pacer=Pacer(self.PER_SECOND))

    def pages(self, start: datetime, end: datetime, token: str | None, now: datetime) -> Iterator[Page]:
        """Newest first, asked by `sortAt` with the margin on both sides of [start, end), counted by `indexedAt`.

        searchPosts orders and filters by `sortAt` (the earlier of `createdAt` and `indexedAt`), while a post counts
        at `indexedAt`: a post indexed inside the window can be sorted before it. So the search asks from the margin
        before `start` to the margin after `end`, keeps the posts indexed inside the window (each post counts in
        exactly one window), and records as read only the minutes from a page's oldest `sortAt` plus the margin on
        (no post is indexed later than that after it was written). Where the cursor stops before the window's start
        ("may not scroll the entire result set"), the search is asked again below the oldest `sortAt` it reached.
        The token is `<until>|<cursor>`.
        """
        api = self._signed_in()
        margin = timedelta(minutes=self.settings.bluesky_sort_margin_minutes)
        until, _, cursor_text = (token or "").rpartition("|") if token and "|" in token else ("", "", token or "")
        upper = datetime.fromisoformat(until) if until else end + margin
        cursor: str | None = cursor_text or None
        reached = end
        floor: datetime | None = None
        while True:
            params = {
                "q": self.settings.bluesky_query,
                "sort": "latest",
                "limit": 100,
                "since": _zulu(start - margin),
                "until": _zulu(upper),
                **({"cursor": cursor} if cursor else {}),
            }
            body = api.get_json("/xrpc/app.bsky.feed.searchPosts", params, "bluesky search")
            said = xrpc_error(body)
            if said or not isinstance(body, dict) or not isinstance(body.get("posts"), list):
                raise BadPayload(f"bluesky search: {said or 'the answer has no posts list'}")
            posts = parse_items(body["posts"], lambda v: post_from_view(v, now), "bluesky search", self.skips)
            sorted_at = [t for t in map(sort_at, body["posts"]) if t is not None]
            if sorted_at:  # a post counts within TID_TOLERANCE of its indexedAt, which is within the margin of sortAt
                reached = max(start, min(reached, min(sorted_at) + margin - TID_TOLERANCE))
            cursor = body.get("cursor") if isinstance(body.get("cursor"), str) and body.get("cursor") else None
            lowest = min(sorted_at, default=None)
            if cursor is None and lowest is not None and reached > start and (floor is None or lowest < floor):
                floor, upper = lowest, lowest + timedelta(seconds=1)  # the cursor ended early: ask below it again
            elif cursor is None or not body["posts"]:
                reached = start  # the search has nothing older in the window
            done = reached <= start
            kept = [p for p in posts if start <= p.event_time < end]
            yield Page(kept, reached, None if done else f"{upper.isoformat()}|{cursor or ''}")
            if done:
                return


def _zulu(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def sort_at(view: Any) -> datetime | None:
    """A PostView's `sortAt` as searchPosts orders by it: the earlier of `indexedAt` and the record's `createdAt`
    (None where neither is a time with a zone)."""
    if not isinstance(view, dict):
        return None
    record = view.get("record")
    times = []
    for text in (view.get("indexedAt"), record.get("createdAt") if isinstance(record, dict) else None):
        try:
            at = datetime.fromisoformat(str(text))
        except ValueError:
            continue
        if at.tzinfo is not None:
            times.append(at)
    return min(times, default=None)
