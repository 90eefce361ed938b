"""Consumer applications through the real KCL daemon on the local stack.

Scale-out and failover, replay, two applications on one stream, poison records. Each test starts
its own stack on free ports; KCL 3 needs a minute or two to elect a leader and assign leases.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from coinstream.aws import client
from coinstream.config import Pipeline, Settings
from consumer.checkpoints import leases
from producer.kinesis_writer import KinesisWriter
from tests.conftest import make_candle, make_post
from tests.kcl import caught_up, wait_for, worker
from tests.stack import coinstream, running_stack

POISON = [b"not json at all", b'{"v": 1, "kind": "candle"}']


def put(settings: Settings, pipeline: Pipeline, envelopes: list, raw: list[bytes] = ()) -> None:  # type: ignore[assignment]
    kinesis = client("kinesis", settings)
    assert not KinesisWriter(pipeline.stream_name, kinesis).put(envelopes).unsent
    for i, data in enumerate(raw):
        kinesis.put_record(StreamName=pipeline.stream_name, Data=data, PartitionKey=f"poison-{i}")


def leader_of(dynamodb: object, table: str) -> str:
    item = dynamodb.get_item(TableName=f"{table}-CoordinatorState", Key={"key": {"S": "Leader"}})  # type: ignore[attr-defined]
    return str(item["Item"]["ownerName"]["S"])


def view_counts(settings: Settings) -> dict[str, tuple[int, int]]:
    db = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        return {
            name: db.execute(f"SELECT count(*), count(DISTINCT record_key) FROM {name}").fetchone()  # type: ignore[misc]
            for name in ("raw_posts", "posts", "raw_candles", "candles")
        }
    finally:
        db.close()


@pytest.mark.takes(240)
def test_workers_share_shards_survive_a_kill_and_a_forced_replay(tmp_path: Path) -> None:
    with running_stack(tmp_path / "state") as (settings, pipeline, env):
        dynamodb = client("dynamodb", settings)
        table = "coinstream-warehouse"
        posts = [make_post(str(i), minute=i % 30) for i in range(150)]
        candles = [make_candle(i) for i in range(30)]
        put(settings, pipeline, posts[:60] + candles, POISON)
        with (
            worker(env, "warehouse", "w1", tmp_path / "logs") as w1,
            worker(env, "warehouse", "w2", tmp_path / "logs") as w2,
        ):
            workers = {"w1": w1, "w2": w2}
            wait_for(
                "both workers to hold a lease",
                lambda: {lease.owner for lease in leases(dynamodb, table)} == {"w1", "w2"},
            )
            # the worst case: kill the leader, mid-stream (it may have rows in flight)
            leader = leader_of(dynamodb, table)
            survivor = "w2" if leader == "w1" else "w1"
            put(settings, pipeline, posts[60:])
            os.killpg(workers[leader].pid, signal.SIGKILL)
            workers[leader].wait()
            wait_for(
                f"{survivor} to take over {leader}'s shard and catch up",
                lambda: (
                    caught_up(settings, pipeline, "warehouse")()
                    and {lease.owner for lease in leases(dynamodb, table)} == {survivor}
                ),
                timeout=480,
            )

            refused = coinstream(env, "replay", "--app", "warehouse", "--from", "trim-horizon")
            assert refused.returncode == 1 and "hold live leases" in refused.stderr, refused.stderr
            forced = coinstream(env, "replay", "--app", "warehouse", "--from", "trim-horizon", "--force")
            assert forced.returncode == 0 and "reset 2 shards" in forced.stdout, forced.stderr
            wait_for(f"{survivor} to read everything again", caught_up(settings, pipeline, "warehouse"))

            workers[survivor].send_signal(signal.SIGTERM)
            assert workers[survivor].wait(timeout=90) == 0  # graceful: batch finished, flushed, checkpointed
        assert coinstream(env, "load").returncode == 0
        counts = view_counts(settings)
        assert counts["posts"] == (150, 150) and counts["candles"] == (30, 30)
        assert counts["raw_posts"][0] >= 150 * 2  # read twice: the raw table holds the copies
        dead = client("s3", settings).list_objects_v2(Bucket=pipeline.bucket, Prefix="dead-letter/warehouse/")
        assert dead["KeyCount"] >= 1
        status = coinstream(env, "local", "status")
        assert "dead-letter" in status.stdout


@pytest.mark.takes(110)
def test_two_applications_read_independently_and_replay_from_a_time(tmp_path: Path) -> None:
    with running_stack(tmp_path / "state") as (settings, pipeline, env):
        dynamodb = client("dynamodb", settings)
        assert coinstream(env, "produce", "candles").returncode == 0
        assert coinstream(env, "produce", "posts").returncode == 0
        put(settings, pipeline, [], POISON)
        for app in ("warehouse", "live"):
            done = coinstream(env, "consume", "--app", app, "--until-caught-up", "--timeout", "420")
            assert done.returncode == 0, done.stderr
        live_before = leases(dynamodb, "coinstream-live")
        owners = {lease.owner for lease in leases(dynamodb, "coinstream-warehouse")}
        assert len(owners) == 1 and str(next(iter(owners))).endswith("-warehouse")  # the only worker's one name

        shown = coinstream(env, "live", "--minutes", "60")
        assert shown.returncode == 0, shown.stderr
        posts_table = shown.stdout.split("candles (")[0]  # the posts per minute come first, the candles after
        rows = [line for line in posts_table.splitlines() if "2026-11-27T12:" in line]
        assert len(rows) == 30  # 30 minutes of candles; posts per minute counted once each
        assert sum(int(line.split("│")[2]) for line in rows) == 40
        candles = [line for line in shown.stdout.split("candles (")[1].splitlines() if "2026-11-27T12:" in line]
        assert len(candles) == 30 and all("│ coinone " in line for line in candles)

        time.sleep(1.5)
        since = datetime.now(UTC)
        time.sleep(1.5)
        put(settings, pipeline, [make_post(f"late-{i}", minute=45) for i in range(10)])
        assert coinstream(env, "consume", "--until-caught-up", "--timeout", "420").returncode == 0
        replayed = coinstream(env, "replay", "--app", "warehouse", "--from", since.isoformat(), "--watch-seconds", "4")
        assert replayed.returncode == 0, replayed.stderr
        assert "reset 2 shards" in replayed.stdout
        assert (
            sum(
                int(part.split("(")[1].split()[0])
                for part in replayed.stdout.splitlines()
                if "records to read again" in part
            )
            == 10
        )
        assert coinstream(env, "consume", "--until-caught-up", "--timeout", "420").returncode == 0
        assert leases(dynamodb, "coinstream-live") == live_before  # the other application is untouched
        # every run, and the replay between them, kept that name: each next run found its leases as its own
        assert {lease.owner for lease in leases(dynamodb, "coinstream-warehouse")} == owners

        assert coinstream(env, "load").returncode == 0
        counts = view_counts(settings)
        assert counts["raw_posts"] == (60, 50)  # 40 + 10 late, the late 10 read twice
        assert counts["posts"] == (50, 50) and counts["candles"] == (30, 30)

        # SIGTERM to `consume --until-caught-up` left the KCL daemon and its processors running (issue 39): the
        # command stops its worker (which checkpoints) before it exits, and nothing of it is left
        put(settings, pipeline, [make_post(f"after-{i}", minute=50) for i in range(5)])
        command = subprocess.Popen(
            [sys.executable, "-m", "operate", "consume", "--app", "live", "--until-caught-up", "--timeout", "420"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        run = settings.state_dir / "run"
        wait_for("the KCL daemon", lambda: any(run.glob("kcl-live-*.pid")), timeout=60, every=0.2)
        daemon = int(next(run.glob("kcl-live-*.pid")).read_text())
        time.sleep(3)  # its record processors are starting
        command.send_signal(signal.SIGTERM)
        assert command.wait(timeout=90) == 128 + signal.SIGTERM
        left = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _group(p) == daemon]
        assert left == [] and not any(run.glob("kcl-live-*.pid"))


def _group(proc: Path) -> int | None:
    """A process's group id (/proc/<pid>/stat), or None once it is gone."""
    try:
        stat = (proc / "stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(") ", 1)[1].split()
    return None if fields[0] == "Z" else int(fields[2])


