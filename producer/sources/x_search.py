"""X API v2 recent search: parse one page of its answer into post envelopes."""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import requests
import tweepy
from pydantic import Field, SecretStr, model_validator

from coinstream import records
from coinstream.config import Settings
from coinstream.errors import BadPayload, CoinstreamError, FatalError, TransientError
from coinstream.http import not_json
from coinstream.records import Envelope, Kind
from coinstream.retry import retrying
from coinstream.secrets import x_token
from coinstream.timeutil import epoch_minute, minute_start
from coinstream.x_bill import BudgetSpent, XBudget, XPrices, XUsage, carry_old_reads
from producer.lock import run_lock
from producer.sources.base import Cursor, Probe, RecordedParser, RunOptions, Source
from producer.sources.history import History, Page
from producer.sources.parsing import OnSkip, parse_items
from producer.state import StateFile

SOURCE = "x"
logger = logging.getLogger(__name__)

# tweepy logs every request's headers, the bearer token included, at DEBUG. A secret must never
# reach a log, whatever level the program runs at, so its client logger never goes below INFO.
logging.getLogger("tweepy.client").setLevel(logging.INFO)


class _PassedOnAnyway(logging.Filter):
    """tweepy's counts method does not list `next_token` (X documents it), warns, and sends it all the same."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Unexpected parameter: next_token" not in record.getMessage()


logging.getLogger("tweepy.client").addFilter(_PassedOnAnyway())


def parse_recent_search(body: Any, fetched_at: datetime, on_skip: OnSkip | None = None) -> list[Envelope]:
    """Post envelopes for one page of `GET /2/tweets/search/recent` (tweet.fields incl. created_at)."""
    if not isinstance(body, dict):
        raise BadPayload(f"x recent search: expected a JSON object, got {type(body).__name__}")
    if "data" not in body:
        problem = x_problem(body)
        if problem:
            raise BadPayload(f"x recent search: {problem}")
    elif body.get("errors"):
        # partial errors (an expansion it may not show, a deleted quoted post): the posts stand; said once
        logger.warning("x recent search: the answer has its posts and %s", x_problem(body))
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


def x_problem(body: dict[str, Any]) -> str:
    """What an X answer says went wrong, in one line ("" if it says nothing): its `errors` list (partial errors
    hold `title`/`detail`, invalid requests `message`), or the problem+json fields (`title`, `detail`) that 401
    and 429 answers carry without any list."""
    errors = (
        [e for e in body.get("errors") or [] if isinstance(e, dict)] if isinstance(body.get("errors"), list) else []
    )
    if errors:
        first = errors[0]
        title = str(first.get("title") or "")[:80]
        said = str(first.get("detail") or first.get("message") or "")[:200]
        others = sorted({str(e.get("title")) for e in errors[1:] if e.get("title") and e.get("title") != title})
        return (
            f"{len(errors)} error{'s' if len(errors) > 1 else ''}: "
            + (f"{title}: " if title else "")
            + said
            + (f" (also {', '.join(others)[:160]})" if others else "")
        )
    if "title" in body or "detail" in body:
        status = f"HTTP {body['status']} " if "status" in body else ""
        return f"{status}{str(body.get('title'))[:80]}: {str(body.get('detail'))[:200]}"
    return ""


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
    what = "x counts" if "/counts/" in response.url else "x recent search"
    if status < 400:
        if "json" not in response.headers.get("content-type", "json"):
            raise BadPayload(not_json(what, status, response.headers, response.content))
        return
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
    try:
        body = response.json()
        said = x_problem(body) if isinstance(body, dict) else ""
    except ValueError:
        said = ""
    if not said:
        raise FatalError(not_json(what, status, response.headers, response.content))
    raise FatalError(f"{what}: HTTP {status}: {said}")


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

    def counts(
        self, start: datetime, end: datetime, budget: XBudget, now: datetime, on_skip: OnSkip | None = None
    ) -> CountsResult:
        """Posts per minute of [start, end), every page followed; each page is one billed request, booked first."""
        found: list[Envelope] = []
        token: str | None = None
        params: dict[str, Any] = {"granularity": "minute", "start_time": _x_time(start), "end_time": _x_time(end)}
        whole_end = end
        for _ in range(MAX_COUNTS_PAGES):
            try:
                budget.charge_counts_request()
            except BudgetSpent as exc:
                return CountsResult(found, complete=False, stopped_by=str(exc), budget_spent=True)
            if token:
                params["next_token"] = token
            request = functools.partial(self.client.get_recent_tweets_count, self.query, **params)
            try:
                body = self._call("x counts", request)
            except RateLimited as exc:
                return CountsResult(found, complete=False, stopped_by=str(exc), rate_limited_until=exc.until)
            found.extend(c for c in parse_counts(body, self.query, now, on_skip) if start <= c.event_time < end)
            partial = partial_start(body)
            if partial is not None and start <= partial < whole_end:
                whole_end = minute_start(epoch_minute(partial))  # that minute is read again, whole, next run
            token = _next_token(body)
            if not token:
                return CountsResult(found, complete=True, whole_end=whole_end)
        return CountsResult(found, complete=False, stopped_by=f"x counts: {MAX_COUNTS_PAGES} pages and more to come")

    def sample(self, since_id: str | None, size: int, now: datetime, on_skip: OnSkip | None = None) -> SearchResult:
        """One read of the `size` newest posts after `since_id` (X returns newest first): a sample, each post once."""
        if since_id is not None and not _is_id(since_id):
            logger.warning("x: ignoring a since_id that is not an X id (%r); reading the last 7 days' newest", since_id)
            since_id = None
        params: dict[str, Any] = {
            "max_results": size,
            "tweet_fields": ["created_at", "lang", "author_id", "referenced_tweets"],
        }
        if since_id:
            params["since_id"] = since_id
        try:
            body = self._call(
                "x recent search", functools.partial(self.client.search_recent_tweets, self.query, **params)
            )
        except RateLimited as exc:
            return SearchResult([], since_id, 0, str(exc), exc.until)
        posts = parse_recent_search(body, now, on_skip)
        data = body.get("data")
        read = len(data) if isinstance(data, list) else 0  # X bills every post it returned, parsed or not
        meta = body.get("meta") if isinstance(body.get("meta"), dict) else {}
        newest_id = meta.get("newest_id")
        newest = since_id
        if _is_id(newest_id) and (newest is None or int(str(newest_id)) > int(newest)):
            newest = str(newest_id)
        elif newest_id is not None and not _is_id(newest_id):
            (on_skip or logger.warning)(f"x recent search: meta.newest_id {str(newest_id)[:40]!r} is not an X id")
        return SearchResult(posts, newest, read)


#: A counts run of a few hours is one page; this bounds a run that catches up on days of minutes.
MAX_COUNTS_PAGES = 20


def _x_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _next_token(body: Any) -> str | None:
    meta = body.get("meta") if isinstance(body, dict) else None
    token = meta.get("next_token") if isinstance(meta, dict) else None
    return token if isinstance(token, str) and token else None


@dataclass
class CountsResult:
    """One counts run: the minutes' counts, whether every page was read, and why not."""

    counts: list[Envelope]
    complete: bool
    stopped_by: str = ""
    rate_limited_until: int | None = None
    budget_spent: bool = False
    #: where the counted minutes end: the window's end, or the start of a partial bucket's minute in it
    whole_end: datetime | None = None


