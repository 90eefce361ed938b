"""The record processor driven through kclpy's KCLProcess, speaking the daemon's protocol in memory.

Firehose and S3 are moto's in-process backends (no network, no server): the processor's rows
really land in a bucket, and the test reads them back.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import logging
from typing import Any

import boto3
import pytest
from amazon_kclpy import kcl
from botocore.stub import Stubber
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from consumer.dead_letter import DeadLetterSink
from consumer.dedupe import Deduper
from consumer.firehose_sink import FirehoseSink, pack, pack_with
from consumer.native import post_rows
from consumer.processor import RecordProcessor
from tests.conftest import make_candle, make_post
from tests.unit.conftest import BUCKET, STREAMS


def kcl_record(data: bytes, seq: int, key: str = "pk") -> dict[str, Any]:
    return {
        "action": "record",
        "data": base64.b64encode(data).decode(),
        "partitionKey": key,
        "sequenceNumber": str(seq),
        "subSequenceNumber": 0,
        "approximateArrivalTimestamp": 1764244800000,
    }


class FakeDaemonPipe:
    """Both ends of the daemon's stdin/stdout: scripted actions in, checkpoint requests answered.

    `checkpoint_errors` maps the n-th checkpoint request (0-based) to the error the daemon answers.
    """

    def __init__(self, actions: list[dict[str, Any]], checkpoint_errors: dict[int, str] | None = None) -> None:
        self.actions = actions
        self.errors = checkpoint_errors or {}
        self.written: list[dict[str, Any]] = []
        self._answered = 0

    def write(self, text: str) -> None:
        self.written.extend(json.loads(line) for line in text.splitlines() if line.strip())

    def flush(self) -> None:
        pass

    def readline(self) -> str:
        requests = [m for m in self.written if m["action"] == "checkpoint"]
        if len(requests) > self._answered:
            request = requests[self._answered]
            error = self.errors.get(self._answered)
            self._answered += 1
            return json.dumps({**request, "error": error}) + "\n"
        return json.dumps(self.actions.pop(0)) + "\n" if self.actions else ""


def drive(
    processor: RecordProcessor,
    batches: list[list[bytes]],
    checkpoint_errors: dict[int, str] | None = None,
    end: str = "shutdownRequested",
    then: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """Feed the processor the daemon's messages; return what it wrote back (checkpoints and statuses)."""
    actions: list[dict[str, Any]] = [
        {
            "action": "initialize",
            "shardId": "shardId-000000000001",
            "sequenceNumber": "TRIM_HORIZON",
            "subSequenceNumber": 0,
        }
    ]
    seq = 100
    for batch in batches:
        records = []
        for data in batch:
            seq += 1
            records.append(kcl_record(data, seq))
        actions.append({"action": "processRecords", "records": records, "millisBehindLatest": 0})
    actions.append({"action": end})
    actions.extend({"action": a} for a in then)
    pipe = FakeDaemonPipe(actions, checkpoint_errors)
    kcl.KCLProcess(processor, input_file=pipe, output_file=pipe, error_file=io.StringIO()).run()
    return pipe.written


def landed_rows(s3: Any, prefix: str) -> list[dict[str, Any]]:
    rows = []
    for obj in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []):
        body = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
        rows.extend(json.loads(line) for line in body.splitlines())
    return rows


def make_processor(
    aws: dict[str, Any], firehose: Any = None, sleep: Any = None, *, native: bool = True
) -> RecordProcessor:
    """The warehouse application's processor; posts take the native path where it is installed, as in `consume`."""
    sink = FirehoseSink(STREAMS, firehose or aws["firehose"], sleep=lambda _: None, max_attempts=2)
    dead = DeadLetterSink(BUCKET, "dead-letter/", "warehouse", aws["s3"])
    rows = post_rows() if native else None
    return RecordProcessor(sink, dead, Deduper(capacity=1000), sleep=sleep or (lambda _: None), post_rows=rows)


def test_rows_are_delivered_by_kind_and_then_checkpointed(aws: dict[str, Any]) -> None:
    candles = [make_candle(i) for i in range(3)]
    posts = [make_post(str(i), minute=i) for i in range(4)]
    out = drive(make_processor(aws), [[e.to_bytes() for e in candles + posts]])
    checkpoints = [m for m in out if m["action"] == "checkpoint"]
    assert checkpoints[0]["sequenceNumber"] == "107"
    candle_rows = landed_rows(aws["s3"], "firehose/candle/")
    post_rows = landed_rows(aws["s3"], "firehose/post/")
    assert [r["record_key"] for r in candle_rows] == [c.key for c in candles]
    assert {r["post_id"] for r in post_rows} == {"0", "1", "2", "3"}
    assert candle_rows[0]["minute_utc"] == "2026-11-27 12:00:00.000000" and candle_rows[0]["volume"] == "1.5"
    assert [m["responseFor"] for m in out if m["action"] == "status"] == [
        "initialize",
        "processRecords",
        "shutdownRequested",
    ]


