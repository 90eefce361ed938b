"""Answers other people's clients captured from the real APIs (../shared/real-payloads, see its SOURCES.md),
replayed as a new user would: through the offline replayer, and error bodies through the live clients against a
loopback server with the status the capture had. Each gives rows or one clear reason, never a traceback and never
a silent wrong number. The files are not ours: they are read where they are, and these tests skip without them.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from coinstream.errors import BadPayload, FatalError, TryLater
from coinstream.http import ApiClient
from coinstream.records import Envelope, Kind
from consumer.enrich import enrich
from producer.sources.bluesky_posts import post_from_event, post_from_view
from producer.sources.coinone import CoinoneCandles
from producer.sources.mastodon import MastodonTag, parse_statuses
from producer.sources.offline import replay
from producer.sources.upbit import parse_candles
from producer.sources.x_client import XRecentSearch
from tests.http_server import Reply, api_server

REAL = Path(__file__).resolve().parents[3] / "shared" / "real-payloads"
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason=f"{REAL} is not here (it is beside the project's clone)")
NOW = datetime(2026, 12, 4, 12, 0, 30, tzinfo=UTC)

#: file -> (offline folder, kind, rows it gives, or the reason it gives instead). Every file must be listed.
EXPECTED: dict[str, tuple[str, Kind, int | str]] = {
    "upbit_minutes1_rawwire_psy0231_KRW-BTC_2022-09-01.json": ("upbit", Kind.CANDLE, 5),
    "upbit_minutes1_smtm_KRW-BTC_2020-02-20_40.json": ("upbit", Kind.CANDLE, 40),
    "upbit_minutes1_smtm_KRW-BTC_2020-02-20_first50of200.json": ("upbit", Kind.CANDLE, 50),
    "coinone_error_107_parameter_probe.json": (
        "coinone",
        Kind.CANDLE,
        r"error code '107' \(Parameter value is wrong\)",
    ),
    "coinone_error_108_unknown_currency_probe.json": ("coinone", Kind.CANDLE, r"error code '108' \(Unknown Crypto"),
    "coinone_error_405_maintenance_ccxt_comment.json": ("coinone", Kind.CANDLE, "under maintenance.*try later"),
    "coinone_error_4_ratelimit_docexample_camelcase.json": ("coinone", Kind.CANDLE, r"'4' \(Blocked user access"),
    "coinone_markets_USDT_empty_success_probe.json": ("coinone", Kind.CANDLE, "'chart' is missing"),
    "coinone_ticker_new_USDT_empty_success_probe.json": ("coinone", Kind.CANDLE, "'chart' is missing"),
    "x_search_recent_tweepy_client_2022-10-07.json": ("x", Kind.POST, 0),  # no created_at asked: each skipped
    "x_search_recent_tweepy_asyncclient_2022-10-07.json": ("x", Kind.POST, 0),
    "x_search_recent_chanochoca_2025-01-22_health.json": ("x", Kind.POST, 10),
    "x_search_all_academictwitteR_commtwitter_5.json": ("x", Kind.POST, 5),
    "x_search_all_academictwitteR_partial_errors_trimmed.json": ("x", Kind.POST, 50),
    "x_search_all_academictwitteR_empty_result.json": ("x", Kind.POST, 0),
    "x_error_400_invalid_request_academictwitteR.json": ("x", Kind.POST, "1 error: Invalid 'start_time'"),
    "x_error_401_academictwitteR.json": ("x", Kind.POST, "HTTP 401 Unauthorized: Unauthorized"),
    "x_error_429_anascode_doc.json": ("x", Kind.POST, "HTTP 429 Too Many Requests"),
    "x_errors_only_authorization_error_issue26.json": ("x", Kind.POST, "1 error: Authorization Error: Sorry"),
    "x_counts_recent_tweepy_client_2021-09-20.json": ("x_counts", Kind.POST, "buckets of 3600 s, not one minute"),
    "x_counts_recent_tweepy_asyncclient_2022-05-07.json": ("x_counts", Kind.POST, "buckets of 3600 s"),
    "x_counts_all_day_academictwitteR_page1.json": ("x_counts", Kind.POST, "buckets of 86400 s"),
    "x_counts_all_day_academictwitteR_lastpage.json": ("x_counts", Kind.POST, "buckets of 86400 s"),
    "mastodon_timelines_tag_hoot_mastodonpy_localhost.json": ("mastodon", Kind.POST, 1),
    "mastodon_timelines_tag_mastodon_bigbone_2017.json": ("mastodon", Kind.POST, 20),
    "mastodon_status_edited_mastodonpy_localhost.json": ("mastodon", Kind.POST, "expected a JSON list, got dict"),
    "mastodon_timelines_tag_error_401_docexample.json": ("mastodon", Kind.POST, "error 'The access token is invalid'"),
    "mastodon_timelines_tag_error_404_docexample.json": ("mastodon", Kind.POST, "error 'Record not found'"),
    "bluesky_searchPosts_error_403_authmissing_issue.json": ("bluesky", Kind.POST, "AuthMissing.*signed-in session"),
    # none of these is about bitcoin: rightly no rows (the tests below make them so and check the figures)
    "bluesky_getTimeline_postviews_skyblue_top10.json": ("bluesky", Kind.POST, 0),
    "bluesky_jetstream_v1_commit_docexample_cursorfield.json": ("bluesky", Kind.POST, 0),
}
#: not a JSON answer a replayer reads: checked by the tests further down
OTHER = {
    "bluesky_jetstream_events_pyresky_2025-01-27.jsonl",
    "bluesky_jetstream_events_jsonbench_greptimedb_2024-11-21.jsonl",
    "x_error_404_html_wrong_path_academictwitteR.html",
}


def real(name: str) -> Any:
    return json.loads((REAL / name).read_text(), parse_float=Decimal)


def wire(name: str, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    """The capture's bytes as the API sent them, with the status it had."""
    return Reply(raw=(REAL / name).read_bytes(), status=status, headers=headers or {})


