"""The Kinesis writer against botocore's Stubber: real request validation, scripted answers."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from coinstream.errors import FatalError
from producer.kinesis_writer import MAX_BYTES_PER_CALL, KinesisWriter
from tests.conftest import make_post

STREAM = "s"


def kinesis() -> Any:
    return boto3.client("kinesis", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def ok(n: int) -> dict[str, Any]:
    return {"Records": [{"SequenceNumber": str(i), "ShardId": "shardId-0"} for i in range(n)]}


def record_calls(client: Any) -> list[list[dict[str, Any]]]:
    """Wrap put_records so the test sees every call's records (after Stubber validated them)."""
    calls: list[list[dict[str, Any]]] = []
    original = client.put_records

    def spy(**kwargs: Any) -> Any:
        calls.append(kwargs["Records"])
        return original(**kwargs)

    client.put_records = spy
    return calls


def test_batches_stay_within_500_records_per_call_in_order() -> None:
    client = kinesis()
    calls = record_calls(client)
    posts = [make_post(str(i)) for i in range(1201)]
    with Stubber(client) as stub:
        for n in (500, 500, 201):
            stub.add_response("put_records", ok(n), {"StreamName": STREAM, "Records": ANY})
        result = KinesisWriter(STREAM, client).put(posts)
        stub.assert_no_pending_responses()
    assert [len(c) for c in calls] == [500, 500, 201]
    assert [r["Data"] for c in calls for r in c] == [p.to_bytes() for p in posts]
    assert result.sent == 1201 and result.calls == 3 and not result.unsent


def test_batches_stay_within_5_mib_per_call() -> None:
    big = "x" * (900 * 1024)  # ~0.9 MiB each: at most 5 fit in one call
    posts = [make_post(str(i), text=big) for i in range(12)]
    client = kinesis()
    calls = record_calls(client)
    with Stubber(client) as stub:
        for n in (5, 5, 2):
            stub.add_response("put_records", ok(n), {"StreamName": STREAM, "Records": ANY})
        result = KinesisWriter(STREAM, client).put(posts)
    assert [len(c) for c in calls] == [5, 5, 2] and result.sent == 12
    assert all(sum(len(r["Data"]) + len(r["PartitionKey"]) for r in c) <= MAX_BYTES_PER_CALL for c in calls)


