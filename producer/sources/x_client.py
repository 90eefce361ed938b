"""X API v2 through tweepy's Client: recent search and per-minute counts, each answer checked before tweepy
reads it, each 429 a `RateLimited` with X's reset time."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
import tweepy
from pydantic import SecretStr

from coinstream.errors import BadPayload, CoinstreamError, FatalError, TransientError
from coinstream.http import not_json
from coinstream.records import Envelope
from coinstream.retry import retrying
from coinstream.timeutil import epoch_minute, minute_start
from coinstream.x_bill import BudgetSpent, XBudget
from producer.sources.parsing import OnSkip
from producer.sources.x_answers import is_x_id, parse_counts, parse_recent_search, partial_start, x_problem

logger = logging.getLogger(__name__)

# tweepy logs every request's headers, the bearer token included, at DEBUG. A secret must never
# reach a log, whatever level the program runs at, so its client logger never goes below INFO.
logging.getLogger("tweepy.client").setLevel(logging.INFO)


class _PassedOnAnyway(logging.Filter):
    """tweepy's counts method does not list `next_token` (X documents it), warns, and sends it all the same."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Unexpected parameter: next_token" not in record.getMessage()


logging.getLogger("tweepy.client").addFilter(_PassedOnAnyway())


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
                budget.refund_counts_request()
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
        if since_id is not None and not is_x_id(since_id):
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
        if is_x_id(newest_id) and (newest is None or int(str(newest_id)) > int(newest)):
            newest = str(newest_id)
        elif newest_id is not None and not is_x_id(newest_id):
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