def events(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (REAL / name).read_text().splitlines() if line.strip()]


def test_every_real_payload_is_in_the_table() -> None:
    files = {p.name for p in REAL.iterdir() if p.name != "SOURCES.md"}
    assert files == set(EXPECTED) | OTHER, "a new capture needs its expected outcome here"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_offline_replayer_gives_rows_or_one_reason(name: str, tmp_path: Path) -> None:
    folder, kind, expected = EXPECTED[name]
    (tmp_path / folder).mkdir()
    shutil.copy(REAL / name, tmp_path / folder / name)
    if isinstance(expected, int):
        assert len(replay(tmp_path, kind, now=NOW)) == expected
        return
    with pytest.raises(FatalError, match=expected) as caught:
        replay(tmp_path, kind, now=NOW)
    said = str(caught.value)
    assert "\n" not in said and said.startswith(str(tmp_path / folder / name)) and "re-record it" in said


def test_upbit_keeps_the_wire_digits_and_the_minute() -> None:
    candles = parse_candles(real("upbit_minutes1_rawwire_psy0231_KRW-BTC_2022-09-01.json"), "KRW-BTC", NOW)
    first = real("upbit_minutes1_rawwire_psy0231_KRW-BTC_2022-09-01.json")[-1]  # newest first on the wire
    assert candles[0].event_time == datetime.fromisoformat(first["candle_date_time_utc"]).replace(tzinfo=UTC)
    assert candles[0].candle.open == format(first["opening_price"], "f")  # "27456000.00000000", not a float


def test_an_upbit_time_with_an_offset_is_converted_never_relabelled() -> None:
    body = real("upbit_minutes1_smtm_KRW-BTC_2020-02-20_40.json")
    utc = [c["candle_date_time_utc"] for c in body]
    kst = copy.deepcopy(body)
    for candle in kst:  # the same minutes written in KST with their offset
        candle["candle_date_time_utc"] = candle["candle_date_time_kst"] + "+09:00"
    assert [c.event_time for c in parse_candles(kst, "KRW-BTC", NOW)] == sorted(
        datetime.fromisoformat(t).replace(tzinfo=UTC) for t in utc
    )


