"""Shared fixtures: no test can reach real AWS; recorded payloads and envelope factories."""

from __future__ import annotations

import os

# One BLAS thread per test process, set before anything imports numpy: `make test` runs three tests at a time on
# two cores, and OpenBLAS's threads spin while they wait (the analysis calibration ran 8x slower beside the KCL
# tests that way); alone, one thread is as fast on its small matrices (33.6 s against 34.4 s).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from coinstream.records import Envelope, Kind, candle_key, envelope, post_key

PAYLOADS = Path(__file__).parent / "payloads"

_AWS_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "COINSTREAM_REGION",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
)


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Clear real AWS credentials and config so that no test can ever reach AWS."""
    for name in _AWS_VARS:
        monkeypatch.delenv(name, raising=False)
    empty = tmp_path_factory.mktemp("aws-config") / "none"
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # boto3's default session keeps the credentials it first found: an earlier test's would leak into this one
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    for name in (
        "COINSTREAM_TARGET",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_KINESIS",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL_FIREHOSE",
    ):
        monkeypatch.delenv(name, raising=False)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest first, by `@pytest.mark.takes(seconds)`: `make test` runs the tests on parallel workers (xdist), and
    the minutes-long KCL tests overlap only if they start together; the short ones fill in around them."""
    items.sort(key=lambda item: -_takes(item))


def _takes(item: pytest.Item) -> float:
    marker = item.get_closest_marker("takes")
    return float(marker.args[0]) if marker else 0.0


def payload(relative: str) -> Any:
    """A recorded API answer from tests/payloads."""
    return json.loads((PAYLOADS / relative).read_text())


FETCHED = datetime(2026, 11, 27, 13, 0, 30, tzinfo=UTC)


def make_candle(minute: int = 0, market: str = "KRW-BTC", volume: str = "1.5", **payload: Any) -> Envelope:
    """A candle envelope for minute `minute` after 2026-11-27 12:00 UTC."""
    at = datetime(2026, 11, 27, 12, minute, tzinfo=UTC)
    body = {
        "market": market,
        "open": "100",
        "high": "110",
        "low": "90",
        "close": "105",
        "volume": volume,
        "quote_volume": "157.5",
        **payload,
    }
    return envelope(Kind.CANDLE, "coinone", candle_key("coinone", market, at), at, FETCHED, body)


def make_post(post_id: str = "1", text: str = "bitcoin!", minute: int = 0, source: str = "x") -> Envelope:
    """A post envelope."""
    at = datetime(2026, 11, 27, 12, minute, 17, tzinfo=UTC)
    payload = {"post_id": post_id, "text": text, "author_id": "9", "lang": "en"}
    return envelope(Kind.POST, source, post_key(source, post_id), at, FETCHED, payload)


@contextmanager
def moto_dynamodb_table(table: str, hash_key: str) -> Iterator[Any]:
    """moto's in-process DynamoDB with one on-demand table keyed by a string `hash_key`."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": hash_key, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": hash_key, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client
