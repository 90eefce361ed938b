"""X recent search through tweepy, mocked at the HTTP transport (responses) with recorded API answers."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import responses
from pydantic import SecretStr

from coinstream.config import Pipeline, Settings
from coinstream.errors import FatalError
from coinstream.records import Kind
from producer.run import Code, produce
from producer.sources.x_client import XRecentSearch
from tests.conftest import PAYLOADS, payload

URL = "https://api.twitter.com/2/tweets/search/recent"
COUNTS = "https://api.twitter.com/2/tweets/counts/recent"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
TOKEN = SecretStr("recorded-test-token-0000")


def search() -> XRecentSearch:
    return XRecentSearch(TOKEN, "(bitcoin OR #bitcoin) -is:retweet")


@responses.activate
def test_a_sample_is_one_read_of_the_newest_posts_after_since_id() -> None:
    responses.get(URL, json=payload("x/recent_search_page1.json"))
    result = search().sample("1994999999999999999", 100, now=NOW)
    assert result.read == 22 and len(result.posts) == 22 and not result.stopped_by
    assert result.newest_id == payload("x/recent_search_page1.json")["meta"]["newest_id"]
    (call,) = responses.calls  # the page has a next_token: a sample does not follow it
    assert "since_id=1994999999999999999" in call.request.url and "max_results=100" in call.request.url
    assert call.request.headers["Authorization"] == f"Bearer {TOKEN.get_secret_value()}"


@responses.activate
def test_429_stops_the_run_and_keeps_the_reset_time() -> None:
    responses.get(URL, json={"title": "Too Many Requests"}, status=429, headers={"x-rate-limit-reset": "1764331200"})
    result = search().sample(None, 10, now=NOW)
    assert result.rate_limited_until == 1764331200 and result.posts == []


@responses.activate
def test_bad_token_and_server_errors_are_named() -> None:
    responses.get(URL, json={"title": "Unauthorized"}, status=401)
    with pytest.raises(FatalError, match="bearer token is not valid"):
        search().sample(None, 10, now=NOW)


@responses.activate
def test_runs_keep_since_id_and_spend_and_pause_after_429(
    tmp_path: Path, moto_kinesis: tuple[Pipeline, Any], caplog: pytest.LogCaptureFixture
) -> None:
    pipeline, _ = moto_kinesis
    settings = Settings(state_dir=tmp_path, x_bearer_token=TOKEN, x_sample_every_minutes=1, x_sample_size=100)
    responses.get(URL, json=payload("x/recent_search_page1.json"))
    responses.get(COUNTS, json=payload("x_counts/counts_recent_minute.json"))
    caplog.set_level(logging.DEBUG)
    first = produce(Kind.POST, "x", settings, pipeline, from_dir=PAYLOADS, now=NOW)
    # 22 posts read, and the counts of the closed minutes 11:55..11:58 (11:59 closed less than 10 s ago)
    assert first.code is Code.SENT and first.sent == 22 + 4
    state = json.loads((tmp_path / "producer" / "post-x.state.json").read_text())
    assert state["since_id"] == payload("x/recent_search_page1.json")["meta"]["newest_id"]
    assert state["spent"] == {"2026-11-28": {"reads": 22, "counts_requests": 1}}
    assert state["counted_minute"] == int(datetime(2026, 11, 28, 11, 58, tzinfo=UTC).timestamp() // 60)
    assert "granularity=minute" in responses.calls[0].request.url
    assert "end_time=2026-11-28T11%3A59%3A00Z" in responses.calls[0].request.url
    # the same minute again: nothing is due, nothing is asked
    assert produce(Kind.POST, "x", settings, pipeline, from_dir=PAYLOADS, now=NOW).code is Code.NOTHING
    assert len(responses.calls) == 2
    responses.replace(
        responses.GET, URL, status=429, json={}, headers={"x-rate-limit-reset": str(int(NOW.timestamp()) + 600)}
    )
    later = NOW + timedelta(minutes=1)
    assert produce(Kind.POST, "x", settings, pipeline, from_dir=PAYLOADS, now=later).code is Code.NOTHING
    assert f"since_id={state['since_id']}" in responses.calls[-1].request.url
    calls = len(responses.calls)
    later += timedelta(minutes=1)
    assert produce(Kind.POST, "x", settings, pipeline, from_dir=PAYLOADS, now=later).code is Code.NOTHING
    assert len(responses.calls) == calls  # paused until the reset: no request at all
    assert TOKEN.get_secret_value() not in caplog.text  # the token never reaches a log


def test_missing_token_is_one_clear_error(tmp_path: Path, moto_kinesis: tuple[Pipeline, Any]) -> None:
    pipeline, _ = moto_kinesis
    with pytest.raises(FatalError, match="COINSTREAM_X_BEARER_TOKEN"):
        produce(Kind.POST, "x", Settings(state_dir=tmp_path), pipeline, from_dir=PAYLOADS, now=NOW)
