"""One producer run, the way cron starts it: fetch, wrap, put on the stream, report."""

from __future__ import annotations

import logging
from pathlib import Path

from coinstream.aws import client
from coinstream.config import Pipeline, Settings
from coinstream.records import Kind
from producer.kinesis_writer import KinesisWriter, WriteResult
from producer.sources.offline import replay

logger = logging.getLogger(__name__)


def produce_offline(
    kind: Kind, settings: Settings, pipeline: Pipeline, folder: Path, market: str = "KRW-BTC"
) -> WriteResult:
    """Replay the recorded answers under `folder` for `kind` onto the stream."""
    envelopes = replay(folder, kind, market=market)
    writer = KinesisWriter(pipeline.stream_name, client("kinesis", settings))
    result = writer.put(envelopes)
    logger.info(
        "%s: %d fetched, %d sent in %d calls, %d unsent, %d refused",
        kind,
        len(envelopes),
        result.sent,
        result.calls,
        len(result.unsent),
        len(result.refused),
    )
    return result
