"""X recent search through tweepy, mocked at the HTTP transport (responses) with recorded API answers."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import responses
from pydantic import SecretStr

from coinstream.config import Pipeline, Settings
from coinstream.errors import FatalError
from coinstream.records import Kind
from producer.run import Code, produce
from producer.sources.x_search import XRecentSearch
from tests.conftest import PAYLOADS, payload

URL = "https://api.twitter.com/2/tweets/search/recent"
COUNTS = "https://api.twitter.com/2/tweets/counts/recent"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
TOKEN = SecretStr("recorded-test-token-0000")


def search() -> XRecentSearch:
    return XRecentSearch(TOKEN, "(bitcoin OR #bitcoin) -is:retweet")


@responses.activate
def test_pages_are_followed_and_since_id_is_the_newest_read() -> None:
    responses.get(URL, json=payload("x/recent_search_page1.json"))
    responses.get(URL, json=payload("x/recent_search_page2.json"))
    result = search().fetch("1994999999999999999", budget=100, now=NOW)
    assert result.read == 42 and len({p.key for p in result.posts}) == 40 and not result.stopped_by
    assert result.newest_id == payload("x/recent_search_page1.json")["meta"]["newest_id"]
    first, second = (c.request for c in responses.calls)
    assert "since_id=1994999999999999999" in first.url and "next_token=" in second.url
    assert first.headers["Authorization"] == f"Bearer {TOKEN.get_secret_value()}"


@responses.activate
def test_the_read_budget_stops_a_run() -> None:
    responses.get(URL, json=payload("x/recent_search_page1.json"))
    result = search().fetch(None, budget=20, now=NOW)
    assert "read budget of 20" in result.stopped_by and len(responses.calls) == 1
    assert "max_results=20" in responses.calls[0].request.url


@responses.activate
def test_429_stops_the_run_and_keeps_the_reset_time() -> None:
    responses.get(URL, json={"title": "Too Many Requests"}, status=429, headers={"x-rate-limit-reset": "1764331200"})
    result = search().fetch(None, budget=100, now=NOW)
    assert result.rate_limited_until == 1764331200 and result.posts == []


@responses.activate
def test_bad_token_and_server_errors_are_named() -> None:
    responses.get(URL, json={"title": "Unauthorized"}, status=401)
    with pytest.raises(FatalError, match="bearer token is not valid"):
        search().fetch(None, budget=100, now=NOW)


@responses.activate
def test_runs_keep_since_id_budget_and_pause_after_429(
    tmp_path: Path, moto_kinesis: tuple[Pipeline, Any], caplog: pytest.LogCaptureFixture
) -> None:
    pipeline, _ = moto_kinesis
    settings = Settings(state_dir=tmp_path, x_bearer_token=TOKEN, x_posts_per_run=100, x_posts_per_day=60)
    responses.get(URL, json=payload("x/recent_search_page1.json"))
    responses.get(URL, json=payload("x/recent_search_page2.json"))
    responses.get(COUNTS, json=payload("x_counts/counts_recent_minute.json"))
    caplog.set_level(logging.DEBUG)
    first = produce(Kind.POST, "x", settings, pipeline, from_dir=PAYLOADS, now=NOW)
    # 42 posts read, and the counts of the five closed minutes 11:55..11:59 (12:00 is still running)
    assert first.code is Code.SENT and first.sent == 42 + 5
    state = json.loads((tmp_path / "producer" / "post-x.state.json").read_text())
    assert state["since_id"] == payload("x/recent_search_page1.json")["meta"]["newest_id"]
    assert state["reads"] == {"2026-11-28": 42}
    assert state["counted_minute"] == int(datetime(2026, 11, 28, 11, 59, tzinfo=UTC).timestamp() // 60)
    assert "granularity=minute" in responses.calls[0].request.url
    # 18 posts of today's 60 are left: the next run asks for at most 18
    responses.replace(responses.GET, URL, json={"meta": {"result_count": 0}})
    produce(Kind.POST, "x", settings, pipeline, from_dir=PAYLOADS, now=NOW)
    assert (
        "max_results=18" in responses.calls[-1].request.url
        and f"since_id={state['since_id']}" in responses.calls[-1].request.url
    )
    responses.replace(
        responses.GET, URL, status=429, json={}, headers={"x-rate-limit-reset": str(int(NOW.timestamp()) + 600)}
    )
    assert produce(Kind.POST, "x", settings, pipeline, from_dir=PAYLOADS, now=NOW).code is Code.NOTHING
    calls = len(responses.calls)
    assert produce(Kind.POST, "x", settings, pipeline, from_dir=PAYLOADS, now=NOW).code is Code.NOTHING
    assert len(responses.calls) == calls  # paused until the reset: no request at all
    assert TOKEN.get_secret_value() not in caplog.text  # the token never reaches a log


def test_missing_token_is_one_clear_error(tmp_path: Path, moto_kinesis: tuple[Pipeline, Any]) -> None:
    pipeline, _ = moto_kinesis
    with pytest.raises(FatalError, match="COINSTREAM_X_BEARER_TOKEN"):
        produce(Kind.POST, "x", Settings(state_dir=tmp_path), pipeline, from_dir=PAYLOADS, now=NOW)
