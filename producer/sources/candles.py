"""An exchange's 1-minute candles: the client that pages them, the history that reads a window of them, the
market list asked when a market is refused, and the source the producer runs."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import Field

from coinstream.config import Settings
from coinstream.errors import BadPayload, CoinstreamError, FatalError, TryLater
from coinstream.http import ApiClient, Pacer, Refused
from coinstream.records import Envelope, Kind
from coinstream.timeutil import epoch_minute, minute_start
from producer.sources.base import MinuteCursor, Probe, RunOptions, Source, api_probe
from producer.sources.history import History, Page
from producer.sources.parsing import OnSkip
from producer.state import write_atomically

logger = logging.getLogger(__name__)


class CandleCursor(MinuteCursor):
    """An exchange's position: the last minute emitted, and a fingerprint of each candle sent in the
    minutes still read again (epoch minute -> fingerprint), so an unchanged re-read is not sent twice."""

    sent: dict[int, str] = Field(default_factory=dict)


def fingerprint(envelope: Envelope) -> str:
    """What a candle says (its figures), not when it was fetched: equal for an unchanged re-read."""
    return hashlib.blake2b(envelope.payload_bytes(), digest_size=8).hexdigest()


class CandleHistory(History):
    """An exchange's closed 1-minute candles of one market, paging back with the live client's own requests.

    The rule: a page records as read only the minutes its answer covered. An answer's candles cover the span from
    its oldest candle to the page's upper end; an empty answer covers only the span it was asked for (a quiet
    stretch proves nothing about older minutes); nothing older than the window's start is assumed unless the API
    says it has nothing older (Coinone's `is_last`). An API that serves only its newest minutes (Kraken) covers
    what it answered, not what the plan hoped for.
    """

    #: the longest closure an API announces (Coinone blocks a client for a minute) that a backfill waits out
    LONGEST_WAIT = 120.0
    #: closures waited out for one page before the series stops with the API's reason
    WAITS = 3

    def __init__(
        self, source: str, candles: CandleFetcher, page_minutes: int, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.source = source
        self.series = f"{source} {candles.market}"
        self.candles = candles
        self.page_minutes = page_minutes
        self.sleep = sleep

    def plan(self, start: datetime, end: datetime) -> int:
        """One request per page of candles (fewer where minutes without trades have no candle)."""
        return math.ceil((end - start) / timedelta(minutes=self.page_minutes))

    def ask(self, before: datetime, now: datetime) -> tuple[Any, list[Envelope], int]:
        """(answer, its closed candles, requests it took) of the page before `before`; a closure the API says will
        end soon is waited out, a longer one stops the series with the API's reason."""
        waited = 0
        while True:
            path, params, what = self.candles.page(before)
            asked = self.candles.api.requests
            try:
                body = self.candles.api.get_json(path, params, what)
                return body, self.candles.parse(body, now, self.skips), self.candles.api.requests - asked
            except TryLater as exc:
                if exc.wait is None or exc.wait > self.LONGEST_WAIT or waited >= self.WAITS:
                    raise
                waited += 1
                logger.warning("%s: %s; waiting %.0f s, then going on", self.series, exc, exc.wait)
                self.sleep(exc.wait)

    def pages(self, start: datetime, end: datetime, token: str | None, now: datetime) -> Iterator[Page]:
        """Pages before `end` (or the token's time), each recording as read only what its answer covered, until
        the window's start is covered or the API says it has nothing older."""
        before = datetime.fromisoformat(token) if token else end
        while before > start:
            body, candles, requests = self.ask(before, now)
            kept = [c for c in candles if start <= c.event_time < before]
            inside = [c.event_time for c in candles if c.event_time < before]
            oldest = min(inside, default=None)
            if self.candles.is_last_page(body) or (oldest is not None and oldest <= start):
                yield Page(kept, start, None, requests)  # the window's start is reached (or nothing older exists)
                return
            if not self.candles.pages_back:
                # only the newest minutes are served (Kraken's 720): what is older than its oldest answer is a gap
                served = self.candles.served_from(body)
                reached = max(start, served or oldest or before)
                yield Page(kept, reached, None, requests)
                return
            if oldest is None:
                # an empty answer proves nothing about older minutes (a quiet stretch, maintenance: Coinbase answers
                # [] for a range nobody traded in); only the page's own span is read, then the one before
                oldest = max(start, before - timedelta(minutes=self.page_minutes))
            yield Page(kept, oldest, oldest.isoformat() if oldest > start else None, requests)
            before = oldest


class CandleFetcher(ABC):
    """An exchange's candle client: closed candles of one market after a minute, paging back over downtime.

    A subclass says where a page is (`page`: the request for the page before a given oldest candle, or the
    newest page) and how to read one (`read`, its module's parse function); the paging lives here once.
    """

    def __init__(self, market: str, api: ApiClient, *, max_pages: int = 10) -> None:
        """A client for one market (QUOTE-TARGET, already checked by the settings) over `api`."""
        self.market = market
        self.quote, _, self.target = market.partition("-")
        self.api = api
        self.max_pages = max_pages

    @abstractmethod
    def page(self, before: datetime | None) -> tuple[str, dict[str, Any], str]:
        """(path, query, what) of the page of candles before `before` (the newest page when None)."""

    @staticmethod
    @abstractmethod
    def read(body: Any, market: str, fetched_at: datetime, on_skip: OnSkip | None = None) -> list[Envelope]:
        """The closed candles of one answer, oldest first (the exchange module's parse function)."""

    def parse(self, body: Any, now: datetime, on_skip: OnSkip | None) -> list[Envelope]:
        """The closed candles of one answer, oldest first."""
        return self.read(body, self.market, now, on_skip)

    #: whether older pages can be asked for (Kraken serves its newest 720 minutes and nothing older)
    pages_back: ClassVar[bool] = True

    def served_from(self, body: Any) -> datetime | None:
        """The oldest minute an answer covers where the API says so (Kraken: its open frame less 719 minutes,
        quiet minutes included), else None: its oldest candle."""
        return None

    def is_last_page(self, body: Any) -> bool:
        """Whether the API says nothing older exists (by default it never does: paging stops at `since`)."""
        return False

    def fetch(self, since: datetime | None, now: datetime, on_skip: OnSkip | None = None) -> list[Envelope]:
        """Closed candles after `since` (one page when None), oldest first; malformed candles go to `on_skip`."""
        found: dict[str, Envelope] = {}
        before: datetime | None = None
        for _ in range(self.max_pages):
            path, params, what = self.page(before)
            body = self.api.get_json(path, params, what)
            candles = self.parse(body, now, on_skip)
            found.update((c.key, c) for c in candles if since is None or c.event_time > since)
            done = since is None or not candles or candles[0].event_time <= since
            if done or self.is_last_page(body) or not self.pages_back:
                break
            before = candles[0].event_time
        return sorted(found.values(), key=lambda e: e.event_time)


#: How long an exchange's market list is kept before it is asked again (it is asked only when a candle request
#: is refused, so a cron run never downloads it).
LISTING_MAX_AGE = timedelta(days=7)


@dataclass(frozen=True)
class Listing:
    """An exchange's list of markets: asked when a candle request is refused, kept in the state folder a week."""

    exchange: str
    api: ApiClient
    request: tuple[str, Mapping[str, Any]]
    read: Callable[[Any], list[str]]
    file: Path

    def markets(self, now: datetime) -> tuple[list[str], datetime] | None:
        """(markets as QUOTE-TARGET, when listed): the kept list if young enough, else asked again; None when
        neither is to be had (the API refuses this too, or answers something else)."""
        kept = self._kept()
        if kept is not None and now - kept[1] < LISTING_MAX_AGE:
            return kept
        path, params = self.request
        try:
            markets = sorted(set(self.read(self.api.get_json(path, dict(params), f"{self.exchange} market list"))))
        except (CoinstreamError, KeyError, TypeError, AttributeError, IndexError) as exc:
            logger.info("%s: could not read the market list: %s", self.exchange, exc)
            return kept
        write_atomically(self.file, json.dumps({"listed_at": now.isoformat(), "markets": markets}).encode())
        return markets, now

    def _kept(self) -> tuple[list[str], datetime] | None:
        try:
            data = json.loads(self.file.read_text())
            return [str(m) for m in data["markets"]], datetime.fromisoformat(data["listed_at"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def explain(self, exc: CoinstreamError, market: str, setting: str, now: datetime) -> CoinstreamError:
        """The refusal of `market`'s candles as one line naming the markets the exchange does list, where it does
        not list `market`; else the refusal as it was."""
        found = self.markets(now)
        if found is None or market in found[0]:
            return exc
        markets, listed_at = found
        shown = [m for m in markets if m.endswith("-BTC")] or markets  # the study's markets first
        more = f" and {len(shown) - 20} more" if len(shown) > 20 else ""
        return FatalError(
            f"{self.exchange} does not list the market {market} (its list of {listed_at:%Y-%m-%d}); it lists "
            f"{', '.join(shown[:20])}{more}: set {setting} to one of them"
        )


#: Quote currencies a run-together symbol (BTCUSDT) is split at, longest first, and the targets a recording's name
#: is matched against.
QUOTES = ("USDT", "USDC", "KRW", "USD", "EUR", "BTC")
TARGETS = ("BTC", "ETH", "XRP", "SOL", "DOGE")


def split_symbol(symbol: str) -> str | None:
    """A run-together symbol (BTCUSDT, XBTUSD after Kraken's renaming) as QUOTE-TARGET, split at a known quote."""
    upper = symbol.upper()
    quote = next((q for q in QUOTES if upper.endswith(q) and len(upper) > len(q)), None)
    return f"{quote}-{upper[: -len(quote)]}" if quote else None


def pairs_of(items: Any, base: str, quote: str) -> list[str]:
    """QUOTE-TARGET names of a market list whose entries name their base and quote currencies."""
    return [f"{i[quote]}-{i[base]}".upper() for i in items if isinstance(i, dict) and i.get(base) and i.get(quote)]


class ExchangeSource(Source[CandleCursor]):
    """An exchange's 1-minute candles of one market, resumed after the last minute emitted.

    A subclass names its candle client, the setting that holds its base URL, and the request doctor makes.
    """

    kinds = frozenset({Kind.CANDLE})
    cursor_type = CandleCursor
    #: the exchange's candle client, built for (market, api)
    client: ClassVar[type[CandleFetcher]]
    #: the Settings field with the API's base URL (COINSTREAM_<FIELD> in the environment)
    url_setting: ClassVar[str]
    #: what `coinstream doctor` asks: a path and its query
    probe_request: ClassVar[tuple[str, Mapping[str, Any]]]
    #: candles one page holds (what backfill plans by)
    page_minutes: ClassVar[int] = 200
    #: how its past is read (Kraken's reaches back 720 minutes only)
    history: ClassVar[type[CandleHistory]] = CandleHistory
    #: the Settings field with the API's published request rate (per second, shared by every market)
    rate_setting: ClassVar[str]
    #: where the exchange lists its markets (asked only when a candle request is refused)
    markets_request: ClassVar[tuple[str, Mapping[str, Any]]]

    @staticmethod
    def listed(body: Any) -> list[str]:
        """The markets (QUOTE-TARGET) of the exchange's market list."""
        raise NotImplementedError

    @staticmethod
    def symbol(market: str) -> str:
        """The market (QUOTE-TARGET) as the exchange spells it, in its requests and in recordings' file names."""
        raise NotImplementedError

    @staticmethod
    def said_market(body: Any) -> str | None:
        """The market (QUOTE-TARGET) an answer names, where its body names one (None: it does not say)."""
        return None

    @classmethod
    def recorded_market(cls, body: Any, file: Path, settings: Settings) -> str:
        """The market of a recorded answer: what its body names, else what its file name names in the exchange's
        own spelling (candles_BTC-USD_60.json), else the exchange's first configured market. A body that names
        another market than its file name is refused."""
        stem = f"_{file.stem.lower()}_"
        named = next(
            (
                m
                for m in (f"{q}-{t}" for q in QUOTES for t in TARGETS if q != t)
                if f"_{cls.symbol(m).lower()}_" in stem
            ),
            None,
        )
        said = cls.said_market(body)
        if said and named and said != named:
            raise FatalError(
                f"{file}: the answer is for {said} but its name says {named} ({cls.symbol(named)}): rename the file "
                "or re-record it"
            )
        return said or named or settings.markets(cls.name)[0]

    @staticmethod
    def spent(headers: Any) -> float | None:
        """Seconds to hold back where the API's headers say its budget is spent (None: they do not say)."""
        return None

    @classmethod
    def histories(cls, settings: Settings, markets: list[str] | None) -> list[History]:
        """One series per market, all within the exchange's one published rate."""
        pacer = Pacer(getattr(settings, cls.rate_setting), spent=cls.spent)
        url = getattr(settings, cls.url_setting)
        return [
            cls.history(cls.name, cls.client(market, ApiClient(url, pacer=pacer)), cls.page_minutes)
            for market in markets or settings.markets(cls.name)
        ]

    def __init__(
        self,
        candles: CandleFetcher,
        *,
        grace_seconds: float = 10.0,
        reread_minutes: int = 3,
        listing: Listing | None = None,
    ) -> None:
        self.candles = candles
        self.grace = timedelta(seconds=grace_seconds)
        self.reread = reread_minutes
        self.listing = listing

    @classmethod
    def build(cls, settings: Settings, options: RunOptions) -> Self:
        """Candles of `options.market` from the exchange's configured base URL."""
        api = ApiClient(getattr(settings, cls.url_setting))
        return cls(
            cls.client(options.market, api),
            grace_seconds=options.grace_seconds,
            reread_minutes=options.reread_minutes,
            listing=cls.listing_of(settings, api),
        )

    @classmethod
    def listing_of(cls, settings: Settings, api: ApiClient | None = None) -> Listing:
        """Where the exchange lists its markets (kept in the state folder a week)."""
        return Listing(
            cls.name,
            api or ApiClient(getattr(settings, cls.url_setting)),
            cls.markets_request,
            cls.listed,
            settings.state_dir / "markets" / f"{cls.name}.json",
        )

    @classmethod
    def probes(cls, settings: Settings) -> list[Probe]:
        """One candle request, without retries."""
        path, params = cls.probe_request
        fix = f"check the network or COINSTREAM_{cls.url_setting.upper()}"
        return [api_probe(f"source {cls.name}", getattr(settings, cls.url_setting), path, dict(params), fix)]

    def fetch(self, cursor: CandleCursor | None, now: datetime) -> tuple[list[Envelope], CandleCursor | None]:
        """Candles of the minutes closed (plus the grace) since the cursor's minute, and of the last
        `reread` minutes again where their candle changed (or first appeared) since it was sent."""
        since = minute_start(cursor.last_minute - self.reread) if cursor else None
        try:
            fetched = self.candles.fetch(since, now, self.skips)
        except (BadPayload, Refused) as exc:  # a market the exchange does not list is the likeliest reason
            if self.listing is None:
                raise
            setting = f"COINSTREAM_{self.name.upper()}_MARKETS"
            raise self.listing.explain(exc, self.candles.market, setting, now) from None
        closed = [c for c in fetched if c.event_time + timedelta(minutes=1) + self.grace <= now]
        sent = dict(cursor.sent) if cursor else {}
        fresh = []
        for candle in closed:
            minute, print_ = epoch_minute(candle.event_time), fingerprint(candle)
            if sent.get(minute) != print_:
                fresh.append(candle)
                sent[minute] = print_
        last = max(
            [epoch_minute(c.event_time) for c in closed] + ([cursor.last_minute] if cursor else []), default=None
        )
        if last is None:
            return [], cursor
        kept = {m: f for m, f in sent.items() if m > last - self.reread}  # what later runs read again
        return fresh, CandleCursor(last_minute=last, sent=kept)
