"""Dedupe by natural key, in bounded memory: the first copy of a post wins, a later candle replaces."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime

from coinstream.records import REPLACEABLE, Envelope

#: A day of traffic: 1,440 candles per market and exchange, and on a busy day a few hundred
#: thousand posts across sources. Each entry costs roughly 200 bytes.
DEFAULT_CAPACITY = 300_000
#: What is remembered of a post admitted by its key alone: no fingerprint, no fetch time.
_KEY_ONLY = ("", None)


class Deduper:
    """Remembers the last `capacity` natural keys; memory never grows past that.

    A record passes when its key is new. For candles and counts, a copy of a known minute with
    different content and a later fetch time passes too (the later copy replaces the earlier one
    downstream); any other copy is a duplicate. Keys older than the window are forgotten, and a
    copy that arrives after that is left to the warehouse views.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("dedupe capacity must be at least 1")
        self.capacity = capacity
        # key -> (content fingerprint, fetch time); the fingerprint only matters for candles, and a post
        # admitted by key alone has no fetch time
        self._seen: OrderedDict[str, tuple[str, datetime | None]] = OrderedDict()
        self.dropped = 0
        self.replaced = 0

    def admit(self, envelope: Envelope) -> bool:
        """True when the record should go on; False for a duplicate."""
        key = envelope.key
        is_candle = envelope.kind in REPLACEABLE
        previous = self._seen.get(key)
        if previous is not None:
            self._seen.move_to_end(key)
            fingerprint, fetched_at = previous
            later = fetched_at is None or envelope.fetched_at > fetched_at
            if not (is_candle and later and envelope.fingerprint != fingerprint):
                self.dropped += 1
                return False
            self.replaced += 1
        self._seen[key] = (envelope.fingerprint if is_candle else "", envelope.fetched_at)
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True

    def admit_posts(self, keys: Sequence[str | None]) -> list[int]:
        """`admit` for posts known only by their keys (the native path), None skipped: the indices of the
        keys that pass. The first copy of a post wins."""
        seen, fresh = self._seen, []
        room = self.capacity - len(seen)
        for i, key in enumerate(keys):
            if key is None:
                continue
            if key in seen:
                seen.move_to_end(key)
                self.dropped += 1
                continue
            seen[key] = _KEY_ONLY
            fresh.append(i)
            if room > 0:
                room -= 1
            else:
                seen.popitem(last=False)
        return fresh

    def __len__(self) -> int:
        return len(self._seen)
