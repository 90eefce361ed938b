"""The sources that call an API, in the order `--help` and `doctor` list them: add a source here (one line) and it
appears in the CLI, doctor, backfill and the offline replayer (which reads each one's recordings)."""

from __future__ import annotations

from typing import Any

from producer.sources.base import Source
from producer.sources.binance import Binance
from producer.sources.bitstamp import Bitstamp
from producer.sources.bluesky import Bluesky
from producer.sources.bybit import Bybit
from producer.sources.coinbase import Coinbase
from producer.sources.coinone import Coinone
from producer.sources.kraken import Kraken
from producer.sources.mastodon import Mastodon
from producer.sources.okx import Okx
from producer.sources.upbit import Upbit
from producer.sources.x_search import X

API_SOURCES: tuple[type[Source[Any]], ...] = (
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
