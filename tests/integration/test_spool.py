"""Nothing fetched is lost across a stream outage: spool while kinesis-mock is down, drain when it is back."""

from __future__ import annotations

from pathlib import Path

import pytest

from coinstream.aws import client
from consumer.checkpoints import stream_record_count
from operate import local_stack
from tests.stack import coinstream, running_stack


@pytest.mark.takes(75)
def test_records_fetched_during_an_outage_reach_the_stream_later(tmp_path: Path) -> None:
    with running_stack(tmp_path / "state") as (settings, pipeline, env):
        assert local_stack.kinesis_proc(settings).stop()  # the stream goes away
        down = coinstream(env, "produce", "posts", timeout=300)
        assert down.returncode == 3, down.stderr  # partial: spooled
        assert "42 spooled" in down.stdout
        again = coinstream(env, "produce", "posts", timeout=300)
        assert again.returncode == 3 and "0 sent" in again.stdout  # still down: the spool grows, nothing is lost

        local_stack.up(settings, pipeline)  # kinesis-mock back (empty: it keeps no data across restarts)
        back = coinstream(env, "produce", "candles", timeout=300)
        assert back.returncode == 0, back.stderr
        drained = coinstream(env, "produce", "posts", timeout=300)
        assert drained.returncode == 0, drained.stderr
        assert "84 sent from the spool" in drained.stdout and "42 sent" in drained.stdout
        assert sum(stream_record_count(client("kinesis", settings), pipeline.stream_name).values()) == 30 + 84 + 42