def parse_counts(body: Any, query: str, fetched_at: datetime, on_skip: OnSkip | None = None) -> list[Envelope]:
    """Per-minute count envelopes of `GET /2/tweets/counts/recent` (granularity=minute), closed minutes only.

    Only a bucket of exactly one whole minute is a minute's count. X answers with partial buckets at both ends
    when the window is not on the minute (`"start": "...T19:18:24.000Z"`): each is skipped with its reason (the
    counts run reads that minute again once whole). Buckets of another size (an answer asked with
    granularity=hour or day) are no minute's count: the page is refused. `meta.total_tweet_count` counts one page
    only and is not used.
    """
    if isinstance(body, dict) and "data" not in body:
        problem = x_problem(body)
        if problem:
            raise BadPayload(f"x counts: {problem}")
    if not isinstance(body, dict) or not isinstance(body.get("data", []), list):
        raise BadPayload("x counts: expected an object with a 'data' list")
    buckets = body.get("data", [])
    # the edges may be partial; a bucket inside the page tells the granularity
    sizes = {size for size in map(_bucket_seconds, buckets[1:-1]) if size is not None and size != 60.0}
    if sizes:
        raise BadPayload(
            f"x counts: buckets of {', '.join(f'{s:g} s' for s in sorted(sizes))}, not one minute: "
            "no minute's count can be read from them (ask with granularity=minute)"
        )

    edges = (id(buckets[0]), id(buckets[-1])) if buckets else ()

    def build(bucket: Any) -> Envelope | None:
        try:
            start = datetime.fromisoformat(str(bucket["start"]))
            end = datetime.fromisoformat(str(bucket["end"]))
            count = bucket["tweet_count"]
        except (KeyError, TypeError, ValueError):
            raise BadPayload(f"x counts: a bucket is not start/end/tweet_count: {bucket!r}"[:200]) from None
        if end.tzinfo is None or start.tzinfo is None or end > fetched_at:
            return None  # the running minute is not a fact yet (and a time without a zone never is)
        if not whole_minute(start, end):
            if id(bucket) in edges:  # X's usual answer to a window not on the minute: nothing is wrong with it
                logger.info("x counts: partial edge bucket %s..%s not stored (read whole later)", start, end)
                return None
            raise BadPayload(f"x counts: the bucket {bucket['start']}..{bucket['end']} is not one whole minute")
        return records.post_count(SOURCE, start, count, query, fetched_at)

    return parse_items(buckets, build, "x counts", on_skip)


