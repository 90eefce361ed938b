"""HTTP for the API sources: one error mapping, retries that honour Retry-After and rate-limit resets."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from coinstream.errors import BadPayload, FatalError, RetryAfter, TransientError
from coinstream.retry import retrying

logger = logging.getLogger(__name__)

USER_AGENT = "coinstream/0.1 (+https://github.com/coinstream)"


def wait_hint(response: httpx.Response, now: Callable[[], float] = time.time) -> float | None:
    """Seconds the server asks us to wait: Retry-After, or x-rate-limit-reset (epoch seconds, X API)."""
    if "retry-after" in response.headers:
        try:
            return max(0.0, float(response.headers["retry-after"]))
        except ValueError:
            return None
    if "x-rate-limit-reset" in response.headers:
        try:
            return max(0.0, float(response.headers["x-rate-limit-reset"]) - now())
        except ValueError:
            return None
    return None


def link_params(header: str | None, rel: str) -> dict[str, str]:
    """The query of the `Link` header's URL for `rel` (RFC 8288: `<url>; rel="next", <url>; rel="prev"`), or {}."""
    for part in (header or "").split(","):
        url, _, attributes = part.partition(";")
        rels = {
            value.strip().strip('"')
            for name, _, value in (a.partition("=") for a in attributes.split(";"))
            if name.strip() == "rel"
            for value in value.strip().strip('"').split()
        }
        if rel in rels:
            return dict(parse_qsl(urlsplit(url.strip().strip("<>")).query))
    return {}


def not_json(what: str, status: int, headers: Mapping[str, str], content: bytes) -> str:
    """One line for an answer that should be JSON and is not: what came (its type and first bytes)."""
    kind = headers.get("content-type") or "no content type"
    start = content[:80].decode(errors="replace")
    return f"{what}: HTTP {status} answered {kind}, not JSON (a wrong URL, a proxy's page, or a cut answer): {start!r}"


#: What a failed name lookup says, on Linux (glibc), macOS and in a container without DNS.
_NO_NAME = ("Name or service not known", "nodename nor servname", "Temporary failure in name resolution", "No address")


def transport_error(exc: httpx.TransportError, host: str) -> str:
    """A request that never got an answer, as one line with what to check."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, httpx.ConnectError) and any(s in str(exc) for s in _NO_NAME):
        return f"cannot resolve {host} ({text}): check this machine's network and DNS, or the source's URL setting"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect to {host} ({text}): check the network, a firewall or proxy, or the URL setting"
    if isinstance(exc, httpx.TimeoutException):
        return f"{host} did not answer in time ({text}): the API may be slow or down; the next run asks again"
    return text


def classify_response(response: httpx.Response, what: str) -> None:
    """Raise for a response that is not a success: 429 and 5xx are transient, a ban or 4xx is fatal."""
    status = response.status_code
    if status < 400:
        return
    if status == 429 or status >= 500:
        raise RetryAfter(f"{what}: HTTP {status}", wait_hint(response))
    if status == 418:
        raise FatalError(
            f"{what}: HTTP 418, the API has banned this client for a while after too many requests; "
            "lower the request rate and wait before the next run"
        )
    body = " ".join(response.text[:600].split())[:200]  # one line, whatever the body's layout
    if status == 451:
        raise Refused(
            f"{what}: HTTP 451, the API refuses requests from this host's location ({body}); "
            "leave this source out, or run the producer where the API serves",
            status,
        )
    raise Refused(f"{what}: HTTP {status}: {body}", status)


class Refused(FatalError):
    """The API refused the request (a 4xx other than 429 and 418): asking again will not help."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Pacer:
    """Keeps requests to one API within its published rate, shared by every client of that API (two markets of
    one exchange share one limit), and waits longer where the API's own headers say its budget is spent.

    Requests go evenly spaced, 1/rate apart plus a margin, never in bursts: an API counts arrivals in its own
    window, and a burst reaches it bunched (queued behind each other) or spread (a thread that held the
    interpreter), either of which a limit of exactly `per_second` in any second can count as one too many.
    """

    #: the spacing's margin over 1/rate: a request that leaves a little late does not crowd the next one in
    MARGIN = 0.08

    def __init__(
        self,
        per_second: float,
        *,
        spent: Callable[[httpx.Headers], float | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = (1 + self.MARGIN) / per_second
        self.per_second = per_second
        self.spent = spent
        self._sent: deque[float] = deque()
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        """Block until the next request may go, and count it as sent."""
        with self._lock:
            now = self._clock()
            at = max(now, self._next)
            self._next = at + self.interval
            self._sent.append(at)
            while self._sent and self._sent[0] < at - 1.0:
                self._sent.popleft()
        if at > now:
            self._sleep(at - now)

    def saw(self, headers: httpx.Headers) -> None:
        """An answer's headers: where they say the budget is spent although this pacer kept to the rate (another
        client on this address asks the same API), hold every client back as long as they say."""
        hold = self.spent(headers) if self.spent else None
        if not hold:
            return
        with self._lock:
            now = self._clock()
            mine = sum(1 for at in self._sent if at > now - 1.0)
            if mine < self.per_second - 1:  # our own requests do not spend the second: someone else's do
                self._next = max(self._next, now + hold)


class ApiClient:
    """GET JSON with bounded retries; numbers keep their exact decimal text (parse_float=Decimal)."""

    def __init__(
        self,
        base_url: str,
        http: httpx.Client | None = None,
        *,
        max_attempts: int = 5,
        max_wait: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        pacer: Pacer | None = None,
    ) -> None:
        self.http = http or httpx.Client(base_url=base_url, timeout=10.0, headers={"User-Agent": USER_AGENT})
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self._sleep = sleep
        self.pacer = pacer
        #: requests sent (every attempt: each is one the API counts against its limit)
        self.requests = 0

    def get_json(self, path: str, params: dict[str, Any], what: str) -> Any:
        """The decoded JSON body of GET path; TransientError after the retries, FatalError for a ban."""
        return self.get(path, params, what)[0]

    def get(self, path: str, params: dict[str, Any], what: str) -> tuple[Any, httpx.Headers]:
        """(decoded JSON body, response headers) of GET path, for APIs that page or pace through headers."""
        policy = retrying(logger, max_attempts=self.max_attempts, max_wait=self.max_wait, sleep=self._sleep)
        for attempt in policy:
            with attempt:
                if self.pacer is not None:
                    self.pacer.wait()
                self.requests += 1
                try:
                    response = self.http.get(path, params=params)
                except httpx.TransportError as exc:
                    raise TransientError(f"{what}: {transport_error(exc, self.http.base_url.host)}") from None
                if self.pacer is not None:
                    self.pacer.saw(response.headers)
                classify_response(response, what)  # a RetryAfter's wait replaces the backoff (retry.py)
                try:
                    return json.loads(response.content, parse_float=Decimal), response.headers
                except ValueError:
                    raise BadPayload(not_json(what, response.status_code, response.headers, response.content)) from None
        raise AssertionError("unreachable")  # pragma: no cover
