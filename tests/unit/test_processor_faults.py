"""Nothing lost, nothing stuck: every record ends delivered, dropped as a duplicate or dead-lettered with a
reason, through the real kclpy protocol loop (moto's in-process Firehose and S3)."""

from __future__ import annotations

import base64
import json
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from consumer import route as route_module
from consumer.dead_letter import DeadLetterSink
from consumer.dedupe import Deduper
from consumer.firehose_sink import FirehoseSink
from consumer.processor import RecordProcessor
from tests.conftest import make_post
from tests.unit.conftest import BUCKET, STREAMS
from tests.unit.test_processor import drive, landed_rows, make_processor


def _raw_post(**payload: Any) -> bytes:
    body = json.loads(make_post("9").to_bytes())
    body["payload"] = {**body["payload"], **payload}
    return json.dumps(body).encode()


def test_any_failure_with_one_record_dead_letters_it_and_the_batch_goes_on(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_enrich = route_module.enrich

    def flaky(envelope: Any, now: Any) -> dict[str, Any]:
        if envelope.post.post_id == "2":
            raise OverflowError("date value out of range")  # what a year-9999 time did to the KST helper
        return real_enrich(envelope, now)

    monkeypatch.setattr(route_module, "enrich", flaky)
    posts = [make_post(str(i)).to_bytes() for i in range(5)]
    out = drive(make_processor(aws, native=False), [posts])
    assert [m["sequenceNumber"] for m in out if m["action"] == "checkpoint"] == ["105", None]
    assert sorted(r["post_id"] for r in landed_rows(aws["s3"], "firehose/post/")) == ["0", "1", "3", "4"]
    (letter,) = landed_rows(aws["s3"], "dead-letter/warehouse/")
    assert letter["sequence_number"] == "103" and base64.b64decode(letter["data_base64"]) == posts[2]
    assert letter["reason"] == "could not be processed: OverflowError: date value out of range"


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        ({"is_retweet": "false"}, "is_retweet"),
        ({"post_id": 12}, "post_id"),
        ({"lang": "x" * 17}, "lang"),
    ],
)
def test_payloads_outside_the_contract_are_dead_lettered_naming_the_field(
    aws: dict[str, Any], payload: dict[str, Any], why: str
) -> None:
    out = drive(make_processor(aws), [[_raw_post(**payload), make_post("1").to_bytes()]])
    assert [m["sequenceNumber"] for m in out if m["action"] == "checkpoint"] == ["102", None]
    (letter,) = landed_rows(aws["s3"], "dead-letter/warehouse/")
    assert f"payload.{why}" in letter["reason"]


def test_a_row_firehose_refuses_for_good_is_dead_lettered_with_its_error_and_the_rest_delivered(
    aws: dict[str, Any],
) -> None:
    firehose = boto3.client("firehose", region_name="us-east-1")
    posts = [make_post(str(i)).to_bytes() for i in range(3)]
    refused = {"Error": {"Code": "InvalidArgumentException", "Message": "Record size exceeds 1000 KiB"}}
    ok = {"FailedPutCount": 0, "RequestResponses": [{"RecordId": "a"}]}
    with Stubber(firehose) as stub:
        stub.add_client_error("put_record_batch", "InvalidArgumentException", refused["Error"]["Message"], 400)
        stub.add_client_error("put_record_batch", "InvalidArgumentException", refused["Error"]["Message"], 400)
        stub.add_response("put_record_batch", ok)  # the packed record's rows one by one: 0 is taken
        stub.add_client_error("put_record_batch", "InvalidArgumentException", refused["Error"]["Message"], 400)
        stub.add_response("put_record_batch", ok)  # ... 2 is taken
        out = drive(make_processor(aws, firehose), [posts])
        stub.assert_no_pending_responses()
    assert [m["sequenceNumber"] for m in out if m["action"] == "checkpoint"] == ["103", None]
    (letter,) = landed_rows(aws["s3"], "dead-letter/warehouse/")
    assert letter["sequence_number"] == "102" and base64.b64decode(letter["data_base64"]) == posts[1]
    assert letter["reason"].startswith("refused by the delivery stream: Firehose PutRecordBatch to 'fh-posts': ")
    assert "InvalidArgumentException" in letter["reason"]


def test_a_row_over_firehoses_record_limit_never_reaches_it(aws: dict[str, Any]) -> None:
    sink = FirehoseSink(STREAMS, aws["firehose"])  # type: ignore[arg-type]
    with pytest.raises(Exception, match="over Firehose's 1,000 KiB record limit"):
        sink.add("post", {"text": "x" * 1_100_000}, None)  # type: ignore[arg-type]
    assert sink.pending_rows() == 0


def test_an_unrecoverable_delivery_error_exits_non_zero_without_a_checkpoint(aws: dict[str, Any]) -> None:
    sink = FirehoseSink({"post": "no-such-stream"}, aws["firehose"], sleep=lambda _: None)  # type: ignore[dict-item]
    dead = DeadLetterSink(BUCKET, "dead-letter/", "warehouse", aws["s3"])
    with pytest.raises(SystemExit) as exited:
        drive(RecordProcessor(sink, dead, Deduper(), sleep=lambda _: None), [[make_post("1").to_bytes()]])
    assert exited.value.code == 1
