"""A new source is one class and one registry line: the runner, doctor, the offline replayer and the CLI pick it up."""

from __future__ import annotations

import importlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from coinstream import records
from coinstream.config import Pipeline, Settings
from coinstream.errors import FatalError
from coinstream.records import Envelope, Kind
from producer.run import Code, produce
from producer.sources import apis, registry
from producer.sources.base import Cursor, Probe, RunOptions, Source
from producer.sources.offline import replay
from producer.state import StateFile

NOW = datetime(2026, 11, 28, 12, 0, 30, tzinfo=UTC)


class PageCursor(Cursor):
    page: int


def _post(n: int) -> Envelope:
    return records.post("throwaway", str(n), NOW, NOW, text=f"bitcoin {n}", lang="en")


class Throwaway(Source[PageCursor]):
    """Two posts a run, numbered by a page cursor."""

    name = "throwaway"
    kinds = frozenset({Kind.POST})
    cursor_type = PageCursor
    summary = "a source that exists only in this test"
    recorded = {"throwaway": lambda body, options, now: [_post(n) for n in body]}  # noqa: RUF012

    @classmethod
    def build(cls, settings: Settings, options: RunOptions) -> Throwaway:
        return cls()

    def fetch(self, cursor: PageCursor | None, now: datetime) -> tuple[list[Envelope], PageCursor | None]:
        page = cursor.page + 1 if cursor else 0
        return [_post(2 * page), _post(2 * page + 1)], PageCursor(page=page)

    @classmethod
    def probes(cls, settings: Settings) -> list[Probe]:
        return [Probe("source throwaway", lambda: "answers", "nothing to fix")]


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.SOURCES, Throwaway.name, Throwaway)
    monkeypatch.setattr(apis, "API_SOURCES", (*apis.API_SOURCES, Throwaway))  # the offline replayer reads these


@pytest.mark.usefixtures("registered")
def test_the_runner_fetches_puts_and_commits_its_typed_cursor(
    tmp_path: Path, moto_kinesis: tuple[Pipeline, Any]
) -> None:
    pipeline, _ = moto_kinesis
    settings = Settings(state_dir=tmp_path)
    first = produce(Kind.POST, "throwaway", settings, pipeline, now=NOW)
    second = produce(Kind.POST, "throwaway", settings, pipeline, now=NOW)
    assert (first.code, first.sent, second.sent) == (Code.SENT, 2, 2)
    assert StateFile(tmp_path / "producer" / "post-throwaway.state.json").load() == {"page": 1}
    with pytest.raises(FatalError, match="throwaway gives posts: use `coinstream produce posts --source throwaway`"):
        produce(Kind.CANDLE, "throwaway", settings, pipeline, now=NOW)


@pytest.mark.usefixtures("registered")
def test_doctor_and_the_offline_replayer_know_it(tmp_path: Path) -> None:
    from operate.doctor import checks

    (tmp_path / "throwaway").mkdir()
    (tmp_path / "throwaway" / "answer.json").write_text(json.dumps([7, 8]))
    assert [e.key for e in replay(tmp_path, Kind.POST)] == ["throwaway:7", "throwaway:8"]
    lines = {c.what: c for c in checks(Settings(state_dir=tmp_path), Pipeline.load(Settings().pipeline_file))}
    assert lines["source throwaway"].ok and lines["source throwaway"].detail == "answers"


@pytest.mark.usefixtures("registered")
def test_the_cli_help_lists_it() -> None:
    import operate.cli
    import operate.cli.produce_command

    importlib.reload(operate.cli.produce_command)  # the help is built from the registry when the module loads
    cli = importlib.reload(operate.cli)
    result = CliRunner().invoke(cli.app, ["produce", "posts", "--help"], env={"COLUMNS": "200"})
    assert "throwaway" in result.output


def test_an_unknown_source_names_the_known_ones() -> None:
    with pytest.raises(
        FatalError,
        match="unknown source 'nope': use one of offline, simulated, coinone, upbit, binance, coinbase, okx, bybit, kraken, bitstamp, x",
    ):
        registry.build("nope", Settings(), RunOptions(Kind.POST))
