"""Entry point the KCL MultiLangDaemon runs once per shard: `python -m consumer.app --app NAME`."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys

from amazon_kclpy import kcl

from coinstream.aws import client, deployed
from coinstream.config import Pipeline, Settings, load_settings
from coinstream.delivery import load_delivery_streams
from coinstream.records import Kind
from consumer.dead_letter import DeadLetterSink
from consumer.dedupe import Deduper
from consumer.firehose_sink import FirehoseSink
from consumer.live_sink import LiveMetricsSink
from consumer.native import post_rows
from consumer.processor import RecordProcessor, Sink

#: The consumer application that keeps per-minute figures for the dashboard; every other
#: application delivers to Firehose.
LIVE_APP = "live"


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for a long-running worker's logs."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def processor_log_handlers(settings: Settings, app: str) -> list[logging.Handler]:
    """Where a record processor logs. stdout is the daemon's protocol, and the daemon logs every line of a
    processor's stderr as ERROR; so the processor's own lines go to `<state>/logs/processor-<app>.log` (JSON, one
    per line) and only its warnings and errors to stderr too, where ERROR is the right word for them."""
    folder = settings.state_dir / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    to_file = logging.FileHandler(folder / f"processor-{app}.log", encoding="utf-8")
    to_file.setFormatter(JsonFormatter())
    to_stderr = logging.StreamHandler(sys.stderr)
    to_stderr.setLevel(logging.WARNING)
    to_stderr.setFormatter(JsonFormatter())
    return [to_file, to_stderr]


def main(argv: list[str] | None = None) -> None:
    """Build the processor from settings and hand stdin/stdout to the KCL protocol."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--app", required=True)
    args = parser.parse_args(argv)
    settings = load_settings()
    logging.basicConfig(level=logging.INFO, handlers=processor_log_handlers(settings, args.app))
    logging.getLogger("botocore").setLevel(logging.WARNING)

    # The daemon decides when a record processor stops: on its own SIGTERM it asks each one to deliver and
    # checkpoint (shutdown_requested). A stop signal sent to the whole group (systemd's default, Ctrl-C in a
    # terminal) must not kill the processors first; they exit when the daemon closes their stdin.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pipeline = deployed(settings, Pipeline.load(settings.pipeline_file))
    sink: Sink
    rows = None  # the native path for posts writes Redshift's row lines: only for that destination
    window = 0.0  # the live application is for seconds-old figures
    if args.app == LIVE_APP:
        sink = LiveMetricsSink(pipeline.live_table, client("dynamodb", settings), ttl_days=pipeline.live_ttl_days)
    else:
        streams = {Kind(kind): s.name for kind, s in load_delivery_streams(pipeline).items()}
        shape = None
        if settings.warehouse == "iceberg" and settings.target == "aws":
            # Firehose's Iceberg destination (locally the rows land in S3 and `load` appends them to the lake)
            from consumer.lake_rows import LakeRows  # reads redshift/*.sql with sqlglot

            shape = LakeRows.of(pipeline)
        sink = FirehoseSink(streams, client("firehose", settings), shape=shape)
        wanted = shape is None and settings.native  # the native lines are Redshift's rows
        rows = post_rows() if wanted else None
        missing = " (coinstream-native is not installed)" if wanted and rows is None else ""
        logging.getLogger(__name__).info("posts take the %s path%s", "native" if rows else "Python", missing)
        window = settings.delivery_window_seconds
    dead = DeadLetterSink(pipeline.bucket, pipeline.dead_letter_prefix, args.app, client("s3", settings))
    processor = RecordProcessor(
        sink,
        dead,
        Deduper(settings.dedupe_capacity),
        window_seconds=window,
        window_bytes=settings.delivery_window_bytes,
        post_rows=rows,
    )
    kcl.KCLProcess(processor).run()


if __name__ == "__main__":
    main()
