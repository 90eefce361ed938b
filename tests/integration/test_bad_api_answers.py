"""Malformed API answers through the `coinstream` command: the run goes on, says what it skipped in its one
summary line, and moves the cursor past the bad item; error answers are one line and an exit code."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from coinstream.timeutil import epoch_minute, minute_start
from tests.conftest import payload
from tests.history_api import Exchange, exchanges
from tests.http_server import Reply, api_server
from tests.jetstream_server import jetstream
from tests.stack import coinstream, running_stack

TAG = "/api/v1/timelines/tag/bitcoin"
SEARCH = "/2/tweets/search/recent"
COUNTS = "/2/tweets/counts/recent"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    state = tmp_path_factory.mktemp("bad-answers") / "state"
    with running_stack(state) as (_, _, env):
        yield state, env


def state_of(state: Path, producer: str) -> dict[str, Any]:
    return json.loads((state / "producer" / f"{producer}.state.json").read_text())


def test_an_akkoma_instance_with_a_bad_status_and_a_broken_instance_do_not_stop_the_others(
    stack: tuple[Path, dict[str, str]],
) -> None:
    state, env = stack
    statuses = payload("mastodon/tag_bitcoin.json")[:3]
    for n, status in enumerate(statuses):  # Akkoma/Pleroma ids: fixed-length base62 flake ids, not numbers
        status["id"] = f"AbCdEfGhIjKlMnOp{n}"
    statuses[1]["created_at"] = "2026-11-27T12:02:13"  # no zone: not a fact we can place in UTC
    with api_server() as akkoma, api_server() as broken:
        akkoma.on(TAG, Reply(statuses))
        broken.on(TAG, Reply({"error": "down"}, 500))
        run = coinstream(
            {**env, "COINSTREAM_MASTODON_INSTANCES": f"{broken.url},{akkoma.url}"},
            "produce",
            "posts",
            "--source",
            "mastodon",
        )
    assert run.returncode == 0, run.stderr
    assert "3 fetched" not in run.stdout and "2 fetched, 2 sent" in run.stdout
    assert "1 malformed items skipped" in run.stdout and "Traceback" not in run.stderr
    assert "has a bad created_at" in run.stderr or "UTC offset" in run.stderr
    assert state_of(state, "post-mastodon") == {"min_id": {akkoma.url: "AbCdEfGhIjKlMnOp2"}}  # broken: no cursor


def test_a_malformed_jetstream_event_is_skipped_and_the_cursor_moves_past_it(
    stack: tuple[Path, dict[str, str]],
) -> None:
    state, env = stack
    events = copy.deepcopy(payload("bluesky/jetstream_events.json"))
    bad = next(e for e in events if "bitcoin" in json.dumps(e).lower())
    bad["commit"]["record"]["facets"] = [1]  # anyone can publish this to the network
    settings = {**env, "COINSTREAM_BLUESKY_SECONDS": "3"}
    with jetstream(events) as (url, paths):
        first = coinstream({**settings, "COINSTREAM_BLUESKY_URL": url}, "produce", "posts", "--source", "bluesky")
        second = coinstream({**settings, "COINSTREAM_BLUESKY_URL": url}, "produce", "posts", "--source", "bluesky")
    assert first.returncode == 0 and "1 malformed items skipped" in first.stdout, first.stdout + first.stderr
    last = max(int(e["time_us"]) for e in events)
    assert state_of(state, "post-bluesky") == {"cursor": last}
    assert second.returncode == 4 and f"cursor={last}" in paths[-1]  # resumed after the bad event: nothing new


def x_run(env: dict[str, str], state: Path, x_url: str) -> Any:
    settings = {"COINSTREAM_STATE_DIR": str(state), "COINSTREAM_X_URL": x_url, "COINSTREAM_X_BEARER_TOKEN": "t" * 24}
    return coinstream({**env, **settings}, "produce", "posts", "--source", "x")


@pytest.mark.parametrize(
    ("reply", "code", "said"),
    [
        (Reply([{"title": "Unauthorized"}], 401), 1, "error: x recent search: HTTP 401, the bearer token is not valid"),
        (Reply({"title": "Payment Required"}, 402), 1, "error: x recent search: HTTP 402, the X account has no credit"),
        (Reply({"title": "Too Many"}, 429, {"x-rate-limit-reset": "soon"}), 4, "rate limited (HTTP 429) until ?"),
    ],
)
def test_x_error_answers_are_one_line_and_an_exit_code(
    stack: tuple[Path, dict[str, str]], reply: Reply, code: int, said: str, tmp_path: Path
) -> None:
    _, env = stack
    with api_server() as x:
        x.on(COUNTS, Reply({"data": [], "meta": {"total_tweet_count": 0}}))
        x.on(SEARCH, reply)
        run = x_run(env, tmp_path, x.url)
    assert run.returncode == code, run.stdout + run.stderr
    assert "Traceback" not in run.stderr and "t" * 24 not in run.stderr + run.stdout  # the token never shows
    assert said in run.stderr
    if code == 1:
        errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and errors[0].startswith(said), run.stderr


def test_a_5xx_from_x_counts_is_retried_within_the_run(stack: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    _, env = stack
    with api_server() as x:
        x.on(COUNTS, Reply({"title": "busy"}, 503), Reply({"data": [], "meta": {"total_tweet_count": 0}}))
        x.on(SEARCH, Reply({"meta": {"result_count": 0}}))
        run = x_run(env, tmp_path, x.url)
    assert run.returncode == 4, run.stdout + run.stderr  # nothing new, and no failure
    assert [p for p, _ in x.requests].count(COUNTS) == 2 and "HTTP 503 from X" in run.stderr


def test_backfill_a_window_that_fails_stops_with_its_reason_the_others_go_on_and_the_next_run_resumes_it(
    stack: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    _, env = stack
    now = datetime.now(UTC)
    last = epoch_minute(now) - 1
    upbit, coinone = Exchange(first=last - 400, last=last), Exchange(first=last - 400, last=last)
    broken = {"on": True}
    with exchanges(upbit, coinone):
        with api_server() as flaky:
            flaky.on(
                "/public/v2/chart/KRW/BTC",
                Reply(lambda q: Reply({"error": "busy"}, 500) if broken["on"] else coinone.coinone(q)),
            )
            settings = {
                **env,
                "COINSTREAM_STATE_DIR": str(tmp_path),
                "COINSTREAM_UPBIT_URL": upbit.url,
                "COINSTREAM_COINONE_URL": flaky.url,
            }
            until = f"{minute_start(last - 1):%Y-%m-%dT%H:%M}"  # fixed: the runs below must see the same window
            args = ("backfill", "--since", "5h", "--until", until, "--source", "upbit", "--source", "coinone")
            dry = coinstream(settings, *args, "--dry-run")
            assert dry.returncode == 0, dry.stdout + dry.stderr
            assert "upbit KRW-BTC" in dry.stdout and "dry run: nothing was asked" in dry.stdout
            assert upbit.requests == 0 and flaky.requests == []
            first = coinstream(settings, *args)
            assert first.returncode == 3, first.stdout + first.stderr
            assert "stopped: coinone chart KRW-BTC: HTTP 500" in first.stdout and "Traceback" not in first.stderr
            assert "the same command resumes them" in first.stdout
            upbit_asked = upbit.requests
            broken["on"] = False
            second = coinstream(settings, *args)
            assert second.returncode == 0, second.stdout + second.stderr
            assert upbit.requests == upbit_asked  # upbit was read whole the first time: not asked again
            third = coinstream(settings, *args)
    assert third.returncode == 4 and "nothing to read" in third.stdout
