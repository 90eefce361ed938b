"""Firehose sink: packs rows into PutRecordBatch calls and resends only the entries that failed."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from coinstream.aws import classify
from coinstream.batch import group, resend_failures
from coinstream.errors import TransientError
from coinstream.records import Kind

if TYPE_CHECKING:
    from mypy_boto3_firehose import FirehoseClient

logger = logging.getLogger(__name__)

MAX_RECORDS_PER_CALL = 500
MAX_BYTES_PER_CALL = 4 * 1024 * 1024
MAX_BYTES_PER_RECORD = 1000 * 1024
#: Firehose bills ingestion in 5 KB units: pack newline-joined rows up to just under one unit.
DEFAULT_TARGET_RECORD_BYTES = 5000


def pack(rows: list[bytes], target: int = DEFAULT_TARGET_RECORD_BYTES) -> Iterator[bytes]:
    """Join newline-terminated rows into Firehose records of about `target` bytes (a longer row goes alone)."""
    chunk: list[bytes] = []
    size = 0
    for row in rows:
        if chunk and size + len(row) > target:
            yield b"".join(chunk)
            chunk, size = [], 0
        chunk.append(row)
        size += len(row)
    if chunk:
        yield b"".join(chunk)


def calls(records: list[bytes]) -> Iterator[list[bytes]]:
    """Group records into PutRecordBatch calls of at most 500 records and 4 MiB."""
    return group(records, len, max_count=MAX_RECORDS_PER_CALL, max_bytes=MAX_BYTES_PER_CALL)


class FirehoseSink:
    """Rows in (`add`), delivered rows out (`flush`): returns only when Firehose accepted every row."""

    def __init__(
        self,
        streams_by_kind: Mapping[Kind, str],
        firehose: FirehoseClient,
        *,
        target_record_bytes: int = DEFAULT_TARGET_RECORD_BYTES,
        max_attempts: int = 10,
        max_wait: float = 20.0,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.streams_by_kind = streams_by_kind
        self.firehose = firehose
        self.target_record_bytes = target_record_bytes
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self._sleep = sleep
        self._rows: dict[Kind, list[bytes]] = {}
        self.delivered_rows = 0
        self.delivered_records = 0

    def add(self, kind: Kind, row: dict[str, Any]) -> None:
        """Queue one row for the delivery stream of its kind."""
        line = json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        self._rows.setdefault(kind, []).append(line)

    def pending_rows(self) -> int:
        """Rows added but not yet delivered."""
        return sum(len(v) for v in self._rows.values())

    def flush(self) -> int:
        """Deliver every queued row; raise TransientError if Firehose still refuses after the retries."""
        delivered = 0
        for kind in list(self._rows):
            rows = self._rows[kind]
            stream = self.streams_by_kind[kind]
            for batch in calls(list(pack(rows, self.target_record_bytes))):
                self._put(stream, batch)
                self.delivered_records += len(batch)
            delivered += len(rows)
            del self._rows[kind]
        self.delivered_rows += delivered
        return delivered

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
