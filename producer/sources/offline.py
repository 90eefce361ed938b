"""Offline source: replays recorded API answers from files, exactly as the APIs sent them.

A recording is a folder laid out like `tests/payloads/`: `<folder>/*.json`, where each folder is one
that a registered source declares in its `recorded` mapping (coinone, upbit, x, x_counts, mastodon,
bluesky, ...). Every folder present is replayed through its source's own parser, for the kind asked.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from coinstream.config import Settings
from coinstream.errors import FatalError, SkippableError, TryLater
from coinstream.records import Envelope, Kind
from producer.sources import apis
from producer.sources.base import NoCursor, RecordedParser, RunOptions, Source
from producer.sources.candles import ExchangeSource


class Offline(Source[NoCursor]):
    """Every recorded answer under `--from-dir`, for the kind asked; the same records every run."""

    name = "offline"
    kinds = frozenset({Kind.CANDLE, Kind.POST})
    summary = "recorded API answers from --from-dir (or COINSTREAM_OFFLINE_DIR), folders named like the sources"

    def __init__(
        self, folder: Path, options: RunOptions, parsers: dict[str, RecordedParser], settings: Settings | None = None
    ) -> None:
        self.folder = folder
        self.options = options
        self.parsers = parsers
        self.settings = settings or Settings()
        #: the exchange of each exchange's folder: its recordings are labelled with the market they are of
        self.exchanges = {
            name: source
            for source in apis.API_SOURCES
            if isinstance(source, type) and issubclass(source, ExchangeSource)
            for name in source.recorded
        }

    @classmethod
    def build(cls, settings: Settings, options: RunOptions) -> Offline:
        """The recording named by --from-dir, else COINSTREAM_OFFLINE_DIR."""
        folder = options.from_dir or settings.offline_dir
        if folder is None:
            raise FatalError(
                "the offline source replays recorded API answers: pass --from-dir DIR or set COINSTREAM_OFFLINE_DIR "
                "(a folder with <source>/*.json, like the repo's tests/payloads)"
            )
        parsers = {
            name: parser
            for source in apis.API_SOURCES  # read at build time: a test may add one
            if options.kind in source.kinds
            for name, parser in source.recorded.items()
        }
        return cls(folder, options, parsers, settings)

    def fetch(self, cursor: NoCursor | None, now: datetime) -> tuple[list[Envelope], NoCursor | None]:
        """Envelopes of the asked kind (and its companions, such as X's counts with posts), in file-name order."""
        present = {name: sorted((self.folder / name).glob("*.json")) for name in sorted(self.parsers)}
        present = {name: files for name, files in present.items() if files}
        if not present:
            raise FatalError(
                f"{self.folder}: no recorded payload files for {self.options.kind.value}s "
                f"(looked for {', '.join(f'{n}/*.json' for n in sorted(self.parsers))}); "
                "pass --from-dir with a folder that has them"
            )
        out: list[Envelope] = []
        for name, files in present.items():
            for file in files:
                try:
                    body = json.loads(file.read_bytes(), parse_float=Decimal)  # as ApiClient reads answers
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise FatalError(f"{file}: not valid JSON ({exc}); re-record it or remove it") from None
                options = self.options
                if name in self.exchanges:
                    options = replace(options, market=self.exchanges[name].recorded_market(body, file, self.settings))
                try:
                    out.extend(self.parsers[name](body, options, now))
                except (SkippableError, TryLater) as exc:  # a recorded error answer: the recording says why
                    raise FatalError(f"{file}: {exc}; re-record it or remove it") from None
        return out, None


def replay(folder: Path, kind: Kind, *, market: str = "KRW-BTC", now: datetime | None = None) -> list[Envelope]:
    """Envelopes of every recorded answer of `kind` under `folder` (what one offline run would put)."""
    source = Offline.build(Settings(), RunOptions(kind, market=market, from_dir=folder))
    return source.fetch(None, now or datetime.now(UTC))[0]