def test_an_upbit_candle_from_the_future_is_skipped_with_its_reason(caplog: pytest.LogCaptureFixture) -> None:
    body = real("upbit_minutes1_smtm_KRW-BTC_2020-02-20_40.json")
    newest = max(datetime.fromisoformat(c["candle_date_time_utc"]) for c in body).replace(tzinfo=UTC)
    early = newest - timedelta(hours=1)  # this host's clock an hour behind the exchange's
    with caplog.at_level(logging.WARNING):
        kept = parse_candles(body, "KRW-BTC", early)
    assert all(c.event_time < early for c in kept)
    assert "is in the future" in caplog.text and "check NTP" in caplog.text


@pytest.mark.parametrize(
    ("name", "error", "said"),
    [
        ("coinone_error_107_parameter_probe.json", BadPayload, r"error code '107' \(Parameter value is wrong\)$"),
        ("coinone_error_108_unknown_currency_probe.json", BadPayload, r"'108' \(Unknown CryptoCurrency\)$"),
        ("coinone_error_405_maintenance_ccxt_comment.json", TryLater, "under maintenance: result='error' error code "),
        ("coinone_error_4_ratelimit_docexample_camelcase.json", TryLater, r"rate-limiting.*\(Blocked user access.\)"),
    ],
)
def test_coinone_errors_with_http_200_name_their_code_in_every_spelling(
    name: str, error: type[Exception], said: str
) -> None:
    with api_server() as server:
        server.on("/public/v2/chart/KRW/BTC", wire(name))
        with pytest.raises(error, match=said):
            CoinoneCandles("KRW-BTC", ApiClient(server.url, max_attempts=1)).fetch(None, NOW)
    assert len(server.requests) == 1  # an error answer is not asked again within the run


def test_an_html_page_with_status_200_is_one_clear_line() -> None:
    page = (REAL / "x_error_404_html_wrong_path_academictwitteR.html").read_bytes()
    with api_server() as server:
        server.on("/public/v2/chart/KRW/BTC", Reply(raw=page, headers={"Content-Type": "text/html"}))
        with pytest.raises(BadPayload, match=r"HTTP 200 answered .*, not JSON .*'<!DOCTYPE html>") as caught:
            CoinoneCandles("KRW-BTC", ApiClient(server.url, max_attempts=1)).fetch(None, NOW)
    assert "\n" not in str(caught.value)


def x_client(url: str) -> XRecentSearch:
    return XRecentSearch(SecretStr("t" * 24), "bitcoin", base_url=url, sleep=lambda _: None)


SEARCH = "/2/tweets/search/recent"


@pytest.mark.parametrize(
    ("name", "status", "error", "said"),
    [
        ("x_error_401_academictwitteR.json", 401, FatalError, "HTTP 401, the bearer token is not valid"),
        ("x_error_400_invalid_request_academictwitteR.json", 400, FatalError, "HTTP 400: 1 error: Invalid 'start_"),
        ("x_errors_only_authorization_error_issue26.json", 200, BadPayload, "1 error: Authorization Error: Sorry"),
    ],
)
def test_x_error_answers_through_tweepy_are_one_line(name: str, status: int, error: type[Exception], said: str) -> None:
    with api_server() as x:
        x.on(SEARCH, wire(name, status))
        with pytest.raises(error, match=said) as caught:
            x_client(x.url).sample(None, 10, NOW)
    assert "\n" not in str(caught.value) and len(x.requests) == 1


def test_x_429_as_problem_json_pauses_until_the_reset() -> None:
    with api_server() as x:
        x.on(SEARCH, wire("x_error_429_anascode_doc.json", 429, {"x-rate-limit-reset": "1790000000"}))
        result = x_client(x.url).sample(None, 10, NOW)
    assert result.posts == [] and result.rate_limited_until == 1790000000 and "HTTP 429" in result.stopped_by


@pytest.mark.parametrize("status", [200, 404])
def test_x_html_is_said_with_its_type_and_first_bytes_and_not_retried(status: int) -> None:
    page = (REAL / "x_error_404_html_wrong_path_academictwitteR.html").read_bytes()
    with api_server() as x:
        x.on(SEARCH, Reply(raw=page, status=status, headers={"Content-Type": "text/html;charset=utf-8"}))
        with pytest.raises((BadPayload, FatalError), match=rf"HTTP {status} answered text/html.*'<!DOCTYPE html>"):
            x_client(x.url).sample(None, 10, NOW)
    assert len(x.requests) == 1


