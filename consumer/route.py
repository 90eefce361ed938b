"""One poll's records, each to exactly one place: a row, a dropped duplicate, or a rejection with its reason.

The record processor's pure core (the benchmark runs the same function). Posts in their usual shape take the
native path when it is given (`consumer.native`): a row line straight from the bytes. Every other record, and
every post the native path leaves alone, is parsed against the contract and enriched in Python.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from coinstream.errors import SkippableError
from coinstream.records import Envelope, Kind
from consumer.dedupe import Deduper
from consumer.enrich import enrich, stamp
from consumer.native import PostRows

logger = logging.getLogger(__name__)


def route(
    records: Sequence[bytes],
    now: datetime,
    deduper: Deduper,
    *,
    add: Callable[[int, Kind, dict[str, Any]], None],
    reject: Callable[[int, str], None],
    post_rows: PostRows | None = None,
    add_lines: Callable[[Kind, list[bytes], list[int]], None] | None = None,
    describe: Callable[[int], str] = "record {} of the batch".format,
) -> None:
    """Hand record `i` to `add` (its row), `add_lines` (its row as a line, from the native path: first, once per
    batch, with the records' indices) or `reject` (why it cannot be processed), or drop it as a duplicate
    (`deduper.dropped`). Never raises for one record; `describe(i)` names record `i` in the log."""
    slow: Iterable[int] = range(len(records))
    if post_rows is not None and add_lines is not None:
        try:
            keys, lines = post_rows(records, stamp(now))
        except Exception:  # a fault of the native path costs its speed for this batch, never a record
            logger.exception("the native path failed on %d records; the Python path takes them", len(records))
        else:
            fresh = deduper.admit_posts(keys)
            if fresh:
                add_lines(Kind.POST, [lines[i] for i in fresh], fresh)  # type: ignore[misc]  # a line for every key
            slow = [i for i, key in enumerate(keys) if key is None]
    for i in slow:
        try:
            envelope = Envelope.from_bytes(records[i])
            row = enrich(envelope, now)
            if deduper.admit(envelope):
                add(i, envelope.kind, row)
        except SkippableError as exc:
            reject(i, str(exc))
        except Exception as exc:  # a surprise with one record costs that record, never the rest of the batch
            logger.exception("%s could not be processed", describe(i))
            reject(i, f"could not be processed: {type(exc).__name__}: {exc}")
