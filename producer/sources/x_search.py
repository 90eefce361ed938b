"""X API v2 recent search: parse one page of its answer into post envelopes."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import requests
import tweepy
from pydantic import Field, SecretStr

from coinstream import records
from coinstream.config import Settings
from coinstream.errors import BadPayload, CoinstreamError, FatalError, TransientError
from coinstream.records import Envelope, Kind
from coinstream.retry import retrying
from coinstream.timeutil import epoch_minute, minute_start
from producer.sources.base import Cursor, OnSkip, Probe, RecordedParser, RunOptions, Source, parse_items

SOURCE = "x"
logger = logging.getLogger(__name__)

# tweepy logs every request's headers, the bearer token included, at DEBUG. A secret must never
# reach a log, whatever level the program runs at, so its client logger never goes below INFO.
logging.getLogger("tweepy.client").setLevel(logging.INFO)


def parse_recent_search(body: Any, fetched_at: datetime, on_skip: OnSkip | None = None) -> list[Envelope]:
    """Post envelopes for one page of `GET /2/tweets/search/recent` (tweet.fields incl. created_at)."""
    if not isinstance(body, dict):
        raise BadPayload(f"x recent search: expected a JSON object, got {type(body).__name__}")
    if "errors" in body and "data" not in body:
        errors = body["errors"] if isinstance(body["errors"], list) else []
        first = errors[0] if errors and isinstance(errors[0], dict) else {}
        raise BadPayload(f"x recent search: error {str(first.get('title') or first.get('message'))[:200]!r}")
    data = body.get("data", [])  # an empty result has no "data" at all
    if not isinstance(data, list):
        raise BadPayload("x recent search: 'data' is not a list")

    def build(post: Any) -> Envelope:
        if not isinstance(post, dict) or not _is_id(post.get("id")):
            raise BadPayload("x recent search: a post has no numeric string 'id'")
        created = post.get("created_at")
        if not isinstance(created, str):
            raise BadPayload(f"x recent search: post {post['id']} has no created_at (ask for tweet.fields=created_at)")
        try:
            created_at = datetime.fromisoformat(created)
        except ValueError:
            raise BadPayload(
                f"x recent search: post {post['id']} created_at={created[:40]!r} is not ISO 8601"
            ) from None
        refs = post.get("referenced_tweets") or []
        referenced = {r.get("type") for r in refs if isinstance(r, dict)} if isinstance(refs, list) else set()
        text = post.get("text", "")
        return records.post(
            SOURCE,
            post["id"],
            created_at,
            fetched_at,
            text=text if isinstance(text, str) else "",
            author_id=post.get("author_id"),
            lang=post.get("lang"),
            is_retweet="retweeted" in referenced,
            is_reply="replied_to" in referenced,
        )

    return parse_items(data, build, "x recent search", on_skip)


def _is_id(value: Any) -> bool:
    """X ids are decimal strings (64-bit); since_id must be one, or every later request is refused."""
    return isinstance(value, str) and value.isascii() and value.isdigit() and 0 < len(value) <= 20


class RateLimited(CoinstreamError):
    """X answered 429: no more requests until `until` (epoch seconds, when the header said so)."""

    def __init__(self, message: str, until: int | None) -> None:
        super().__init__(message)
        self.until = until


def _check_response(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """Every X answer that is not a success becomes one of our errors before tweepy reads it (tweepy itself
    fails on some error bodies, such as a list, with a traceback)."""
    status = response.status_code
    if status < 400:
        return
    what = "x counts" if "/counts/" in response.url else "x recent search"
    if status == 429:
        reset = response.headers.get("x-rate-limit-reset", "")
        until = int(reset) if reset.isascii() and reset.isdigit() else None
        raise RateLimited(f"{what}: rate limited (HTTP 429) until {until or '?'}", until)
    if status == 401:
        raise FatalError(f"{what}: HTTP 401, the bearer token is not valid (COINSTREAM_X_BEARER_TOKEN)")
    if status == 402:
        raise FatalError(f"{what}: HTTP 402, the X account has no credit left for this request")
    if status >= 500:
        raise TransientError(f"{what}: HTTP {status} from X")
    raise FatalError(f"{what}: HTTP {status}: {response.text[:200]!r}")


@dataclass
class SearchResult:
    """One run of recent search: the posts, the newest id (next run's since_id), posts read, why it stopped."""

    posts: list[Envelope]
    newest_id: str | None
    read: int
    stopped_by: str = ""
    rate_limited_until: int | None = None


X_API = "https://api.twitter.com"


class _Rebase(requests.adapters.HTTPAdapter):
    """Sends tweepy's requests (its host is fixed) to another base URL: a proxy, or a loopback server in tests."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        request.url = self.base_url + str(request.url).removeprefix(X_API)
        return super().send(request, **kwargs)


class XRecentSearch:
    """Recent search through tweepy's Client, reading each post once (since_id) within a read budget."""

    def __init__(
        self,
        bearer_token: SecretStr,
        query: str,
        client: tweepy.Client | None = None,
        *,
        base_url: str = X_API,
        max_attempts: int = 3,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.query = query
        # return_type=dict: the raw API answer, parsed by the same function as recorded answers
        self.client = client or tweepy.Client(
            bearer_token=bearer_token.get_secret_value(), return_type=dict, wait_on_rate_limit=False
        )
        self.client.session.hooks["response"].append(_check_response)
        if base_url.rstrip("/") != X_API:
            self.client.session.mount(X_API + "/", _Rebase(base_url))
        self.max_attempts = max_attempts
        self._sleep = sleep

    def _call(self, what: str, request: Callable[[], Any]) -> Any:
        """One API call; a 5xx or a dropped connection is retried a few times within the run."""
        for attempt in retrying(logger, max_attempts=self.max_attempts, initial=1.0, max_wait=10.0, sleep=self._sleep):
            with attempt:
                try:
                    return request()
                except requests.RequestException as exc:
                    raise TransientError(f"{what}: {type(exc).__name__}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def counts(self, since: datetime, now: datetime, on_skip: OnSkip | None = None) -> list[Envelope]:
        """Posts per closed minute from `since` on: one counts request per run (each request is billed)."""
        start = since.strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            body = self._call(
                "x counts",
                lambda: self.client.get_recent_tweets_count(self.query, granularity="minute", start_time=start),
            )
        except RateLimited:
            logger.warning("x counts: rate limited (HTTP 429); the next run asks again")
            return []
        return [c for c in parse_counts(body, self.query, now, on_skip) if c.event_time >= since]

    def fetch(self, since_id: str | None, budget: int, now: datetime, on_skip: OnSkip | None = None) -> SearchResult:
        """Pages of up to 100 posts newer than `since_id`, until none is left or `budget` posts were read."""
        posts: list[Envelope] = []
        if since_id is not None and not _is_id(since_id):
            logger.warning("x: ignoring a since_id that is not an X id (%r); reading the last 7 days' newest", since_id)
            since_id = None
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
                body = self._call(
                    "x recent search", functools.partial(self.client.search_recent_tweets, self.query, **params)
                )
            except RateLimited as exc:
                return SearchResult(posts, newest, read, str(exc).removeprefix("x recent search: "), exc.until)
            page = parse_recent_search(body, now, on_skip)
            posts.extend(page)
            data = body.get("data")
            read += len(data) if isinstance(data, list) else 0  # X bills every post it returned, parsed or not
            meta = body.get("meta") if isinstance(body.get("meta"), dict) else {}
            newest_id = meta.get("newest_id")
            if _is_id(newest_id) and (newest is None or int(str(newest_id)) > int(newest)):
                assert isinstance(newest_id, str)
                newest = newest_id
            elif newest_id is not None and not _is_id(newest_id):
                (on_skip or logger.warning)(f"x recent search: meta.newest_id {str(newest_id)[:40]!r} is not an X id")
            token = meta.get("next_token") if isinstance(meta.get("next_token"), str) else None
            if not token:
                return SearchResult(posts, newest, read)
        # Stopped by the budget with pages left: keep since_id where it was only if nothing was read,
        # else move on (X returns newest first; older unread posts of this window are skipped on purpose).
        return SearchResult(posts, newest, read, f"read budget of {budget} posts reached")


def parse_counts(body: Any, query: str, fetched_at: datetime, on_skip: OnSkip | None = None) -> list[Envelope]:
    """Per-minute count envelopes of `GET /2/tweets/counts/recent` (granularity=minute), closed minutes only."""
    if not isinstance(body, dict) or not isinstance(body.get("data", []), list):
        raise BadPayload("x counts: expected an object with a 'data' list")

    def build(bucket: Any) -> Envelope | None:
        try:
            start = datetime.fromisoformat(str(bucket["start"]))
            end = datetime.fromisoformat(str(bucket["end"]))
            count = bucket["tweet_count"]
        except (KeyError, TypeError, ValueError):
            raise BadPayload(f"x counts: a bucket is not start/end/tweet_count: {bucket!r}"[:200]) from None
        if end.tzinfo is None or end > fetched_at:
            return None  # the running minute is not a fact yet (and a time without a zone never is)
        return records.post_count(SOURCE, start, count, query, fetched_at)

    return parse_items(body.get("data", []), build, "x counts", on_skip)


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
        search = XRecentSearch(self.settings.x_token(), self.settings.x_query, base_url=self.settings.x_url)
        counted = cursor.counted_minute
        since = minute_start(counted + 1) if counted is not None else now - timedelta(minutes=60)
        counts = search.counts(since, now, self.skips)
        result = search.fetch(cursor.since_id, budget, now, self.skips)
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
