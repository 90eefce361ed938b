"""The `live` application's DynamoDB table: one item per minute; the consumer writes it, the dashboard reads it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from coinstream.aws import classify

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def create(dynamodb: DynamoDBClient, table: str) -> None:
    """The live table as the local stack makes it: keyed by `pk`, on demand, items expiring at `expires_at`."""
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
    )


def minute_pk(minute_utc: str) -> str:
    """Partition key of a minute item, from an enriched row's minute_utc."""
    return "minute#" + minute_utc[:16].replace(" ", "T") + "Z"


def read_minutes(dynamodb: DynamoDBClient, table: str) -> list[dict[str, Any]]:
    """Every minute item, oldest first, as plain values: {minute, posts: {source: n}, candles: {...}}."""
    try:
        pages = dynamodb.get_paginator("scan").paginate(
            TableName=table, FilterExpression="begins_with(pk, :m)", ExpressionAttributeValues={":m": {"S": "minute#"}}
        )
        items = [i for page in pages for i in page.get("Items", [])]
    except Exception as exc:
        raise classify(exc, f"reading {table}") from None
    out = []
    for item in items:
        minute = {"minute": item["pk"]["S"].removeprefix("minute#"), "posts": {}, "candles": {}}
        for name, value in item.items():
            if name.startswith("posts#"):
                minute["posts"][name.removeprefix("posts#")] = int(value["N"])
            elif name.startswith("candle#"):
                minute["candles"][name.removeprefix("candle#")] = {k: v["S"] for k, v in value["M"].items()}
        out.append(minute)
    return sorted(out, key=lambda m: m["minute"])


def expire(dynamodb: DynamoDBClient, table: str, now: float) -> int:
    """Delete the items whose `expires_at` has passed, as DynamoDB's time to live does on AWS (moto keeps them
    for ever); how many went. `coinstream run` calls it while the live application's workers are stopped."""
    try:
        pages = dynamodb.get_paginator("scan").paginate(
            TableName=table,
            FilterExpression="expires_at < :now",
            ExpressionAttributeValues={":now": {"N": str(int(now))}},
            ProjectionExpression="pk",
        )
        keys = [{"pk": item["pk"]} for page in pages for item in page.get("Items", [])]
        for at in range(0, len(keys), 25):  # BatchWriteItem's limit
            dynamodb.batch_write_item(
                RequestItems={table: [{"DeleteRequest": {"Key": key}} for key in keys[at : at + 25]]}
            )
    except Exception as exc:
        raise classify(exc, f"expiring old items of {table}") from None
    return len(keys)
