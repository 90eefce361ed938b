"""Batch calls to AWS: group within a call's limits, and resend only the entries a call failed.

PutRecords (Kinesis) and PutRecordBatch (Firehose) both answer 200 while failing some entries; both
take at most 500 entries and a byte limit per call. The producer's Kinesis writer and the consumer's
Firehose sink share this one implementation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

from tenacity import RetryError

from coinstream.errors import TransientError
from coinstream.retry import retrying

T = TypeVar("T")


def group(items: Iterable[T], size_of: Callable[[T], int], *, max_count: int, max_bytes: int) -> Iterator[list[T]]:
    """Items in order, in groups of at most `max_count` items and `max_bytes` (a larger item goes alone)."""
    batch: list[T] = []
    size = 0
    for item in items:
        item_size = size_of(item)
        if batch and (len(batch) == max_count or size + item_size > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item_size
    if batch:
        yield batch


def resend_failures(
    batch: Sequence[T],
    send: Callable[[Sequence[T]], Sequence[str | None]],
    *,
    what: str,
    logger: logging.Logger,
    max_attempts: int,
    initial: float = 0.2,
    max_wait: float = 10.0,
    sleep: Callable[[float], None] | None = None,
) -> list[T]:
    """Send `batch`; resend only the entries that failed, with backoff; return those still failing at the end.

    `send(entries)` makes one call and returns each entry's error code (None: accepted). It raises
    TransientError when the whole call failed in a way worth retrying (everything is resent), or any
    other CoinstreamError to stop (raised to the caller).
    """
    pending: list[T] = list(batch)

    def once() -> None:
        nonlocal pending
        codes = send(pending)  # a TransientError here resends everything pending
        failed = [entry for entry, code in zip(pending, codes, strict=True) if code]
        if failed:
            named = sorted({code for code in codes if code})
            message = f"{what}: {len(failed)} of {len(pending)} entries failed ({', '.join(named)})"
            pending = failed
            raise TransientError(message)
        pending = []

    policy = retrying(logger, max_attempts=max_attempts, initial=initial, max_wait=max_wait, sleep=sleep, reraise=False)
    try:
        for attempt in policy:
            with attempt:
                once()
    except RetryError as exc:
        logger.error(
            "%s: gave up on %d of %d entries after %d attempts: %s",
            what,
            len(pending),
            len(batch),
            max_attempts,
            exc.last_attempt.exception(),
        )
    return pending
