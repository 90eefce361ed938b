"""The KCL record processor: a thin adapter from the MultiLangDaemon's callbacks to the pure core.

Nothing here writes to stdout: stdout belongs to the daemon's protocol.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from amazon_kclpy.kcl import CheckpointError
from amazon_kclpy.v3 import processor

from coinstream.errors import TransientError
from coinstream.records import Kind
from coinstream.retry import retrying
from consumer.dead_letter import DeadLetterSink, Origin
from consumer.dedupe import Deduper
from consumer.native import PostRows
from consumer.route import route

logger = logging.getLogger(__name__)

_CHECKPOINT_RETRIES = 5


class Sink(Protocol):
    """Where a consumer application sends its rows: Firehose (warehouse app) or live metrics (live app)."""

    def add(self, kind: Kind, row: dict[str, Any], origin: Origin) -> None: ...

    def flush(self) -> list[tuple[Origin, str]]: ...

    def pending_rows(self) -> int: ...

    def summary(self) -> str: ...


@runtime_checkable
class LineSink(Sink, Protocol):
    """A sink that also takes rows already written as their lines (the native path's output)."""

    def add_lines(self, kind: Kind, lines: list[bytes], origins: Iterable[Origin]) -> None: ...


class RecordProcessor(processor.RecordProcessorBase):
    """Processes one shard: parse, drop exact duplicates, deliver, then checkpoint what was delivered.

    Every record ends in exactly one place: a delivered row, a dropped duplicate, or a dead letter
    with its reason and original bytes. Any failure with one record dead-letters that record and the
    batch goes on. While Firehose (or S3 for dead letters) is unreachable, `process_records` waits
    with backoff and does not return, so the daemon waits too and memory stays bounded by one batch;
    the checkpoint never passes a record that is not delivered or dead-lettered. With a delivery window
    (`window_seconds`, `window_bytes`) rows are held across calls until the oldest has waited that long
    or that many bytes arrived, so a trickle still fills ~5 KB Firehose records; KCL calls
    `process_records` on every poll, empty or not, which is what ends a window on time. A failure the
    processor cannot recover from (a missing delivery stream, no permission) ends the process with a
    non-zero status, so the daemon restarts it instead of acknowledging work that was not done.
    """

    def __init__(
        self,
        sink: Sink,
        dead_letters: DeadLetterSink,
        deduper: Deduper | None = None,
        *,
        max_delivery_attempts: int | None = None,
        sleep: Callable[[float], None] | None = None,
        window_seconds: float = 0.0,
        window_bytes: int = 1_000_000,
        clock: Callable[[], float] = time.monotonic,
        post_rows: PostRows | None = None,
    ) -> None:
        self.sink = sink
        # the native path writes row lines: only for a sink that takes them
        self._native = (post_rows, sink) if post_rows is not None and isinstance(sink, LineSink) else None
        self.dead_letters = dead_letters
        self.deduper = deduper or Deduper()
        self.max_delivery_attempts = max_delivery_attempts
        self._sleep = sleep
        self.shard_id = "?"
        self._uncheckpointed: tuple[str, int] | None = None
        self.window_seconds = window_seconds
        self.window_bytes = window_bytes
        self._clock = clock
        self._held_since: float | None = None  # when the oldest record not yet delivered arrived
        self._held_bytes = 0
        self.seen = 0
        self.checkpoints = 0
        #: a graceful stop asked this processor to finish (KCL then hands its lease back: not a loss)
        self.stopping = False

    def initialize(self, initialize_input: Any) -> None:
        self.shard_id = initialize_input.shard_id
        logger.info("shard %s: starting at %s", self.shard_id, initialize_input.sequence_number)

    def process_records(self, process_records_input: Any) -> None:
        records = process_records_input.records
        if records:
            origins = [Origin(r.sequence_number, r.partition_key, r.binary_data) for r in records]
            self.seen += len(origins)
            self._held_bytes += sum(len(origin.data) for origin in origins)
            sink, post_rows, add_lines = self.sink, None, None
            if self._native is not None:
                post_rows, line_sink = self._native

                def queue_lines(kind: Kind, lines: list[bytes], at: list[int]) -> None:
                    line_sink.add_lines(kind, lines, map(origins.__getitem__, at))

                add_lines = queue_lines
            route(
                [origin.data for origin in origins],
                datetime.now(UTC),
                self.deduper,
                add=lambda i, kind, row: sink.add(kind, row, origins[i]),
                reject=lambda i, why: self.dead_letters.add_origin(self.shard_id, origins[i], why),
                post_rows=post_rows,
                add_lines=add_lines,
                describe=lambda i: f"shard {self.shard_id}: record {origins[i].sequence_number}",
            )
            last = records[-1]
            self._uncheckpointed = (last.sequence_number, last.sub_sequence_number)
        if self._uncheckpointed is None:
            return
        if self._held_since is None:
            self._held_since = self._clock()
        if self._window_open():
            return
        if self._deliver():
            self._checkpoint(process_records_input.checkpointer)

    def _window_open(self) -> bool:
        """True while the held rows may wait for more (the window has time and room left)."""
        if self._held_since is None or self._held_bytes >= self.window_bytes:
            return False
        return self._clock() - self._held_since < self.window_seconds

    def _deliver(self) -> bool:
        """Deliver every queued row and dead letter, waiting out transient failures; True when all are safe."""
        try:
            for attempt in retrying(
                logger, max_attempts=self.max_delivery_attempts, initial=0.5, max_wait=30.0, sleep=self._sleep
            ):
                with attempt:
                    for origin, reason in self.sink.flush():
                        self.dead_letters.add_origin(self.shard_id, origin, f"refused by the delivery stream: {reason}")
                    self.dead_letters.flush()
            self._held_since, self._held_bytes = None, 0
            return True
        except TransientError as exc:  # only with a bound on the attempts (tests): hold the rows, no checkpoint
            logger.error(
                "shard %s: delivery failed, holding %d rows and not checkpointing: %s",
                self.shard_id,
                self.sink.pending_rows(),
                exc,
            )
            return False
        except Exception:
            logger.critical(
                "shard %s: cannot deliver and cannot recover; exiting so the daemon restarts this processor "
                "(%d rows not delivered, no checkpoint taken)",
                self.shard_id,
                self.sink.pending_rows(),
                exc_info=True,
            )
            raise SystemExit(1) from None

    def _checkpoint(self, checkpointer: Any, at_end: bool = False) -> None:
        """Checkpoint at the last record handed to us (at_end: a bare checkpoint, as KCL asks at shard end)."""
        if self._uncheckpointed is None and not at_end:
            return
        seq, sub = self._uncheckpointed or (None, None)

        def once() -> None:
            try:
                if at_end:
                    checkpointer.checkpoint()
                else:
                    checkpointer.checkpoint(seq, sub)
            except CheckpointError as exc:
                if exc.value == "ThrottlingException":
                    raise TransientError(f"shard {self.shard_id}: checkpoint throttled") from None
                raise

        try:
            for attempt in retrying(logger, max_attempts=_CHECKPOINT_RETRIES, initial=0.1, max_wait=5.0):
                with attempt:
                    once()
        except CheckpointError as exc:
            if exc.value == "ShutdownException":
                logger.info("shard %s: lease lost while checkpointing; another worker continues", self.shard_id)
            else:
                logger.error("shard %s: checkpoint at %s failed: %s", self.shard_id, seq, exc.value)
            return
        except TransientError as exc:
            logger.error("shard %s: checkpoint at %s failed: %s", self.shard_id, seq, exc)
            return
        self.checkpoints += 1
        self._uncheckpointed = None

    def lease_lost(self, lease_lost_input: Any) -> None:
        # No checkpoint is possible any more: the new owner re-reads from our last one. The rows held in
        # the window are delivered anyway, so they reach the warehouse now rather than after the new
        # owner's own window (the copies it sends again count once in the views).
        held = self.sink.pending_rows()
        if held:
            self._deliver()
        if self.stopping:  # KCL gives the lease back after a graceful shutdown: expected, and checkpointed
            logger.info("shard %s: lease handed back after the graceful shutdown", self.shard_id)
            return
        logger.info("shard %s: lease lost after %d records (%d held rows delivered)", self.shard_id, self.seen, held)

    def shard_ended(self, shard_ended_input: Any) -> None:
        if self._deliver():
            self._checkpoint(shard_ended_input.checkpointer, at_end=True)
        logger.info("shard %s: ended after %d records", self.shard_id, self.seen)

    def shutdown_requested(self, shutdown_requested_input: Any) -> None:
        # Always checkpoint here once delivery succeeded: KCL waits for it before the worker's
        # final shutdown (without it every graceful stop waits out the lease failover time).
        self.stopping = True
        if self._deliver():
            self._checkpoint(shutdown_requested_input.checkpointer, at_end=True)
        logger.info(
            "shard %s: shutting down after %d records, %d duplicates dropped; %s",
            self.shard_id,
            self.seen,
            self.deduper.dropped,
            self.sink.summary(),
        )
