"""Kinesis writer: PutRecords within the service limits, resending only the entries that failed."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from coinstream import kpl
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
    #: the envelopes the record carries: one, or several in the KPL aggregation format
    envelopes: tuple[Envelope, ...]
    data: bytes
    partition_key: str
    explicit_hash_key: str | None = None

    @property
    def size(self) -> int:
        return len(self.data) + len(self.partition_key.encode())


#: An aggregated record's size: well under the 1 MiB record limit, a few of Kinesis' 25 KB PUT payload units.
AGGREGATE_BYTES = 100 * 1024


def aggregated(entries: list[_Entry], max_bytes: int = AGGREGATE_BYTES) -> list[_Entry]:
    """The entries packed into KPL aggregated records (the format KCL takes apart again for the processor).

    Candles of one market stay together (their partition key puts them on one shard, in order); other records
    are packed as they come. Every user record of an aggregate carries the aggregate's explicit hash key, so
    KCL, which drops a user record whose hash lies outside its shard's range (the format's resharding caveat),
    keeps them all, before and after a reshard.
    """
    groups: dict[str, list[_Entry]] = {}
    out: list[_Entry] = []
    for entry in entries:
        if entry.size > max_bytes // 2:  # a record this large gains nothing from company: it goes as it is
            out.append(entry)
            continue
        candle = entry.envelopes[0].kind.value == "candle"
        groups.setdefault(entry.partition_key if candle else "", []).append(entry)
    for members in groups.values():
        hash_key = _hash_key(members[0].partition_key)
        start = 0
        while start < len(members):
            keys: dict[str, int] = {}
            parts = [kpl.key_field(2, hash_key)]
            size = len(kpl.MAGIC) + 16 + len(parts[0])
            end = start
            while end < len(members):
                entry = members[end]
                new_key = entry.partition_key not in keys
                key_part = kpl.key_field(1, entry.partition_key) if new_key else b""
                record = kpl.record_field(keys.get(entry.partition_key, len(keys)), 0, entry.data)
                if end > start and size + len(key_part) + len(record) > max_bytes:
                    break
                if new_key:
                    keys[entry.partition_key] = len(keys)
                    parts.insert(len(keys) - 1, key_part)  # the key table comes first in the message
                parts.append(record)
                size += len(key_part) + len(record)
                end += 1
            chunk = members[start:end]
            envelopes = tuple(e.envelopes[0] for e in chunk)
            out.append(_Entry(envelopes, kpl.aggregate(b"".join(parts)), chunk[0].partition_key, hash_key))
            start = end
    return out


def _hash_key(partition_key: str) -> str:
    """The hash key Kinesis gives a partition key (the MD5 of it, as a decimal 128-bit integer)."""
    return str(int.from_bytes(hashlib.md5(partition_key.encode(), usedforsecurity=False).digest(), "big"))


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
        aggregate: bool = False,
    ) -> None:
        self.stream_name = stream_name
        self.kinesis = kinesis
        #: pack records in the KPL aggregation format (backfill: thousands of small records a second would
        #: otherwise meet a shard's 1,000 records a second long before its 1 MiB)
        self.aggregate = aggregate
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
            entry = _Entry((envelope,), envelope.to_bytes(), envelope.partition_key)
            if entry.size > MAX_BYTES_PER_RECORD:
                result.refused.append((envelope, f"{entry.size} bytes is over the 1 MiB Kinesis record limit"))
                continue
            entries.append(entry)
        if self.aggregate:
            entries = aggregated(entries)
        for batch in batches(entries):
            unsent = self._send_with_retries(batch, result)
            result.sent += sum(len(e.envelopes) for e in batch) - sum(len(e.envelopes) for e in unsent)
            result.unsent.extend(envelope for e in unsent for envelope in e.envelopes)
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
        records: list[PutRecordsRequestEntryTypeDef] = []
        for e in pending:
            record: PutRecordsRequestEntryTypeDef = {"Data": e.data, "PartitionKey": e.partition_key}
            if e.explicit_hash_key:
                record["ExplicitHashKey"] = e.explicit_hash_key
            records.append(record)
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
