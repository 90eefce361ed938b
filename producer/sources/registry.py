"""Every source by name: add a source here (one line) and it appears in the CLI, doctor and offline replay."""

from __future__ import annotations

from typing import Any

from coinstream.config import Settings
from coinstream.errors import FatalError
from coinstream.records import Kind
from producer.sources.base import RunOptions, Source
from producer.sources.binance import Binance
from producer.sources.bitstamp import Bitstamp
from producer.sources.bluesky import Bluesky
from producer.sources.bybit import Bybit
from producer.sources.coinbase import Coinbase
from producer.sources.coinone import Coinone
from producer.sources.kraken import Kraken
from producer.sources.mastodon import Mastodon
from producer.sources.offline import Offline
from producer.sources.okx import Okx
from producer.sources.simulated import Simulated
from producer.sources.upbit import Upbit
from producer.sources.x_search import X

SOURCES: dict[str, type[Source[Any]]] = {
    source.name: source
    for source in (
        Offline,
        Simulated,
        Coinone,
        Upbit,
        Binance,
        Coinbase,
        Okx,
        Bybit,
        Kraken,
        Bitstamp,
        X,
        Mastodon,
        Bluesky,
    )
}


def names_for(kind: Kind) -> list[str]:
    """The sources that `coinstream produce <kind>s` accepts."""
    return [name for name, source in SOURCES.items() if kind in source.kinds]


def build(name: str, settings: Settings, options: RunOptions) -> Source[Any]:
    """The named source for one run; an unknown name or a kind it does not give is one clear line."""
    source = SOURCES.get(name)
    if source is None:
        raise FatalError(f"unknown source {name!r}: use one of {', '.join(SOURCES)}")
    if options.kind not in source.kinds:
        gives = sorted(k.value for k in source.kinds if k is not Kind.POST_COUNT)
        raise FatalError(f"{name} gives {' and '.join(gives)}s: use `coinstream produce {gives[0]}s --source {name}`")
    return source.build(settings, options)