def whole_minute(start: datetime, end: datetime) -> bool:
    """Whether [start, end) is exactly one minute, from a minute's start."""
    return end - start == timedelta(minutes=1) and start.second == 0 and start.microsecond == 0


def _bucket_seconds(bucket: Any) -> float | None:
    try:
        start, end = datetime.fromisoformat(str(bucket["start"])), datetime.fromisoformat(str(bucket["end"]))
        return (end - start).total_seconds()
    except (KeyError, TypeError, ValueError):
        return None


def partial_start(body: Any) -> datetime | None:
    """The start of the first partial bucket after a whole one on a counts page (a partial trailing edge): the
    minutes from there on are read again. None where the page ends whole."""
    spans = []
    for bucket in body.get("data", []) if isinstance(body, dict) and isinstance(body.get("data"), list) else []:
        try:
            start, end = datetime.fromisoformat(str(bucket["start"])), datetime.fromisoformat(str(bucket["end"]))
        except (KeyError, TypeError, ValueError):
            continue
        if start.tzinfo is not None and end.tzinfo is not None:
            spans.append((start, whole_minute(start, end)))
    spans.sort()
    first_whole = next((start for start, whole in spans if whole), None)
    if first_whole is None:
        return None
    return next((start for start, whole in spans if not whole and start > first_whole), None)


class XCursor(Cursor):
    """Where X reading resumes, which slots are done, and what X billed per UTC day this month."""

    since_id: str | None = None
    #: the last minute whose count was read (epoch minutes)
    counted_minute: int | None = None
    #: the epoch minute of the last complete counts run and of the last sample read (a run is due once its
    #: period's slot on the clock moves past theirs; kept as minutes so a changed period still compares)
    counts_run_minute: int | None = None
    sample_run_minute: int | None = None
    rate_limited_until: int | float | None = None
    spent: dict[str, XUsage] = Field(default_factory=dict)

    _carry_old_reads = model_validator(mode="before")(carry_old_reads)