def test_x_partial_errors_keep_the_posts_and_are_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    with api_server() as x:
        x.on(SEARCH, wire("x_search_all_academictwitteR_partial_errors_trimmed.json"))
        with caplog.at_level(logging.WARNING):
            result = x_client(x.url).sample(None, 100, NOW)
    assert len(result.posts) == 50 and result.read == 50
    said = [r.getMessage() for r in caplog.records if "errors" in r.getMessage()]
    assert len(said) == 1 and "9 errors: " in said[0] and "Authorization Error" in said[0]


def test_x_counts_keep_only_whole_minutes_and_read_a_partial_edge_again() -> None:
    """A counts answer whose window is not on the minute starts and ends with partial buckets (as X's own
    answers do: `"start": "...T19:18:24.000Z"`): those two minutes are not stored, and the counted minute stops
    before the partial end so the next run reads it whole."""
    from coinstream.x_bill import XBudget, XPrices

    start = datetime(2026, 12, 4, 11, 0, tzinfo=UTC)
    buckets = [{"start": "2026-12-04T11:00:24.000Z", "end": "2026-12-04T11:01:00.000Z", "tweet_count": 3}]
    for m in range(1, 9):
        at = start + timedelta(minutes=m)
        buckets.append(
            {
                "start": f"{at:%Y-%m-%dT%H:%M}:00.000Z",
                "end": f"{at + timedelta(minutes=1):%Y-%m-%dT%H:%M}:00.000Z",
                "tweet_count": m,
            }
        )
    buckets.append({"start": "2026-12-04T11:09:00.000Z", "end": "2026-12-04T11:09:31.000Z", "tweet_count": 2})
    budget = XBudget(XPrices.load(Path(__file__).parents[2] / "deploy" / "prices.json"), 10.0, 100.0, {}, NOW)
    with api_server() as x:
        x.on("/2/tweets/counts/recent", Reply({"data": buckets, "meta": {"total_tweet_count": 44}}))
        result = x_client(x.url).counts(start, start + timedelta(minutes=10), budget, NOW)
    assert [(c.event_time.minute, c.post_count.count) for c in result.counts] == [(m, m) for m in range(1, 9)]
    assert result.whole_end == datetime(2026, 12, 4, 11, 9, tzinfo=UTC)  # 11:09 is read again next run


def bitcoin(event: dict[str, Any]) -> dict[str, Any]:
    """The same event, its post about bitcoin (the captures are about other things)."""
    changed = copy.deepcopy(event)
    changed["commit"]["record"]["text"] = "bitcoin " + changed["commit"]["record"].get("text", "")
    return changed


def test_a_bluesky_post_counts_when_the_network_saw_it_and_keeps_the_authors_date() -> None:
    replies = [
        e
        for e in events("bluesky_jetstream_events_jsonbench_greptimedb_2024-11-21.jsonl")
        if e["commit"]["collection"] == "app.bsky.feed.post"
    ]
    assert len(replies) == 2
    for event in replies:
        post = post_from_event(bitcoin(event), NOW)
        assert post is not None
        seen = datetime.fromtimestamp(event["time_us"] / 1e6, UTC)
        authored = datetime.fromisoformat(event["commit"]["record"]["createdAt"])
        assert abs(post.event_time - seen) < timedelta(microseconds=2) and post.post.authored_at == authored
        assert seen - authored > timedelta(minutes=10)  # the real replies were dated well before the network saw them
        row = enrich(Envelope.from_bytes(post.to_bytes()), NOW)
        assert row["minute_utc"] == f"{seen:%Y-%m-%d %H:%M}:00.000000"  # counted in the network's minute
        assert row["created_at"].startswith(f"{authored:%Y-%m-%d %H:%M:%S}")  # the author's date kept beside it


def test_bluesky_langs_as_a_string_identity_account_and_cursor_fields_pass_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen = events("bluesky_jetstream_events_pyresky_2025-01-27.jsonl")
    seen.append(real("bluesky_jetstream_v1_commit_docexample_cursorfield.json"))
    with caplog.at_level(logging.WARNING):
        assert [post_from_event(e, NOW) for e in seen if e["kind"] != "commit"] == [None, None]
        for event in (e for e in seen if e["kind"] == "commit"):
            post_from_event(bitcoin(event), NOW)
    assert caplog.text == ""
    post = next(e for e in seen if e["kind"] == "commit" and e["commit"]["collection"] == "app.bsky.feed.post")
    one = bitcoin(post)
    one["commit"]["record"]["langs"] = "en"
    made = post_from_event(one, NOW)
    assert made is not None and made.post.lang == "en"


