"""Text helpers shared by sources and the consumer: which watched terms a post mentions."""

from __future__ import annotations

import re

#: Terms a post is matched on, lower-case; the first four are how people write "bitcoin" in the
#: markets this pipeline watches (English, Korean, Japanese, Chinese).
DEFAULT_TERMS = ("bitcoin", "비트코인", "ビットコイン", "比特币", "btc", "#bitcoin", "#btc", "$btc")

_BTC_WORD = re.compile(r"(?<![a-z0-9])btc(?![a-z0-9])")


def matched_terms(text: str, terms: tuple[str, ...] = DEFAULT_TERMS) -> list[str]:
    """Which watched terms a text contains ("btc" only as a word, not inside another one)."""
    lowered = text.lower()
    return [term for term in terms if term in lowered and (term != "btc" or _BTC_WORD.search(lowered))]