def test_duplicates_by_natural_key_are_dropped_across_batches_and_a_later_candle_replaces(aws: dict[str, Any]) -> None:
    post = make_post("7")
    refetched = replace(post, **{"fetched_at": post.fetched_at.replace(hour=20)})
    candle = make_candle(5, volume="1.0")
    corrected = replace(
        candle,
        **{
            "fetched_at": candle.fetched_at.replace(hour=14),
            "payload": replace(candle.payload, **{"volume": "2.5"}),
        },
    )
    stale = replace(
        candle,
        **{
            "fetched_at": candle.fetched_at.replace(hour=9),
            "payload": replace(candle.payload, **{"volume": "0.1"}),
        },
    )
    processor = make_processor(aws)
    drive(
        processor,
        [
            [post.to_bytes(), post.to_bytes(), candle.to_bytes()],
            [refetched.to_bytes(), corrected.to_bytes(), stale.to_bytes()],
        ],
    )
    assert [r["post_id"] for r in landed_rows(aws["s3"], "firehose/post/")] == ["7"]
    assert sorted(r["volume"] for r in landed_rows(aws["s3"], "firehose/candle/")) == ["1.0", "2.5"]
    assert processor.deduper.dropped == 3 and processor.deduper.replaced == 1


def test_poison_records_are_dead_lettered_with_reason_and_the_shard_moves_on(aws: dict[str, Any]) -> None:
    good = make_post("1")
    bad = [
        b"garbage",
        b'{"v":1,"kind":"candle"}',
        json.dumps({**json.loads(make_candle().to_bytes()), "payload": {"market": "KRW-BTC"}}).encode(),
    ]
    out = drive(make_processor(aws), [[bad[0], good.to_bytes(), bad[1], bad[2]]])
    assert any(m["action"] == "checkpoint" and m["sequenceNumber"] == "104" for m in out)
    assert [r["post_id"] for r in landed_rows(aws["s3"], "firehose/post/")] == ["1"]
    letters = landed_rows(aws["s3"], "dead-letter/warehouse/")
    assert [base64.b64decode(x["data_base64"]) for x in letters] == bad
    assert "not a coinstream v1 envelope" in letters[0]["reason"]
    assert "has no payload field 'open'" in letters[2]["reason"]
    assert {x["sequence_number"] for x in letters} == {"101", "103", "104"}


def test_while_firehose_is_down_the_call_waits_and_checkpoints_only_after_delivery(aws: dict[str, Any]) -> None:
    firehose = boto3.client("firehose", region_name="us-east-1")
    posts = [make_post(str(i)) for i in range(3)]
    waits: list[float] = []
    with Stubber(firehose) as stub:
        for _ in range(6):  # three flushes of two attempts each are refused: the processor keeps waiting
            stub.add_client_error("put_record_batch", "ServiceUnavailableException", "busy", 503)
        stub.add_response("put_record_batch", {"FailedPutCount": 0, "RequestResponses": [{"RecordId": "a"}]})
        out = drive(make_processor(aws, firehose, sleep=waits.append), [[p.to_bytes() for p in posts], []])
        stub.assert_no_pending_responses()
    checkpoints = [m for m in out if m["action"] == "checkpoint"]
    # the batch's call did not return before Firehose took its rows; then it checkpointed, once
    assert [c["sequenceNumber"] for c in checkpoints] == ["103", None]
    assert len(waits) == 3  # the processor's own waits between flushes (the sink's inner waits are not counted)
    statuses = [m["responseFor"] for m in out if m["action"] == "status"]
    assert statuses == ["initialize", "processRecords", "processRecords", "shutdownRequested"]
    assert out.index(checkpoints[0]) < out.index({"action": "status", "responseFor": "processRecords"})


def test_checkpoint_throttling_is_retried(aws: dict[str, Any]) -> None:
    out = drive(make_processor(aws), [[make_post().to_bytes()]], checkpoint_errors={0: "ThrottlingException"})
    assert [m["sequenceNumber"] for m in out if m["action"] == "checkpoint"] == ["101", "101", None]


def test_shard_end_checkpoints_at_the_end(aws: dict[str, Any]) -> None:
    out = drive(make_processor(aws), [[make_post().to_bytes()]], end="shardEnded")
    checkpoints = [m for m in out if m["action"] == "checkpoint"]
    assert checkpoints[-1]["sequenceNumber"] is None  # a bare checkpoint() at SHARD_END