def test_bluesky_post_views_count_at_their_record_keys_time_within_seconds_of_indexed_at() -> None:
    """Real views: each record key is a TID within a second of `indexedAt`, so a post counts at the TID (the time
    the Jetstream path counts it at too); never more than TID_TOLERANCE from the network's time."""
    from producer.sources.bluesky_posts import TID_TOLERANCE, tid_time

    feed = real("bluesky_getTimeline_postviews_skyblue_top10.json")["feed"]
    views = [item["post"] for item in feed]
    posts = [post_from_view(v, NOW, bitcoin_only=False) for v in views]
    assert len(posts) == 10 and all(p is not None for p in posts)
    for view, post in zip(views, posts, strict=True):
        indexed = datetime.fromisoformat(view["indexedAt"])
        written = tid_time(view["uri"].rsplit("/", 1)[-1])
        assert post is not None and written is not None
        assert post.event_time == (written if abs(written - indexed) <= TID_TOLERANCE else indexed)
        assert abs(post.event_time - indexed) <= TID_TOLERANCE
        assert post.post.authored_at == datetime.fromisoformat(view["record"]["createdAt"])


def test_mastodon_statuses_of_every_schema_parse_and_a_null_language_stays_null() -> None:
    old = parse_statuses(real("mastodon_timelines_tag_mastodon_bigbone_2017.json"), NOW)
    assert len(old) == 20 and all(p.post.lang is None for p in old)  # 2017: no `language` at all
    edited = parse_statuses([real("mastodon_status_edited_mastodonpy_localhost.json")], NOW)
    assert len(edited) == 1 and edited[0].post.text


def test_mastodon_pages_follow_the_link_header_and_a_401_names_the_fix() -> None:
    body = real("mastodon_timelines_tag_hoot_mastodonpy_localhost.json")
    newest = body[0]["id"]
    link = (
        f'<http://x/api/v1/timelines/tag/bitcoin?max_id={newest}>; rel="next", '
        f'<http://x/api/v1/timelines/tag/bitcoin?min_id={newest}>; rel="prev"'
    )
    with api_server() as server:
        server.on(
            "/api/v1/timelines/tag/bitcoin",
            wire("mastodon_timelines_tag_hoot_mastodonpy_localhost.json", 200, {"Link": link}),
        )
        page = MastodonTag(ApiClient(server.url)).back(None, NOW)
    assert page.older == {"max_id": newest} and page.newer == {"min_id": newest} and len(page.posts) == 1
    with api_server() as server:
        server.on("/api/v1/timelines/tag/bitcoin", Reply(real("mastodon_timelines_tag_error_401_docexample.json"), 401))
        with pytest.raises(FatalError, match="public feeds disabled.*COINSTREAM_MASTODON_INSTANCES"):
            MastodonTag(ApiClient(server.url)).fetch(None, NOW)


def test_a_partial_edge_bucket_is_not_called_malformed(caplog: pytest.LogCaptureFixture) -> None:
    """X's partial edge buckets are what it always sends for a window off the minute: skipped quietly (info),
    never a WARNING that something was malformed; a partial bucket inside a page still is one."""
    from producer.sources.x_answers import parse_counts

    def bucket(start: str, end: str) -> dict[str, Any]:
        return {"start": f"2026-12-04T11:{start}Z", "end": f"2026-12-04T11:{end}Z", "tweet_count": 1}

    edges = [bucket("00:24", "01:00"), bucket("01:00", "02:00"), bucket("02:00", "02:31")]
    with caplog.at_level("INFO"):
        counted = parse_counts({"data": edges}, "bitcoin", NOW)
    assert [c.event_time.minute for c in counted] == [1]
    assert "malformed" not in caplog.text and "partial edge" in caplog.text
    from coinstream.errors import BadPayload

    with pytest.raises(BadPayload, match="buckets of 31 s, not one minute"):
        parse_counts({"data": [edges[1], bucket("02:00", "02:31"), bucket("03:00", "04:00")]}, "q", NOW)
