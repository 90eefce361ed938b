"""The native record path for posts (the `native/` crate, built by `make setup` where cargo is installed).

`PostRows` turns a poll's stream bytes into, per record, the key and row line of a post envelope in its usual
shape, or None where the Python path (`coinstream.records`, `consumer.enrich`) decides: candles, counts,
unusual but valid shapes, and every record to dead-letter. Its lines are byte for byte the Python path's
(tests/unit/test_native.py). Without the module the consumer runs the Python path for everything, slower.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Protocol

from coinstream.text import DEFAULT_TERMS


class PostRows(Protocol):
    """`(keys, lines)`: per record its natural key and row line, or None in both where the Python path decides."""

    def __call__(self, records: Sequence[bytes], processed_at: str) -> tuple[list[str | None], list[bytes | None]]: ...


def post_rows() -> PostRows | None:
    """The native post path, or None where coinstream-native is not installed."""
    try:
        module = importlib.import_module("coinstream_native")
    except ImportError:
        return None
    rows: PostRows = module.PostRows(list(DEFAULT_TERMS))
    return rows
