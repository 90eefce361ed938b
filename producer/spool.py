"""The spool: records a run fetched but could not put on the stream wait on local disk for the next run.

Each spool file is JSON lines of envelopes, written to a temporary name, flushed to disk and
renamed, so a crash leaves either a whole file or none. The next run sends spooled files first,
oldest first, and removes each one only once every record in it was accepted.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

from coinstream.errors import FatalError
from coinstream.records import Envelope
from producer.kinesis_writer import KinesisWriter
from producer.state import write_atomically

logger = logging.getLogger(__name__)


@dataclass
class DrainResult:
    """What sending the spool did."""

    sent: int = 0
    left: int = 0
    files_done: int = 0
    #: spool lines that could not be read back: kept with the reason under quarantine/, never resent
    quarantined: int = 0


class Spool:
    """A folder of spool files for one producer."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def files(self) -> list[Path]:
        """Spool files, oldest first."""
        return sorted(self.folder.glob("*.jsonl")) if self.folder.is_dir() else []

    def pending(self) -> int:
        """Records waiting in the spool."""
        return sum(sum(1 for line in f.read_bytes().splitlines() if line.strip()) for f in self.files())

    def write(self, envelopes: Iterable[Envelope]) -> Path | None:
        """Keep `envelopes` for the next run; a spool that cannot be written is a FatalError (never silent loss)."""
        body = b"".join(e.to_bytes() + b"\n" for e in envelopes)
        if not body:
            return None
        name = f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}.jsonl"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomically(self.folder / name, body)
        except OSError as exc:
            raise FatalError(
                f"cannot write the spool in {self.folder} ({exc.strerror}); the fetched records are NOT saved: "
                "fix the folder's permissions or free disk space (COINSTREAM_STATE_DIR moves it)"
            ) from None
        return self.folder / name

    def drain(self, writer: KinesisWriter) -> DrainResult:
        """Send spooled records, oldest file first; stop at the first file the stream does not take whole."""
        result = DrainResult()
        for file in self.files():
            envelopes, bad = self._read(file)
            if bad:
                self.quarantine(file.name, bad)
                result.quarantined += len(bad)
                # the good lines stay in the file until the stream took them, the bad ones are gone from it
                write_atomically(file, b"".join(e.to_bytes() + b"\n" for e in envelopes))
            put = writer.put(envelopes)
            result.sent += put.sent
            self.refuse(put.refused)
            if put.unsent:
                write_atomically(file, b"".join(e.to_bytes() + b"\n" for e in put.unsent))
                break
            file.unlink()
            result.files_done += 1
        result.left = self.pending()
        return result

    @staticmethod
    def _read(file: Path) -> tuple[list[Envelope], list[tuple[bytes, str]]]:
        """The envelopes of a spool file, and each line that is not one (with why)."""
        good: list[Envelope] = []
        bad: list[tuple[bytes, str]] = []
        for line in file.read_bytes().splitlines():
            if not line.strip():
                continue
            try:
                good.append(Envelope.from_bytes(line))
            except Exception as exc:  # a damaged line (disk, a hand edit) costs that line only
                bad.append((line, str(exc)))
        return good, bad

    def quarantine(self, source: str, lines: list[tuple[bytes, str]]) -> None:
        """Keep unreadable spool lines, each with its reason, under quarantine/ (never resent)."""
        folder = self.folder / "quarantine"
        folder.mkdir(parents=True, exist_ok=True)
        body = b"".join(
            orjson.dumps({"reason": why, "spool_file": source, "line": line.decode(errors="replace")}) + b"\n"
            for line, why in lines
        )
        target = folder / f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}.jsonl"
        write_atomically(target, body)
        logger.error("%d unreadable spool lines of %s quarantined in %s with the reason", len(lines), source, target)

    def refuse(self, refused: list[tuple[Envelope, str]]) -> None:
        """Keep records the stream can never take (over 1 MiB) in `refused/`, each with its reason."""
        if not refused:
            return
        folder = self.folder / "refused"
        folder.mkdir(parents=True, exist_ok=True)
        lines = b"".join(
            orjson.dumps({"reason": reason, "record": orjson.loads(e.to_bytes())}) + b"\n" for e, reason in refused
        )
        write_atomically(folder / f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}.jsonl", lines)
        logger.error("%d records can never be put on the stream; kept with the reason in %s", len(refused), folder)
