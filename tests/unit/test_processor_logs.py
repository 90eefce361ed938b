"""A record processor's own lines go to its log file; only warnings and errors reach the daemon, which logs every
line of a processor's stderr as ERROR (its DrainChildSTDERRTask)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from coinstream.config import Settings
from consumer.app import processor_log_handlers


def test_info_goes_to_the_processors_file_and_only_warnings_to_the_daemon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = logging.getLogger("coinstream.test.processor")
    log.propagate = False
    log.setLevel(logging.INFO)
    handlers = processor_log_handlers(Settings(state_dir=tmp_path), "warehouse")
    for handler in handlers:
        log.addHandler(handler)
    try:
        log.info("posts take the native path")
        log.warning("a record dead-lettered: not JSON")
    finally:
        for handler in handlers:
            log.removeHandler(handler)
            handler.close()
    lines = [json.loads(x) for x in (tmp_path / "logs" / "processor-warehouse.log").read_text().splitlines()]
    assert [(x["level"], x["msg"]) for x in lines] == [
        ("INFO", "posts take the native path"),
        ("WARNING", "a record dead-lettered: not JSON"),
    ]
    said = capsys.readouterr().err.splitlines()
    assert [json.loads(x)["msg"] for x in said] == ["a record dead-lettered: not JSON"]
