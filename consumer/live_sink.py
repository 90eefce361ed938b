"""Live sink: per-minute figures in a DynamoDB table, readable within seconds by the dashboard.

The `live` consumer application writes here instead of to Firehose, so it does not wait for
Firehose buffering. Counts stay exact under replays and restarts: each post is counted in the
same transaction that records its key, and a key already recorded is not counted again.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from coinstream.aws import classify
from coinstream.errors import RefusedError
from coinstream.live_table import minute_pk
from coinstream.records import Kind
from coinstream.retry import retrying
from consumer.dead_letter import Origin

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)

#: A transaction holds at most 100 items: up to 99 post keys and the minute's counter.
_KEYS_PER_TRANSACTION = 99


class LiveMetricsSink:
    """Rows in (`add`); per-minute post counts per source and candle figures out (`flush`)."""

    def __init__(self, table: str, dynamodb: DynamoDBClient, *, ttl_days: int = 8, max_attempts: int = 8) -> None:
        self.table = table
        self.dynamodb = dynamodb
        self.ttl_days = ttl_days
        self.max_attempts = max_attempts
        self._posts: dict[tuple[str, str], list[tuple[str, Origin | None]]] = defaultdict(list)
        self._candles: list[tuple[dict[str, Any], Origin | None]] = []
        self.written = 0

    def add(self, kind: Kind, row: dict[str, Any], origin: Origin | None = None) -> None:
        """Queue one enriched row (with the stream record it came from, to dead-letter it if it is refused)."""
        if kind == Kind.POST:
            self._posts[(row["minute_utc"], row["source"])].append((row["record_key"], origin))
        elif kind == Kind.CANDLE:
            self._candles.append((row, origin))

    def summary(self) -> str:
        """What this sink wrote, as the processor's last log line says it."""
        return f"{self.written} rows written to {self.table}"

    def pending_rows(self) -> int:
        """Rows added but not yet written."""
        return sum(len(v) for v in self._posts.values()) + len(self._candles)

    def flush(self) -> list[tuple[Origin, str]]:
        """Write everything queued; returns the rows DynamoDB refused for good (with why); raises
        TransientError if DynamoDB keeps failing (what was not written stays queued)."""
        refused: list[tuple[Origin | None, str]] = []
        expires = str(int((datetime.now(UTC) + timedelta(days=self.ttl_days)).timestamp()))
        for (minute_utc, source), keys in list(self._posts.items()):
            while keys:
                chunk = keys[:_KEYS_PER_TRANSACTION]
                try:
                    for attempt in retrying(logger, max_attempts=self.max_attempts):
                        with attempt:
                            self._count_posts(minute_pk(minute_utc), source, [k for k, _ in chunk], expires)
                    self.written += len(chunk)
                except RefusedError as exc:
                    refused.extend((origin, str(exc)) for _, origin in chunk)
                del keys[: len(chunk)]
            del self._posts[(minute_utc, source)]
        while self._candles:
            row, origin = self._candles[0]
            try:
                for attempt in retrying(logger, max_attempts=self.max_attempts):
                    with attempt:
                        self._set_candle(row, expires)
                self.written += 1
            except RefusedError as exc:
                refused.append((origin, str(exc)))
            self._candles.pop(0)
        return [(origin, reason) for origin, reason in refused if origin is not None]

    def _count_posts(self, pk: str, source: str, keys: list[str], expires: str) -> None:
        pending = list(keys)
        while pending:
            items: list[Any] = [
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": {"pk": {"S": "seen#" + k}, "expires_at": {"N": expires}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
                for k in pending
            ]
            items.append(
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": {"pk": {"S": pk}},
                        "UpdateExpression": "ADD #posts :n SET updated_at = :now, expires_at = :exp",
                        "ExpressionAttributeNames": {"#posts": f"posts#{source}"},
                        "ExpressionAttributeValues": {
                            ":n": {"N": str(len(pending))},
                            ":exp": {"N": expires},
                            ":now": {"S": datetime.now(UTC).isoformat()},
                        },
                    }
                }
            )
            try:
                self.dynamodb.transact_write_items(TransactItems=items)
                return
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                    raise classify(exc, f"counting posts in {self.table}") from None
                reasons = exc.response.get("CancellationReasons", [])
                seen = {i for i, r in enumerate(reasons[: len(pending)]) if r.get("Code") == "ConditionalCheckFailed"}
                if not seen:
                    raise classify(exc, f"counting posts in {self.table}") from None
                pending = [k for i, k in enumerate(pending) if i not in seen]  # already counted: a replay
            except Exception as exc:
                raise classify(exc, f"counting posts in {self.table}") from None

    def _set_candle(self, row: dict[str, Any], expires: str) -> None:
        figures = {f: {"S": str(row[f])} for f in ("open", "high", "low", "close", "volume", "fetched_at")}
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key={"pk": {"S": minute_pk(row["minute_utc"])}},
                UpdateExpression="SET #c = :m, updated_at = :now, expires_at = :exp",
                ConditionExpression="attribute_not_exists(#c) OR #c.#f < :f",
                ExpressionAttributeNames={"#c": f"candle#{row['exchange']}#{row['market']}", "#f": "fetched_at"},
                ExpressionAttributeValues={
                    ":m": {"M": figures},
                    ":f": {"S": str(row["fetched_at"])},
                    ":now": {"S": datetime.now(UTC).isoformat()},
                    ":exp": {"N": expires},
                },
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return  # a later copy of this minute is already there
            raise classify(exc, f"writing a candle to {self.table}") from None
        except Exception as exc:
            raise classify(exc, f"writing a candle to {self.table}") from None
