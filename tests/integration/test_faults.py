"""Faults through the real KCL daemon on the local stack: a Firehose outage, and workers killed mid-stream."""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import time
from pathlib import Path

import duckdb
import pytest

from coinstream.aws import client
from consumer.runner import app_progress
from producer.kinesis_writer import KinesisWriter
from tests.conftest import make_candle, make_post
from tests.fault_proxy import fault_proxy
from tests.integration.test_consumer_apps import view_counts
from tests.kcl import caught_up, processor_pids, rss_kib, wait_for, worker
from tests.stack import coinstream, running_stack


@pytest.mark.takes(115)
def test_a_firehose_outage_keeps_memory_flat_and_loses_nothing(tmp_path: Path) -> None:
    with running_stack(tmp_path / "state") as (settings, pipeline, env):
        kinesis = client("kinesis", settings)
        writer = KinesisWriter(pipeline.stream_name, kinesis)
        with fault_proxy(str(settings.endpoint("firehose"))) as proxy:
            worker_env = {**env, "AWS_ENDPOINT_URL_FIREHOSE": proxy.url}  # only the worker's Firehose goes through it
            assert not writer.put([make_post(f"warm-{i}", minute=i % 30) for i in range(500)]).unsent
            with worker(worker_env, "warehouse", None, tmp_path / "logs") as only:
                wait_for("the first records delivered", caught_up(settings, pipeline, "warehouse"), timeout=420)
                before = {pid: rss_kib(pid) for pid in processor_pids(only)}
                checkpointed = sum(s.checkpointed for s in app_progress(settings, pipeline, "warehouse"))
                proxy.failing = True
                peak = dict(before)
                for wave in range(6):  # 60 s of outage while 3,000 more records arrive
                    assert not writer.put([make_post(f"out-{wave}-{i}", minute=i % 30) for i in range(500)]).unsent
                    for _ in range(5):
                        time.sleep(2)
                        for pid in before:
                            peak[pid] = max(peak[pid], rss_kib(pid))
                during = sum(s.checkpointed for s in app_progress(settings, pipeline, "warehouse"))
                proxy.failing = False
                wait_for("delivery after the outage", caught_up(settings, pipeline, "warehouse"), timeout=300)
        assert proxy.refused > 0  # the outage was felt
        assert during == checkpointed  # nothing was checkpointed while Firehose refused every row
        growth = {pid: peak[pid] - before[pid] for pid in before}
        assert before and all(g < 20_000 for g in growth.values()), growth  # one batch at most, not the backlog
        assert coinstream(env, "load").returncode == 0
        raw, distinct = view_counts(settings)["raw_posts"]
        assert distinct == 3500 and raw == 3500  # all of them, each once


def _malformed(n: int) -> bytes:
    """The n-th malformed record: each kind the consumer must dead-letter, never lose the shard over."""
    post = json.loads(make_post(f"bad-{n}").to_bytes())
    candle = json.loads(make_candle(n % 60).to_bytes())
    kind = n % 8
    if kind == 0:
        return f"not json {n} {{".encode()
    if kind == 1:
        return json.dumps({**post, "kind": "post_count", "payload": {"query": "q", "count": f"{n}x"}}).encode()
    if kind == 2:
        return json.dumps({**candle, "key": f"nan-{n}", "payload": {**candle["payload"], "volume": "NaN"}}).encode()
    if kind == 3:
        return json.dumps({**post, "event_time": "9999-12-31T23:59:59Z"}).encode()
    if kind == 4:
        return json.dumps({**post, "payload": {**post["payload"], "is_retweet": "false"}}).encode()
    if kind == 5:
        return json.dumps({**candle, "key": f"neg-{n}", "payload": {**candle["payload"], "volume": "-3"}}).encode()
    if kind == 6:
        return json.dumps({**candle, "key": f"wide-{n}", "payload": {**candle["payload"], "open": "9" * 40}}).encode()
    return json.dumps({**post, "payload": {**post["payload"], "surprise": n}}).encode()


