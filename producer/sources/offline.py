"""Offline source: replays recorded API answers from files, exactly as the APIs sent them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from coinstream.errors import FatalError, SkippableError
from coinstream.records import Envelope, Kind
from producer.sources.coinone import parse_chart
from producer.sources.x_search import parse_recent_search

#: Which recorded files feed which kind, relative to the offline folder.
LAYOUT = {Kind.CANDLE: "coinone", Kind.POST: "x"}


def replay(folder: Path, kind: Kind, *, market: str = "KRW-BTC", now: datetime | None = None) -> list[Envelope]:
    """Envelopes from every recorded answer under `folder/<source>/*.json`, in file-name order."""
    source_dir = folder / LAYOUT[kind]
    files = sorted(source_dir.glob("*.json"))
    if not files:
        raise FatalError(
            f"{source_dir}: no recorded payload files (*.json); pass --from-dir with a folder that has them"
        )
    fetched_at = now or datetime.now(UTC)
    out: list[Envelope] = []
    for file in files:
        try:
            body = json.loads(file.read_bytes())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise FatalError(f"{file}: not valid JSON ({exc}); re-record it or remove it") from None
        try:
            if kind is Kind.CANDLE:
                out.extend(parse_chart(body, market, fetched_at))
            else:
                out.extend(parse_recent_search(body, fetched_at))
        except SkippableError as exc:
            raise FatalError(f"{file}: {exc}; re-record it or remove it") from None
    return out
