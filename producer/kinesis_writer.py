"""Kinesis writer: PutRecords within the service limits, resending only the entries that failed."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tenacity import RetryError

from coinstream.aws import classify
from coinstream.errors import TransientError
from coinstream.records import Envelope
from coinstream.retry import retrying

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient
    from mypy_boto3_kinesis.type_defs import PutRecordsRequestEntryTypeDef

logger = logging.getLogger(__name__)

MAX_RECORDS_PER_CALL = 500
MAX_BYTES_PER_CALL = 5 * 1024 * 1024
#: A record's data plus its partition key may not exceed 1 MiB.
MAX_BYTES_PER_RECORD = 1024 * 1024


@dataclass
class WriteResult:
    """What one `put` did: how many went out, which could not be sent, which were refused."""

    sent: int = 0
    unsent: list[Envelope] = field(default_factory=list)
    refused: list[tuple[Envelope, str]] = field(default_factory=list)
    calls: int = 0
    #: shard id -> highest sequence number written there (a consumer that checkpointed it has read it all)
    last_sequence: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Entry:
    envelope: Envelope
    data: bytes
    partition_key: str

    @property
    def size(self) -> int:
        return len(self.data) + len(self.partition_key.encode())


class _PartialFailure(TransientError):
    def __init__(self, pending: list[_Entry], reason: str) -> None:
        super().__init__(reason)
        self.pending = pending


def batches(entries: Iterable[_Entry]) -> Iterator[list[_Entry]]:
    """Group entries into PutRecords calls of at most 500 records and 5 MiB, keeping their order."""
    batch: list[_Entry] = []
    size = 0
    for entry in entries:
        if batch and (len(batch) == MAX_RECORDS_PER_CALL or size + entry.size > MAX_BYTES_PER_CALL):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += entry.size
    if batch:
        yield batch


class KinesisWriter:
    """Puts envelopes on one Kinesis stream; see `put`."""

    def __init__(
        self,
        stream_name: str,
        kinesis: KinesisClient,
        *,
        max_attempts: int = 8,
        initial_wait: float = 0.1,
        max_wait: float = 5.0,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.stream_name = stream_name
        self.kinesis = kinesis
        self.max_attempts = max_attempts
        self.initial_wait = initial_wait
        self.max_wait = max_wait
        self._sleep = sleep

    def put(self, envelopes: Iterable[Envelope]) -> WriteResult:
        """Send every envelope; return what was sent, what still failed after the retries, what was refused.

        A batch whose entries partly fail (PutRecords answers 200 with FailedRecordCount > 0) is
        resent with only the failed entries, with exponential backoff and jitter, up to
        `max_attempts`. Records too large for Kinesis are refused, never sent.
        """
        result = WriteResult()
        entries = []
        for envelope in envelopes:
            entry = _Entry(envelope, envelope.to_bytes(), envelope.partition_key)
            if entry.size > MAX_BYTES_PER_RECORD:
                result.refused.append((envelope, f"{entry.size} bytes is over the 1 MiB Kinesis record limit"))
                continue
            entries.append(entry)
        for batch in batches(entries):
            unsent = self._send_with_retries(batch, result)
            result.sent += len(batch) - len(unsent)
            result.unsent.extend(e.envelope for e in unsent)
        return result

    def _send_with_retries(self, batch: list[_Entry], result: WriteResult) -> list[_Entry]:
        pending = batch
        policy = retrying(
            logger,
            max_attempts=self.max_attempts,
            initial=self.initial_wait,
            max_wait=self.max_wait,
            sleep=self._sleep,
            reraise=False,
        )
        try:
            for attempt in policy:
                with attempt:
                    try:
                        pending = self._send_once(pending, result)
                    except _PartialFailure as exc:
                        pending = exc.pending
                        raise
        except RetryError as exc:
            logger.error(
                "gave up on %d of %d records after %d attempts: %s",
                len(pending),
                len(batch),
                self.max_attempts,
                exc.last_attempt.exception(),
            )
            return pending
        return []

    def _send_once(self, pending: Sequence[_Entry], result: WriteResult) -> list[_Entry]:
        records: list[PutRecordsRequestEntryTypeDef] = [
            {"Data": e.data, "PartitionKey": e.partition_key} for e in pending
        ]
        result.calls += 1
        try:
            response = self.kinesis.put_records(StreamName=self.stream_name, Records=records)
        except Exception as exc:
            error = classify(exc, f"Kinesis PutRecords to stream {self.stream_name!r}")
            if isinstance(error, TransientError):
                raise _PartialFailure(list(pending), str(error)) from None
            raise error from None
        for r in response["Records"]:
            if "SequenceNumber" in r and "ShardId" in r:
                seq = int(r["SequenceNumber"])
                if seq > result.last_sequence.get(r["ShardId"], -1):
                    result.last_sequence[r["ShardId"]] = seq
        if not response.get("FailedRecordCount"):
            return []
        failed = [e for e, r in zip(pending, response["Records"], strict=True) if r.get("ErrorCode")]
        codes = sorted({str(r.get("ErrorCode")) for r in response["Records"] if r.get("ErrorCode")})
        raise _PartialFailure(failed, f"{len(failed)} of {len(pending)} records failed ({', '.join(codes)})")