class X(Source[XCursor]):
    """X API v2 through tweepy: per-minute counts on their own schedule, a sample of posts, within a dollar budget."""

    name = "x"
    kinds = frozenset({Kind.POST, Kind.POST_COUNT})
    cursor_type = XCursor
    summary = (
        "X per-minute counts (every COINSTREAM_X_COUNTS_EVERY_MINUTES) and a sample of posts; needs "
        "COINSTREAM_X_BEARER_TOKEN, billed per request and post within COINSTREAM_X_DOLLARS_PER_DAY/_MONTH"
    )
    recorded: ClassVar[Mapping[str, RecordedParser]] = {
        "x": lambda body, options, now: parse_recent_search(body, now),
        "x_counts": lambda body, options, now: parse_counts(body, "recorded", now),
    }

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @classmethod
    def build(cls, settings: Settings, options: RunOptions) -> X:
        """The token is read only when a run really asks X (most runs have nothing due and ask nothing)."""
        return cls(settings)

    def fetch(self, cursor: XCursor | None, now: datetime) -> tuple[list[Envelope], XCursor | None]:
        """What is due: the counts since the last counted minute, then one sample read; each within the budget."""
        s = self.settings
        cursor = cursor or XCursor()
        paused = cursor.rate_limited_until
        if paused is not None and now.timestamp() < paused:
            logger.info("x: rate limited until %s; this run asks nothing", datetime.fromtimestamp(paused, UTC))
            return [], None
        running = epoch_minute(now)
        counts_due = _due(cursor.counts_run_minute, running, s.x_counts_every_minutes)
        sample_due = s.x_sample_size > 0 and _due(cursor.sample_run_minute, running, s.x_sample_every_minutes)
        if not (counts_due or sample_due):
            return [], None
        budget = XBudget(XPrices.load(s.prices_file), s.x_dollars_per_day, s.x_dollars_per_month, cursor.spent, now)
        search = XRecentSearch(x_token(s), s.x_query, base_url=s.x_url)
        moved = cursor.model_dump()
        envelopes: list[Envelope] = []
        stop = ""
        if counts_due:
            counted = self._counts(search, cursor, budget, now)
            envelopes += counted.counts
            if counted.complete:
                moved.update(counted_minute=epoch_minute(counted.end) - 1, counts_run_minute=running)
            stop = counted.stopped_by
            moved["rate_limited_until"] = counted.rate_limited_until or cursor.rate_limited_until
        if sample_due and not stop:
            try:
                size = budget.reads_affordable(s.x_sample_size)
            except BudgetSpent as exc:
                stop = str(exc)
            else:
                try:
                    result = search.sample(cursor.since_id, size, now, self.skips)
                except CoinstreamError as exc:
                    if not counts_due:
                        raise
                    # the counts request was billed and its minutes fetched: keep both, then fail the run
                    self.failed = exc
                    moved["spent"] = budget.spent
                    return envelopes, XCursor.model_validate(moved)
                budget.charge_reads(result.read)
                envelopes += result.posts
                moved.update(since_id=result.newest_id or cursor.since_id)
                if result.stopped_by:
                    stop = f"x: {result.stopped_by}"
                    moved["rate_limited_until"] = result.rate_limited_until or cursor.rate_limited_until
                else:
                    moved["sample_run_minute"] = running
        if stop:
            logger.warning("%s", stop)
        moved["spent"] = budget.spent
        return envelopes, XCursor.model_validate(moved)

    def _counts(self, search: XRecentSearch, cursor: XCursor, budget: XBudget, now: datetime) -> _Counted:
        """Every closed minute since the last counted one, the last few again (late-indexed posts raise them)."""
        s = self.settings
        # X answers only for times at least 10 s in the past; the minute that ended less than 10 s ago waits
        end = minute_start(epoch_minute(now - timedelta(seconds=10)))
        oldest = end - timedelta(days=7) + timedelta(minutes=1)  # the recent endpoint's window
        if cursor.counted_minute is None:
            start = end - timedelta(minutes=s.x_counts_every_minutes)
        else:
            start = minute_start(cursor.counted_minute + 1 - s.x_counts_reread_minutes)
        if start < oldest:
            logger.warning(
                "x counts: minutes before %s are older than X's 7-day window and cannot be counted any more",
                oldest.isoformat(),
            )
            start = oldest
        if start >= end:
            return _Counted([], True, end)
        result = search.counts(start, end, budget, now, self.skips)
        counted_end = min(end, result.whole_end or end)
        return _Counted(result.counts, result.complete, counted_end, result.stopped_by, result.rate_limited_until)

    @classmethod
    def histories(cls, settings: Settings, markets: list[str] | None) -> list[History]:
        """X's per-minute counts of the last 7 days (needs the token: every request is billed)."""
        x_token(settings)  # not configured: one line naming the settings, before anything is planned
        return [XCountsHistory(settings)]

    @classmethod
    def probes(cls, settings: Settings) -> list[Probe]:
        """Only that a token is configured: every X request is billed. The token is never printed."""

        def token() -> str:
            return f"configured ({len(x_token(settings).get_secret_value())} characters)"

        return [
            Probe(
                "source x (token only: every X request is billed)",
                token,
                "set COINSTREAM_X_BEARER_TOKEN or COINSTREAM_X_BEARER_TOKEN_FILE",
            )
        ]