def test_only_failed_entries_are_resent() -> None:
    posts = [make_post(str(i)) for i in range(4)]
    client = kinesis()
    with Stubber(client) as stub:
        stub.add_response(
            "put_records",
            {
                "FailedRecordCount": 2,
                "Records": [
                    {"SequenceNumber": "1", "ShardId": "a"},
                    {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow down"},
                    {"SequenceNumber": "2", "ShardId": "a"},
                    {"ErrorCode": "InternalFailure", "ErrorMessage": "oops"},
                ],
            },
            {"StreamName": STREAM, "Records": ANY},
        )
        resent = [{"Data": p.to_bytes(), "PartitionKey": p.partition_key} for p in (posts[1], posts[3])]
        stub.add_response("put_records", ok(2), {"StreamName": STREAM, "Records": resent})
        result = KinesisWriter(STREAM, client, sleep=lambda _: None).put(posts)
        stub.assert_no_pending_responses()
    assert result.sent == 4 and result.calls == 2 and not result.unsent


def test_gives_up_after_bounded_attempts_and_returns_what_was_not_sent() -> None:
    posts = [make_post(str(i)) for i in range(2)]
    client = kinesis()
    failing = {
        "FailedRecordCount": 1,
        "Records": [{"SequenceNumber": "1", "ShardId": "a"}, {"ErrorCode": "InternalFailure", "ErrorMessage": "x"}],
    }
    still = {"FailedRecordCount": 1, "Records": [{"ErrorCode": "InternalFailure", "ErrorMessage": "x"}]}
    with Stubber(client) as stub:
        stub.add_response("put_records", failing)
        for _ in range(2):
            stub.add_response("put_records", still)
        result = KinesisWriter(STREAM, client, max_attempts=3, sleep=lambda _: None).put(posts)
    assert result.sent == 1 and result.unsent == [posts[1]]


def test_records_over_1_mib_are_refused_not_sent() -> None:
    huge = make_post("big", text="x" * (1024 * 1024))
    client = kinesis()
    with Stubber(client) as stub:
        stub.add_response("put_records", ok(1))
        result = KinesisWriter(STREAM, client).put([huge, make_post("small")])
    assert result.sent == 1 and result.refused[0][0] == huge and "1 MiB" in result.refused[0][1]


def test_unknown_stream_is_one_fatal_line() -> None:
    client = kinesis()
    with Stubber(client) as stub:
        stub.add_client_error("put_records", "ResourceNotFoundException", "Stream nope under account 0 not found.")
        with pytest.raises(FatalError, match="nope.*pipeline.toml"):
            KinesisWriter("nope", client).put([make_post()])


def test_aggregated_records_carry_every_envelope_in_order_and_a_failed_aggregate_gives_all_of_them_back() -> None:
    from coinstream.kpl import user_records
    from tests.conftest import make_candle

    candles = [make_candle(m % 60, market="KRW-BTC" if m < 600 else "KRW-ETH") for m in range(1200)]
    posts = [make_post(str(i)) for i in range(300)]
    from producer.kinesis_writer import _Entry, aggregated

    expected = len(aggregated([_Entry((e,), e.to_bytes(), e.partition_key) for e in [*candles, *posts]]))
    client = kinesis()
    calls = record_calls(client)
    with Stubber(client) as stub:
        stub.add_response("put_records", ok(expected), {"StreamName": STREAM, "Records": ANY})
        writer = KinesisWriter(STREAM, client, aggregate=True)
        result = writer.put([*candles, *posts])
    assert result.sent == 1500 and result.unsent == [] and result.calls == 1
    records = calls[0]
    assert len(records) < 20  # 1,500 small records in a few aggregates of at most 100 KiB
    carried = [data for r in records for data in user_records(r["Data"])]
    assert carried == [e.to_bytes() for e in [*candles, *posts]]  # each once, in order, a market's together
    for r in records:  # every user record maps to the aggregate's own shard: KCL keeps them all
        assert r["ExplicitHashKey"].isdigit() and len(r["Data"]) <= 100 * 1024
    by_market = {r["PartitionKey"] for r in records if user_records(r["Data"])[0].startswith(b'{"kind":"candle"')}
    assert by_market == {candles[0].partition_key, candles[-1].partition_key}

    failing = kinesis()
    with Stubber(failing) as stub:
        stub.add_response(
            "put_records",
            {
                "FailedRecordCount": 1,
                "Records": [{"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow"}],
            },
            {"StreamName": STREAM, "Records": ANY},
        )
        result = KinesisWriter(STREAM, failing, aggregate=True, max_attempts=1).put(candles[:10])
    assert result.sent == 0 and result.unsent == candles[:10]  # spooled whole: nothing lost


def test_the_aggregation_format_is_the_reference_encoders_both_ways() -> None:
    """coinstream/kpl.py against aws-kinesis-agg (amazon's Python encoder of the KPL format)."""
    from aws_kinesis_agg.aggregator import RecordAggregator  # edits sys.path on import: tests only

    from coinstream.kpl import user_records
    from producer.kinesis_writer import _Entry, aggregated

    datas = [f'{{"n":{i},"t":"{"x" * (i % 50)}"}}'.encode() for i in range(300)]
    reference = RecordAggregator()
    for i, data in enumerate(datas):
        assert reference.add_user_record(f"key-{i % 7}", data, explicit_hash_key="12345") is None
    _, _, packed = reference.clear_and_get().get_contents()
    assert user_records(packed) == datas  # theirs, read by ours

    from aws_kinesis_agg import messages_pb2

    posts = [make_post(str(i)) for i in range(50)]
    (ours,) = aggregated([_Entry((p,), p.to_bytes(), p.partition_key) for p in posts])
    message = messages_pb2.AggregatedRecord()
    message.ParseFromString(ours.data[4:-16])  # ours, read by theirs
    assert [r.data for r in message.records] == [p.to_bytes() for p in posts]
    assert [message.partition_key_table[r.partition_key_index] for r in message.records] == [
        p.partition_key for p in posts
    ]
    assert set(message.explicit_hash_key_table) == {ours.explicit_hash_key}
    assert user_records(b"plain record") == [b"plain record"]
