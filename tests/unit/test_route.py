"""The processor's pure core, whichever path takes a record."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from consumer.dedupe import Deduper
from consumer.route import route
from tests.conftest import make_post

NOW = datetime(2026, 11, 27, 12, 1, 5, tzinfo=UTC)


def test_a_native_path_that_fails_on_a_batch_costs_its_speed_never_a_record(caplog: pytest.LogCaptureFixture) -> None:
    def broken(records: Any, processed_at: str) -> Any:
        raise RuntimeError("a bug in the native path")

    records = [make_post(str(i)).to_bytes() for i in range(3)]
    rows: list[int] = []
    route(
        records,
        NOW,
        Deduper(),
        add=lambda i, kind, row: rows.append(i),
        reject=lambda i, why: pytest.fail(why),
        post_rows=broken,
        add_lines=lambda kind, lines, at: pytest.fail("no lines from a failed native call"),
    )
    assert rows == [0, 1, 2]
    assert "the native path failed on 3 records; the Python path takes them" in caplog.text