def _due(last_run: int | None, running: int, every: int) -> bool:
    """Whether the clock has entered a new slot of `every` minutes (aligned to UTC midnight) since `last_run`."""
    return last_run is None or running // every > last_run // every


@dataclass
class _Counted:
    counts: list[Envelope]
    complete: bool
    end: datetime
    stopped_by: str = ""
    rate_limited_until: int | None = None


class XCountsHistory(History):
    """X's per-minute counts of the last 7 days (counts/recent, granularity=minute), read back one window of
    `COINSTREAM_X_COUNTS_BACKFILL_WINDOW_MINUTES` a request, within the dollar budget the live producer keeps.

    The budget's ledger is the live producer's own state: while this reads, it holds that producer's lock (a
    live X run meanwhile does nothing and the next one goes on), and books each request there as it is made.
    """

    source = SOURCE
    series = "x counts"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.prices = XPrices.load(settings.prices_file)
        self.dollars_per_request = self.prices.counts_request
        self.window = timedelta(minutes=settings.x_counts_backfill_window_minutes)
        self.folder = settings.state_dir / "producer"

    def earliest(self, now: datetime) -> datetime:
        """counts/recent answers for the last 7 days (to the minute)."""
        return minute_start(epoch_minute(now - timedelta(days=7)) + 1)

    def plan(self, start: datetime, end: datetime) -> int:
        """One request per window (X may page a window: each further page is one more request, and is booked)."""
        return math.ceil((end - start) / self.window)

    def estimate(self, since: datetime, until: datetime, now: datetime) -> tuple[int, float]:
        """(requests, dollars) a backfill of [since, until) would take, clipped to what X answers for: what the plan
        would cost with a token (none is needed to say so)."""
        start = max(since, self.earliest(now))
        requests = self.plan(start, until) if start < until else 0
        return requests, requests * self.dollars_per_request

    def budget(self, now: datetime) -> XBudget:
        """The live producer's budget as its state holds it now."""
        state = StateFile(self.folder / "post-x.state.json").load()
        spent = XCursor.model_validate(state).spent if state else {}
        s = self.settings
        return XBudget(self.prices, s.x_dollars_per_day, s.x_dollars_per_month, spent, now)

    def pages(self, start: datetime, end: datetime, token: str | None, now: datetime) -> Iterator[Page]:
        """Windows from the end back to the start, each one billed request (or more) booked before it is made."""
        search = XRecentSearch(x_token(self.settings), self.settings.x_query, base_url=self.settings.x_url)
        state_file = StateFile(self.folder / "post-x.state.json")
        with run_lock(self.folder / "post-x.lock"):
            upper = datetime.fromisoformat(token) if token else end
            while upper > start:
                lower = max(start, upper - self.window)
                budget = self.budget(now)
                before = budget.today.counts_requests
                result = search.counts(lower, upper, budget, now, self.skips)
                state = state_file.load() or {}
                state_file.save({**state, "spent": {d: u.model_dump() for d, u in budget.spent.items()}})
                requests = budget.today.counts_requests - before
                if not result.complete:
                    raise TransientError(f"x counts {lower:%Y-%m-%dT%H:%MZ}..{upper:%H:%MZ}: {result.stopped_by}")
                yield Page(result.counts, lower, lower.isoformat() if lower > start else None, requests)
                upper = lower