@pytest.mark.takes(265)
def test_chaos_every_good_record_once_every_bad_one_dead_lettered(tmp_path: Path) -> None:
    rng = random.Random(20261129)
    waves, per_wave, bad_every = 4, 2_500, 100  # 10,000 records, 1% malformed, a worker killed in each wave
    huge = make_post("huge", text=" ".join(f"#비트코인{i} bitcoin" for i in range(30_000)))  # ~0.5 MB: fits Kinesis
    assert 400_000 < len(huge.to_bytes()) < 1_000_000
    good: set[str] = {huge.key}
    bad: set[bytes] = set()
    with running_stack(tmp_path / "state") as (settings, pipeline, env):
        kinesis = client("kinesis", settings)
        writer = KinesisWriter(pipeline.stream_name, kinesis)
        dynamodb = client("dynamodb", settings)
        logs = tmp_path / "logs"
        with worker(env, "warehouse", "steady", logs):
            wait_for(
                "the first worker to lead",
                lambda: _leader(dynamodb) == "steady",
                timeout=300,
            )
            victim = worker(env, "warehouse", "victim-0", logs)
            proc = victim.__enter__()
            for wave in range(waves):
                envelopes = [make_post(f"w{wave}-{i}", minute=i % 60) for i in range(per_wave)]
                if wave == 0:
                    envelopes.append(huge)
                raw = [_malformed(wave * per_wave + i) for i in range(0, per_wave, bad_every)]
                good.update(e.key for e in envelopes)
                bad.update(raw)
                assert not writer.put(envelopes).unsent
                for i, data in enumerate(raw):
                    kinesis.put_record(StreamName=pipeline.stream_name, Data=data, PartitionKey=f"bad-{wave}-{i}")
                time.sleep(rng.uniform(3, 25))  # a random point in the middle of consuming this wave
                os.killpg(proc.pid, signal.SIGKILL)  # the daemon and its processors, with no goodbye
                proc.wait()
                victim.__exit__(None, None, None)
                victim = worker(env, "warehouse", f"victim-{wave + 1}", logs)
                proc = victim.__enter__()
            try:
                wait_for("every record checkpointed", caught_up(settings, pipeline, "warehouse"), timeout=600)
            finally:
                victim.__exit__(None, None, None)
        assert coinstream(env, "load").returncode == 0
        db = duckdb.connect(str(settings.warehouse_path), read_only=True)
        try:
            keys = {r[0] for r in db.execute("SELECT record_key FROM posts").fetchall()}
            (copies,) = db.execute("SELECT count(*) FROM posts").fetchone()  # type: ignore[misc]
            (cut,) = db.execute("SELECT truncated FROM posts WHERE post_id = 'huge'").fetchone()  # type: ignore[misc]
        finally:
            db.close()
        assert keys == good and copies == len(good)  # every good record, exactly once in what a user reads
        assert cut is True  # the ~0.5 MB post was kept, its text cut to its column
        s3 = client("s3", settings)
        letters = [
            json.loads(line)
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=pipeline.bucket, Prefix="dead-letter/")
            for obj in page.get("Contents", [])
            for line in s3.get_object(Bucket=pipeline.bucket, Key=obj["Key"])["Body"].read().splitlines()
        ]
        assert {base64.b64decode(x["data_base64"]) for x in letters} == bad  # exactly the bad ones...
        assert all(x["reason"] for x in letters)  # ...each with its reason (a replayed one may appear twice)


def _leader(dynamodb: object) -> str | None:
    try:
        item = dynamodb.get_item(  # type: ignore[attr-defined]
            TableName="coinstream-warehouse-CoordinatorState", Key={"key": {"S": "Leader"}}
        )
        return str(item["Item"]["ownerName"]["S"])
    except Exception:
        return None