def test_pack_joins_rows_up_to_the_5kb_billing_unit() -> None:
    rows = [b"x" * 999 + b"\n"] * 12
    records = list(pack(rows))
    assert [len(r) for r in records] == [5000, 5000, 2000]
    assert b"".join(records) == b"".join(rows)
    assert list(pack([b"y" * 7000 + b"\n"])) == [b"y" * 7000 + b"\n"]


@settings(max_examples=300, deadline=None)
@given(sizes=st.lists(st.integers(1, 60), max_size=40), target=st.integers(0, 200))
def test_packing_starts_a_new_record_exactly_where_the_next_row_would_pass_the_target(
    sizes: list[int], target: int
) -> None:
    rows = [b"x" * (size - 1) + b"\n" for size in sizes]
    expected: list[list[bytes]] = []  # the definition: add a row unless the record has one and would pass target
    for row in rows:
        if expected and expected[-1] and sum(map(len, expected[-1])) + len(row) <= target:
            expected[-1].append(row)
        else:
            expected.append([row])
    assert list(pack(rows, target)) == [b"".join(chunk) for chunk in expected]
    tagged = list(pack_with([(row, i) for i, row in enumerate(rows)], target))  # each record with its rows' tags
    firsts = itertools.accumulate([0, *map(len, expected)])
    assert [tags for _, tags in tagged] == [list(range(a, a + len(c))) for a, c in zip(firsts, expected, strict=False)]


def windowed(aws: dict[str, Any], seconds: float, max_bytes: int = 1_000_000) -> RecordProcessor:
    """A processor whose clock reads one second per batch of two records (what a poll a second would give)."""
    processor = make_processor(aws)
    processor.window_seconds, processor.window_bytes = seconds, max_bytes
    processor._clock = lambda: processor.seen / 2
    return processor


def test_a_trickle_is_held_for_the_window_then_sent_together_and_only_sent_records_are_checkpointed(
    aws: dict[str, Any],
) -> None:
    batches = [[make_post(f"{i}-{j}", minute=i % 60).to_bytes() for j in range(2)] for i in range(25)]
    processor = windowed(aws, seconds=10)
    out = drive(processor, batches)
    # held from batch 1 (second 1) and sent at second 11, held from second 12 and sent at 22, the rest at the stop
    assert [m["sequenceNumber"] for m in out if m["action"] == "checkpoint"] == ["122", "144", None]
    assert processor.sink.delivered_rows == 50  # type: ignore[attr-defined]
    assert len(landed_rows(aws["s3"], "firehose/post/")) == 50
    unwindowed = make_processor(aws)
    drive(unwindowed, batches)
    # ~600-byte rows: three sends of 22, 22 and 6 rows fill 5 ~5 KB records; a send per poll fills 25 small ones
    assert (processor.sink.delivered_records, unwindowed.sink.delivered_records) == (5, 25)  # type: ignore[attr-defined]


def test_the_byte_bound_ends_a_window_early(aws: dict[str, Any]) -> None:
    batches = [[make_post(f"{i}-{j}").to_bytes() for j in range(2)] for i in range(6)]
    processor = windowed(aws, seconds=60, max_bytes=len(batches[0][0]) * 4)  # two batches' worth
    out = drive(processor, batches)
    assert [m["sequenceNumber"] for m in out if m["action"] == "checkpoint"] == ["104", "108", "112", None]


def test_a_lost_lease_delivers_what_the_window_held_and_takes_no_checkpoint(aws: dict[str, Any]) -> None:
    batches = [[make_post(f"{i}").to_bytes()] for i in range(3)]
    out = drive(windowed(aws, seconds=60), batches, end="leaseLost")
    assert [m for m in out if m["action"] == "checkpoint"] == []
    assert len(landed_rows(aws["s3"], "firehose/post/")) == 3


def test_the_lease_kcl_hands_back_after_a_graceful_shutdown_is_not_reported_lost(
    aws: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="consumer.processor")
    out = drive(make_processor(aws), [[make_candle(1).to_bytes()]], then=("leaseLost",))
    assert [m["responseFor"] for m in out if m["action"] == "status"][-2:] == ["shutdownRequested", "leaseLost"]
    said = [r.getMessage() for r in caplog.records if r.name == "consumer.processor"]
    assert "shard shardId-000000000001: lease handed back after the graceful shutdown" in said
    assert not [m for m in said if "lease lost" in m]
    # without a shutdown first, a lost lease is one
    caplog.clear()
    drive(make_processor(aws), [[make_candle(2).to_bytes()]], end="leaseLost")
    assert any("lease lost after 1 records" in r.getMessage() for r in caplog.records)
