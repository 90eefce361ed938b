"""Firehose sink: packs rows into ~5 KB records, sends them in PutRecordBatch calls, resends only failed entries.

For an Iceberg destination (`shape`) each row is a record of its own, shaped as the table's columns.

Every row travels with the stream record it came from (its `Origin`), so a row Firehose refuses for
good (too large, invalid) is handed back with the service's reason and that record is dead-lettered,
while the rest of the batch is delivered.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import accumulate
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from coinstream.aws import classify
from coinstream.batch import group, resend_failures
from coinstream.errors import RefusedError, TransientError
from coinstream.records import Kind
from consumer.dead_letter import Origin

if TYPE_CHECKING:
    from mypy_boto3_firehose import FirehoseClient

logger = logging.getLogger(__name__)

MAX_RECORDS_PER_CALL = 500
MAX_BYTES_PER_CALL = 4 * 1024 * 1024
MAX_BYTES_PER_RECORD = 1000 * 1024
#: Firehose bills ingestion in 5 KB units: pack newline-joined rows up to just under one unit.
DEFAULT_TARGET_RECORD_BYTES = 5000
#: Firehose's billing increment: every record is rounded up to a multiple of 5 KB.
BILLING_UNIT_BYTES = 5120

T = TypeVar("T")


def _runs(lines: Sequence[bytes], target: int) -> Iterator[tuple[int, int]]:
    """(start, stop) of each record: the longest run of rows from `start` within `target` bytes (one at least)."""
    ends = list(accumulate(map(len, lines)))  # ends[k]: the bytes of rows 0..k
    start, before = 0, 0
    while start < len(lines):
        stop = max(start + 1, bisect_right(ends, before + target, lo=start))
        yield start, stop
        start, before = stop, ends[stop - 1]


def pack_with(rows: Sequence[tuple[bytes, T]], target: int) -> Iterator[tuple[bytes, list[T]]]:
    """Join newline-terminated rows into records of about `target` bytes, in order, each with what its rows carry."""
    lines = [row for row, _ in rows]
    for start, stop in _runs(lines, target):
        yield b"".join(lines[start:stop]), [tag for _, tag in rows[start:stop]]


def pack(rows: list[bytes], target: int = DEFAULT_TARGET_RECORD_BYTES) -> Iterator[bytes]:
    """Join newline-terminated rows into Firehose records of about `target` bytes (a longer row goes alone)."""
    return (b"".join(rows[start:stop]) for start, stop in _runs(rows, target))


def calls(records: list[bytes]) -> Iterator[list[bytes]]:
    """Group records into PutRecordBatch calls of at most 500 records and 4 MiB."""
    return group(records, len, max_count=MAX_RECORDS_PER_CALL, max_bytes=MAX_BYTES_PER_CALL)


def billed_units(record: bytes) -> int:
    """Firehose ingestion units a record is billed as (at least one)."""
    return max(1, -(-len(record) // BILLING_UNIT_BYTES))


def row_line(row: dict[str, Any]) -> bytes:
    """One row as the line COPY reads: compact JSON, UTF-8, newline-terminated."""
    return orjson.dumps(row) + b"\n"


class FirehoseSink:
    """Rows in (`add`), delivered rows out (`flush`). Rows leave the queue only once Firehose took them."""

    def __init__(
        self,
        streams_by_kind: Mapping[Kind, str],
        firehose: FirehoseClient,
        *,
        target_record_bytes: int = DEFAULT_TARGET_RECORD_BYTES,
        shape: Callable[[Kind, dict[str, Any]], dict[str, Any]] | None = None,
        max_attempts: int = 10,
        max_wait: float = 20.0,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.streams_by_kind = streams_by_kind
        self.firehose = firehose
        # an Iceberg destination takes one JSON object per record, keys named as the table's columns
        self.shape = shape
        self.target_record_bytes = 0 if shape is not None else target_record_bytes
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self._sleep = sleep
        self._rows: dict[Kind, list[tuple[bytes, Origin]]] = {}
        self.delivered_rows = 0
        self.delivered_records = 0
        self.billed_units = 0

    def add(self, kind: Kind, row: dict[str, Any], origin: Origin) -> None:
        """Queue one row for the delivery stream of its kind; a row Firehose could never take is refused now."""
        line = row_line(row) if self.shape is None else orjson.dumps(self.shape(kind, row))
        if len(line) > MAX_BYTES_PER_RECORD:
            raise RefusedError(f"its row is {len(line):,} bytes, over Firehose's 1,000 KiB record limit")
        self._rows.setdefault(kind, []).append((line, origin))

    def add_lines(self, kind: Kind, lines: list[bytes], origins: Iterable[Origin]) -> None:
        """Queue rows already written as their lines (the native path's posts). No size check: such a line is
        under 400 KB (a text of at most 64 KiB, six bytes for each escaped byte), far under the record limit."""
        self._rows.setdefault(kind, []).extend(zip(lines, origins, strict=True))

    def pending_rows(self) -> int:
        """Rows added but not yet delivered."""
        return sum(len(v) for v in self._rows.values())

    def summary(self) -> str:
        """What this sink delivered, as the processor's last log line says it."""
        return (
            f"{self.delivered_rows} rows in {self.delivered_records} Firehose records "
            f"({self.billed_units} billed 5 KB units)"
        )

    def flush(self) -> list[tuple[Origin, str]]:
        """Deliver every queued row. Returns the rows Firehose refused for good (with why); raises
        TransientError while Firehose is unreachable (the undelivered rows stay queued, nothing twice)."""
        refused: list[tuple[Origin, str]] = []
        for kind in list(self._rows):
            queue = self._rows[kind]
            stream = self.streams_by_kind.get(kind)
            if stream is None:
                refused.extend((origin, f"no delivery stream for record kind {kind.value!r}") for _, origin in queue)
                del self._rows[kind]
                continue
            packed = list(pack_with(queue, self.target_record_bytes))
            for call in group(
                packed, lambda p: len(p[0]), max_count=MAX_RECORDS_PER_CALL, max_bytes=MAX_BYTES_PER_CALL
            ):
                try:
                    self._put(stream, [record for record, _ in call])
                except RefusedError:
                    refused.extend(self._isolate(stream, call))
                rows = sum(len(origins) for _, origins in call)
                del queue[:rows]  # pack and group keep the order: this call carried the queue's first rows
                self.delivered_rows += rows
                self.delivered_records += len(call)
                self.billed_units += sum(billed_units(record) for record, _ in call)
            del self._rows[kind]
        self.delivered_rows -= len(refused)
        return refused

    def _isolate(self, stream: str, call: list[tuple[bytes, list[Origin]]]) -> list[tuple[Origin, str]]:
        """A call was refused: send its records one by one, then a refused record's rows one by one."""
        refused: list[tuple[Origin, str]] = []
        for record, origins in call:
            try:
                self._put(stream, [record])
                continue
            except RefusedError as exc:
                if len(origins) == 1:
                    refused.append((origins[0], str(exc)))
                    continue
            for line in record.splitlines(keepends=True):
                origin = origins.pop(0)
                try:
                    self._put(stream, [line])
                except RefusedError as exc:
                    refused.append((origin, str(exc)))
        return refused

    def _put(self, stream: str, batch: list[bytes]) -> None:
        def send(pending: Sequence[bytes]) -> list[str | None]:
            try:
                response = self.firehose.put_record_batch(
                    DeliveryStreamName=stream, Records=[{"Data": r} for r in pending]
                )
            except Exception as exc:
                raise classify(exc, f"Firehose PutRecordBatch to {stream!r}") from None
            return [res.get("ErrorCode") for res in response["RequestResponses"]]

        what = f"Firehose PutRecordBatch to {stream!r}"
        unsent = resend_failures(
            batch,
            send,
            what=what,
            logger=logger,
            max_attempts=self.max_attempts,
            max_wait=self.max_wait,
            sleep=self._sleep,
        )
        if unsent:
            raise TransientError(f"{what}: {len(unsent)} of {len(batch)} records still failing after the retries")
