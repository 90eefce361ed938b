"""X API v2 recent search: parse one page of its answer into post envelopes."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import requests
import tweepy
from pydantic import Field, SecretStr

from coinstream import records
from coinstream.config import Settings
from coinstream.errors import BadPayload, FatalError, TransientError
from coinstream.records import Envelope, Kind
from coinstream.timeutil import epoch_minute, minute_start
from producer.sources.base import Cursor, Probe, RecordedParser, RunOptions, Source

SOURCE = "x"
logger = logging.getLogger(__name__)

# tweepy logs every request's headers, the bearer token included, at DEBUG. A secret must never
# reach a log, whatever level the program runs at, so its client logger never goes below INFO.
logging.getLogger("tweepy.client").setLevel(logging.INFO)


def parse_recent_search(body: Any, fetched_at: datetime) -> list[Envelope]:
    """Post envelopes for one page of `GET /2/tweets/search/recent` (tweet.fields incl. created_at)."""
    if not isinstance(body, dict):
        raise BadPayload(f"x recent search: expected a JSON object, got {type(body).__name__}")
    if "errors" in body and "data" not in body:
        first = body["errors"][0] if body["errors"] else {}
        raise BadPayload(f"x recent search: error {first.get('title') or first.get('message')!r}")
    data = body.get("data", [])  # an empty result has no "data" at all
    if not isinstance(data, list):
        raise BadPayload("x recent search: 'data' is not a list")
    out = []
    for post in data:
        if not isinstance(post, dict) or not isinstance(post.get("id"), str):
            raise BadPayload("x recent search: a post has no string 'id'")
        created = post.get("created_at")
        if not isinstance(created, str):
            raise BadPayload(f"x recent search: post {post['id']} has no created_at (ask for tweet.fields=created_at)")
        try:
            created_at = datetime.fromisoformat(created)
        except ValueError:
            raise BadPayload(f"x recent search: post {post['id']} created_at={created!r} is not ISO 8601") from None
        referenced = {r.get("type") for r in post.get("referenced_tweets") or [] if isinstance(r, dict)}
        out.append(
            records.post(
                SOURCE,
                post["id"],
                created_at,
                fetched_at,
                text=str(post.get("text", "")),
                author_id=post.get("author_id"),
                lang=post.get("lang"),
                is_retweet="retweeted" in referenced,
                is_reply="replied_to" in referenced,
            )
        )
    return out


@dataclass
class SearchResult:
    """One run of recent search: the posts, the newest id (next run's since_id), posts read, why it stopped."""

    posts: list[Envelope]
    newest_id: str | None
    read: int
    stopped_by: str = ""
    rate_limited_until: int | None = None


class XRecentSearch:
    """Recent search through tweepy's Client, reading each post once (since_id) within a read budget."""

    def __init__(self, bearer_token: SecretStr, query: str, client: tweepy.Client | None = None) -> None:
        self.query = query
        # return_type=dict: the raw API answer, parsed by the same function as recorded answers
        self.client = client or tweepy.Client(
            bearer_token=bearer_token.get_secret_value(), return_type=dict, wait_on_rate_limit=False
        )

    def counts(self, since: datetime, now: datetime) -> list[Envelope]:
        """Posts per closed minute from `since` on: one counts request per run (each request is billed)."""
        try:
            body = self.client.get_recent_tweets_count(
                self.query, granularity="minute", start_time=since.strftime("%Y-%m-%dT%H:%M:%SZ")
            )
        except tweepy.TooManyRequests:
            logger.warning("x counts: rate limited (HTTP 429); the next run asks again")
            return []
        except tweepy.HTTPException as exc:
            raise FatalError(f"x counts: {exc}") from None
        except requests.RequestException as exc:
            raise TransientError(f"x counts: {type(exc).__name__}") from None
        return [c for c in parse_counts(body, self.query, now) if c.event_time >= since]

    def fetch(self, since_id: str | None, budget: int, now: datetime) -> SearchResult:
        """Pages of up to 100 posts newer than `since_id`, until none is left or `budget` posts were read."""
        posts: list[Envelope] = []
        newest = since_id
        read = 0
        token: str | None = None
        while read < budget:
            params: dict[str, Any] = {
                "max_results": max(10, min(100, budget - read)),
                "tweet_fields": ["created_at", "lang", "author_id", "referenced_tweets"],
            }
            if since_id:
                params["since_id"] = since_id
            if token:
                params["next_token"] = token
            try:
                body = self.client.search_recent_tweets(self.query, **params)
            except tweepy.TooManyRequests as exc:
                reset = exc.response.headers.get("x-rate-limit-reset") if exc.response is not None else None
                until = int(reset) if reset and str(reset).isdigit() else None
                return SearchResult(posts, newest, read, f"rate limited (HTTP 429) until {until or '?'}", until)
            except tweepy.TwitterServerError as exc:
                raise TransientError(
                    f"x recent search: HTTP {exc.response.status_code if exc.response else '5xx'}"
                ) from None
            except tweepy.Unauthorized:
                raise FatalError(
                    "x recent search: HTTP 401, the bearer token is not valid (COINSTREAM_X_BEARER_TOKEN)"
                ) from None
            except tweepy.HTTPException as exc:
                raise FatalError(f"x recent search: {exc}") from None
            except requests.RequestException as exc:
                raise TransientError(f"x recent search: {type(exc).__name__}") from None
            page = parse_recent_search(body, now)
            posts.extend(page)
            read += len(page)
            meta = body.get("meta", {}) if isinstance(body, dict) else {}
            if meta.get("newest_id") and (newest is None or int(meta["newest_id"]) > int(newest)):
                newest = str(meta["newest_id"])
            token = meta.get("next_token")
            if not token:
                return SearchResult(posts, newest, read)
        # Stopped by the budget with pages left: keep since_id where it was only if nothing was read,
        # else move on (X returns newest first; older unread posts of this window are skipped on purpose).
        return SearchResult(posts, newest, read, f"read budget of {budget} posts reached")


def parse_counts(body: Any, query: str, fetched_at: datetime) -> list[Envelope]:
    """Per-minute count envelopes of `GET /2/tweets/counts/recent` (granularity=minute), closed minutes only."""
    if not isinstance(body, dict) or not isinstance(body.get("data", []), list):
        raise BadPayload("x counts: expected an object with a 'data' list")
    out = []
    for bucket in body.get("data", []):
        try:
            start = datetime.fromisoformat(str(bucket["start"]))
            end = datetime.fromisoformat(str(bucket["end"]))
            count = int(bucket["tweet_count"])
        except (KeyError, TypeError, ValueError):
            raise BadPayload(f"x counts: a bucket is not start/end/tweet_count: {bucket!r}"[:200]) from None
        if end > fetched_at:
            continue  # the running minute: not a fact yet
        out.append(records.post_count(SOURCE, start, count, query, fetched_at))
    return out


class XCursor(Cursor):
    """Where X reading resumes, and what today's reads cost so far."""

    since_id: str | None = None
    counted_minute: int | None = None
    rate_limited_until: int | float | None = None
    #: posts read per UTC day (only today's is kept)
    reads: dict[str, int] = Field(default_factory=dict)


class X(Source[XCursor]):
    """X API v2 through tweepy: per-minute counts, then recent search within the read budgets."""

    name = "x"
    kinds = frozenset({Kind.POST, Kind.POST_COUNT})
    cursor_type = XCursor
    summary = "X posts (recent search) and per-minute counts; needs COINSTREAM_X_BEARER_TOKEN, billed per read"
    recorded: ClassVar[Mapping[str, RecordedParser]] = {
        "x": lambda body, options, now: parse_recent_search(body, now),
        "x_counts": lambda body, options, now: parse_counts(body, "recorded", now),
    }

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @classmethod
    def build(cls, settings: Settings, options: RunOptions) -> X:
        """The token is read only when a run really asks X (a paused or spent run needs none)."""
        return cls(settings)

    def fetch(self, cursor: XCursor | None, now: datetime) -> tuple[list[Envelope], XCursor | None]:
        """Counts first (one cheap request covers every closed minute), then posts within the budgets."""
        cursor = cursor or XCursor()
        paused = cursor.rate_limited_until
        if paused is not None and now.timestamp() < paused:
            logger.info("x: rate limited until %s; this run reads nothing", datetime.fromtimestamp(paused, UTC))
            return [], None
        day = now.date().isoformat()
        used = cursor.reads.get(day, 0)
        budget = min(self.settings.x_posts_per_run, self.settings.x_posts_per_day - used)
        if budget < 10:
            logger.warning(
                "x: the daily read budget of %d posts is used up; reading resumes tomorrow (UTC) "
                "(COINSTREAM_X_POSTS_PER_DAY)",
                self.settings.x_posts_per_day,
            )
            return [], None
        search = XRecentSearch(self.settings.x_token(), self.settings.x_query)
        counted = cursor.counted_minute
        since = minute_start(counted + 1) if counted is not None else now - timedelta(minutes=60)
        counts = search.counts(since, now)
        result = search.fetch(cursor.since_id, budget, now)
        if result.stopped_by:
            logger.warning("x: stopped after reading %d posts: %s", result.read, result.stopped_by)
        moved = XCursor(
            since_id=result.newest_id or cursor.since_id,
            counted_minute=epoch_minute(counts[-1].event_time) if counts else counted,
            rate_limited_until=result.rate_limited_until or cursor.rate_limited_until,
            reads={day: used + result.read},
        )
        return counts + result.posts, moved

    @classmethod
    def probes(cls, settings: Settings) -> list[Probe]:
        """Only that a token is configured: every X request is billed. The token is never printed."""

        def token() -> str:
            return f"configured ({len(settings.x_token().get_secret_value())} characters)"

        return [
            Probe(
                "source x (token only: every X request is billed)",
                token,
                "set COINSTREAM_X_BEARER_TOKEN or COINSTREAM_X_BEARER_TOKEN_FILE",
            )
        ]
