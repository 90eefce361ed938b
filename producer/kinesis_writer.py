"""Kinesis writer: PutRecords within the service limits, resending only the entries that failed."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from coinstream.aws import classify
from coinstream.batch import group, resend_failures
from coinstream.records import Envelope

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


def batches(entries: Iterable[_Entry]) -> Iterator[list[_Entry]]:
    """Group entries into PutRecords calls of at most 500 records and 5 MiB, keeping their order."""
    return group(entries, lambda e: e.size, max_count=MAX_RECORDS_PER_CALL, max_bytes=MAX_BYTES_PER_CALL)


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
        return resend_failures(
            batch,
            lambda pending: self._send_once(pending, result),
            what=f"Kinesis PutRecords to stream {self.stream_name!r}",
            logger=logger,
            max_attempts=self.max_attempts,
            initial=self.initial_wait,
            max_wait=self.max_wait,
            sleep=self._sleep,
        )

    def _send_once(self, pending: Sequence[_Entry], result: WriteResult) -> list[str | None]:
        records: list[PutRecordsRequestEntryTypeDef] = [
            {"Data": e.data, "PartitionKey": e.partition_key} for e in pending
        ]
        result.calls += 1
        try:
            response = self.kinesis.put_records(StreamName=self.stream_name, Records=records)
        except Exception as exc:
            raise classify(exc, f"Kinesis PutRecords to stream {self.stream_name!r}") from None
        for r in response["Records"]:
            if "SequenceNumber" in r and "ShardId" in r:
                seq = int(r["SequenceNumber"])
                if seq > result.last_sequence.get(r["ShardId"], -1):
                    result.last_sequence[r["ShardId"]] = seq
        return [r.get("ErrorCode") for r in response["Records"]]
