"""A fixed, realistic corpus of stream records for benchmarks (seeded: the same bytes every run)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from coinstream import records

TEXTS = [
    "Bitcoin just broke another level #bitcoin #crypto",
    "비트코인 오늘 거래량 미쳤다 #BTC #비트코인 $BTC",
    "$BTC looking heavy here, watching 95k support. Not financial advice.",
    "Is #Bitcoin a hedge against inflation? A thread 🧵 1/12",
    "ビットコインがまた上がった #bitcoin #仮想通貨",
    "RT @someone: bitcoin fees are low today, good time to consolidate UTXOs",
    "比特币 今天 又 涨了 #BTC",
    "gm. stacking sats every day #bitcoin",
]


def corpus(n: int = 100_000, seed: int = 20261128, duplicate_share: float = 0.02) -> list[bytes]:
    """`n` stream records: about one candle per 60 posts (one market, one exchange), with duplicates."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 27, tzinfo=UTC)
    out: list[bytes] = []
    minute = 0
    while len(out) < n:
        if rng.random() < duplicate_share and out:
            out.append(out[rng.randrange(len(out))])
            continue
        if len(out) % 61 == 0:
            at = start + timedelta(minutes=minute)
            minute += 1
            price = 131_000_000 + rng.randint(-500_000, 500_000)
            env = records.candle(
                "coinone",
                "KRW-BTC",
                at,
                at + timedelta(seconds=65),
                {
                    "open": str(price),
                    "high": str(price + 20000),
                    "low": str(price - 20000),
                    "close": str(price + 5000),
                    "volume": f"{rng.uniform(0.1, 9):.8f}",
                    "quote_volume": f"{rng.uniform(1e7, 1e9):.4f}",
                },
            )
        else:
            post_id = str(1995000000000000000 + len(out))
            at = start + timedelta(minutes=minute, seconds=rng.randint(0, 59))
            env = records.post(
                rng.choice(["x", "bluesky", "mastodon"]),
                post_id,
                at,
                # fetched by the minute's producer run: every source stamps a run's records with its start
                start + timedelta(minutes=minute + 1, seconds=5),
                text=rng.choice(TEXTS),
                author_id=str(rng.randint(1, 10**9)),
                lang=rng.choice(["en", "ko", "ja", "zh"]),
                is_retweet=rng.random() < 0.2,
                is_reply=rng.random() < 0.1,
            )
        out.append(env.to_bytes())
    return out
