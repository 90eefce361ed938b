"""Dead letters: records the consumer cannot process go to S3 with the reason and their original bytes."""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import orjson

from coinstream.aws import classify
from coinstream.retry import retrying

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Origin:
    """A stream record as it arrived, kept beside its row so it can be dead-lettered if the row is refused."""

    sequence_number: str
    partition_key: str
    data: bytes


class DeadLetterSink:
    """Collects failed records (`add`) and writes them as one JSON-lines object per `flush`."""

    def __init__(self, bucket: str, prefix: str, app_name: str, s3: S3Client, max_attempts: int = 8) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.app_name = app_name
        self.s3 = s3
        self.max_attempts = max_attempts
        self._lines: list[bytes] = []
        self._first: tuple[str, str] | None = None
        self.written = 0

    def add(self, shard_id: str, sequence_number: str, partition_key: str, data: bytes, reason: str) -> None:
        """Queue one record that could not be processed."""
        if self._first is None:
            self._first = (shard_id, sequence_number)
        entry = {
            "reason": reason,
            "app": self.app_name,
            "shard_id": shard_id,
            "sequence_number": sequence_number,
            "partition_key": partition_key,
            "failed_at": datetime.now(UTC).isoformat(),
            "data_base64": base64.b64encode(data).decode(),
        }
        self._lines.append(orjson.dumps(entry) + b"\n")

    def add_origin(self, shard_id: str, origin: Origin, reason: str) -> None:
        """Queue the record a refused row came from."""
        self.add(shard_id, origin.sequence_number, origin.partition_key, origin.data, reason)

    def flush(self) -> int:
        """Write the queued records to S3; raises TransientError if S3 keeps refusing."""
        if not self._lines or self._first is None:
            return 0
        shard_id, seq = self._first
        key = f"{self.prefix}{self.app_name}/{datetime.now(UTC):%Y/%m/%d/%H}/{shard_id}-{seq}.jsonl"
        body = b"".join(self._lines)
        for attempt in retrying(logger, max_attempts=self.max_attempts):
            with attempt:
                try:
                    self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
                except Exception as exc:
                    raise classify(exc, f"writing dead letters to s3://{self.bucket}/{key}") from None
        count = len(self._lines)
        logger.warning("dead-lettered %d records to s3://%s/%s", count, self.bucket, key)
        self.written += count
        self._lines, self._first = [], None
        return count
