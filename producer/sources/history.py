"""A series' past, read back a page at a time from a window's end: what `coinstream backfill` drives."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from coinstream.records import Envelope
from producer.sources.parsing import KeepsSkips


@dataclass(frozen=True)
class Page:
    """One page of a series' past: its records, how far back the window is now read, where the next page starts."""

    records: list[Envelope]
    #: every record from here to the end of the window being read is now fetched
    reached: datetime
    #: resumes paging at the next older page (None: the window is read to its start)
    token: str | None
    #: billed or rate-limited requests this page took
    requests: int = 1


class History(KeepsSkips, ABC):
    """One series' past (an exchange's market, X's counts, an instance's tag), read back from a window's end to its
    start a page at a time, with the keys the live producer gives the same facts."""

    #: the source's name (`--source`)
    source: str
    #: the series, as progress and coverage name it ("upbit KRW-BTC", "mastodon https://mastodon.social")
    series: str
    #: dollars one request costs (X bills each); 0 for free APIs
    dollars_per_request: float = 0.0

    def earliest(self, now: datetime) -> datetime | None:
        """The oldest time the API serves (None: as far back as it has data)."""
        return None

    @abstractmethod
    def plan(self, start: datetime, end: datetime) -> int | None:
        """Requests reading [start, end) takes at most (None: not known before reading, e.g. posts by volume)."""

    @abstractmethod
    def pages(self, start: datetime, end: datetime, token: str | None, now: datetime) -> Iterator[Page]:
        """The pages of [start, end), newest first; `token` resumes after a page an earlier run read."""
