"""The one interface every source implements, and what sources share.

A source fetches from one API and parses its answer into the record contract, nothing else: the
runner (`producer/run.py`) alone owns the lock, the spool, the put and committing the cursor. A new
source is one file with a `Source` subclass plus one line in `producer/sources/registry.py`; it then
shows up in the CLI's help, in `coinstream doctor` and in the offline replayer by itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Generic, Self, TypeVar

from pydantic import BaseModel, ConfigDict

from coinstream.config import Settings
from coinstream.errors import CoinstreamError
from coinstream.http import ApiClient
from coinstream.records import Envelope, Kind
from producer.sources.history import History
from producer.sources.parsing import KeepsSkips


class Cursor(BaseModel):
    """Where a source resumes; saved as the producer's state file after each run's records are safe."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class NoCursor(Cursor):
    """For sources that start from the same place every run."""


class MinuteCursor(Cursor):
    """The last closed minute already emitted (epoch minutes)."""

    last_minute: int


@dataclass(frozen=True)
class RunOptions:
    """What one `coinstream produce` run asks of a source."""

    kind: Kind
    market: str = "KRW-BTC"
    backfill_minutes: int = 60
    from_dir: Path | None = None
    #: exchanges: seconds after a minute's end before its candle counts as closed
    grace_seconds: float = 10.0
    #: exchanges: closed minutes each run reads again (a changed candle is sent again)
    reread_minutes: int = 3


@dataclass(frozen=True)
class Probe:
    """One `coinstream doctor` line for a source: what is checked, how, and the fix if it fails."""

    what: str
    run: Callable[[], str]
    fix: str


#: Parses one recorded API answer (as the API sent it) into envelopes, for the offline replayer.
RecordedParser = Callable[[Any, RunOptions, datetime], list[Envelope]]

C = TypeVar("C", bound=Cursor)


class Source(KeepsSkips, ABC, Generic[C]):
    """A source of records: its name, the kinds it emits, how it is built, and one fetch per run."""

    #: the name on the command line (`--source NAME`) and in state, lock and spool names
    name: ClassVar[str]
    #: the kinds its records have; `coinstream produce <kind>s` accepts the source if one matches
    kinds: ClassVar[frozenset[Kind]]
    #: the type of its cursor (what `fetch` takes and returns)
    cursor_type: ClassVar[type[Cursor]] = NoCursor
    #: one line for the CLI's help
    summary: ClassVar[str]
    #: folder name under an offline recording (`<dir>/<folder>/*.json`) -> how to parse one file of it
    recorded: ClassVar[Mapping[str, RecordedParser]] = {}

    @classmethod
    @abstractmethod
    def build(cls, settings: Settings, options: RunOptions) -> Self:
        """The source as configured by the settings (URLs, tokens, budgets) for one run."""

    @abstractmethod
    def fetch(self, cursor: C | None, now: datetime) -> tuple[list[Envelope], C | None]:
        """This run's records and the cursor to save once they are safe (None: nothing to save)."""

    @classmethod
    def probes(cls, settings: Settings) -> list[Probe]:
        """What `coinstream doctor` checks for this source (nothing by default)."""
        return []

    @classmethod
    def histories(cls, settings: Settings, markets: list[str] | None) -> list[History]:
        """The series whose past `coinstream backfill` reads from this source (none by default): one per market
        for an exchange (`markets`, else the configured ones), one per instance or query for posts."""
        return []

    #: an error that ended the fetch after it had records or billed requests to keep: the runner sends those and
    #: saves the cursor first, then raises it (so a failed second request never loses what the first one got)
    failed: CoinstreamError | None = None


def api_probe(what: str, base_url: str, path: str, params: dict[str, Any], fix: str) -> Probe:
    """A doctor probe that asks one API once, without retries."""

    def run() -> str:
        ApiClient(base_url, max_attempts=1).get_json(path, params, path)
        return "answers"

    return Probe(what, run, fix)