def split_first_shard(settings: Settings, pipeline: Pipeline) -> str:
    """Split shard 0 in two (kinesis-mock supports SplitShard); the parent's id."""
    kinesis = client("kinesis", settings)
    parent = kinesis.list_shards(StreamName=pipeline.stream_name)["Shards"][0]
    lo, hi = (int(parent["HashKeyRange"][k]) for k in ("StartingHashKey", "EndingHashKey"))
    kinesis.split_shard(
        StreamName=pipeline.stream_name, ShardToSplit=parent["ShardId"], NewStartingHashKey=str((lo + hi) // 2)
    )
    wait_for(
        "the split",
        lambda: (
            kinesis.describe_stream_summary(StreamName=pipeline.stream_name)["StreamDescriptionSummary"]["StreamStatus"]
            == "ACTIVE"
        ),
        timeout=60,
        every=0.5,
    )
    return str(parent["ShardId"])


@pytest.mark.takes(200)
def test_a_replay_after_a_split_reads_the_parent_shards_again(tmp_path: Path) -> None:
    # Resharded while the app runs, as on AWS. (kinesis-mock ignores ListShards' ShardFilter, which KCL uses
    # only for an app whose lease table is empty: locally a brand-new app cannot start on a resharded stream.)
    with running_stack(tmp_path / "state") as (settings, pipeline, env):
        put(settings, pipeline, [make_post(f"before-{i}", minute=i % 30) for i in range(40)])
        first = coinstream(env, "consume", "--until-caught-up", "--timeout", "480")
        assert first.returncode == 0, first.stderr
        parent = split_first_shard(settings, pipeline)
        put(settings, pipeline, [make_post(f"after-{i}", minute=i % 30) for i in range(40)])
        second = coinstream(env, "consume", "--until-caught-up", "--timeout", "480")
        assert second.returncode == 0, second.stderr  # caught up on the closed parent and its children
        assert "80 records checkpointed on 4 shards" in second.stdout

        replayed = coinstream(env, "replay", "--app", "warehouse", "--from", "trim-horizon", "--watch-seconds", "4")
        assert replayed.returncode == 0, replayed.stderr
        parent_line = next(line for line in replayed.stdout.splitlines() if line.strip().startswith(parent))
        assert "SHARD_END -> TRIM_HORIZON" in parent_line and "(0 records" not in parent_line, replayed.stdout
        assert "warning" not in replayed.stderr
        again = coinstream(env, "consume", "--until-caught-up", "--timeout", "480")
        assert again.returncode == 0, again.stderr

        assert coinstream(env, "load").returncode == 0
        counts = view_counts(settings)
        assert counts["raw_posts"] == (160, 80)  # every record read twice, the parent's included
        assert counts["posts"] == (80, 80)
