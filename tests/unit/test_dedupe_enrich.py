from __future__ import annotations

import itertools
import json
import re
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from coinstream import REPO_ROOT
from coinstream.text import DEFAULT_TERMS, matched_terms
from consumer.dedupe import Deduper
from consumer.enrich import decimal_column, enrich, fit_list
from tests.conftest import FETCHED, make_candle, make_post


def test_memory_is_bounded_and_oldest_keys_are_forgotten_first() -> None:
    d = Deduper(capacity=3)
    for i in range(5):
        assert d.admit(make_post(str(i)))
    assert len(d) == 3
    assert d.admit(make_post("0"))  # forgotten: left to the warehouse views
    assert not d.admit(make_post("4"))


def test_a_recently_seen_key_stays_remembered() -> None:
    d = Deduper(capacity=2)
    d.admit(make_post("a"))
    d.admit(make_post("b"))
    assert not d.admit(make_post("a"))  # touches "a"
    d.admit(make_post("c"))  # evicts "b", not "a"
    assert not d.admit(make_post("a"))


def test_post_row_is_enriched() -> None:
    post = make_post("1", text="Is #Bitcoin up? $btc and $ETH, 비트코인 #BTC #bitcoin", minute=4)
    post = replace(post, **{"payload": replace(post.payload, **{"is_retweet": True})})
    row = enrich(post, datetime(2026, 11, 27, 12, 5, tzinfo=UTC))
    assert row["minute_utc"] == "2026-11-27 12:04:00.000000"
    assert row["created_at_kst"] == "2026-11-27 21:04:17"
    assert row["hashtags"] == ["bitcoin", "btc"] and row["cashtags"] == ["BTC", "ETH"]
    assert row["matched_terms"] == ["bitcoin", "비트코인", "btc", "#bitcoin", "#btc", "$btc"]
    assert row["is_retweet"] is True and row["is_reply"] is False and row["lang"] == "en"
    assert row["processed_at"] == "2026-11-27 12:05:00.000000" and row["simulated"] is False


def test_candle_row_keeps_numbers_exact_and_shows_kst() -> None:
    row = enrich(make_candle(59, volume="0.12345678"), FETCHED)
    assert row["volume"] == "0.12345678" and row["minute_kst"] == "2026-11-27 21:59:00"
    assert row["record_key"] == "coinone:KRW-BTC:2026-11-27T12:59Z"


def test_btc_matches_only_as_a_word() -> None:
    assert matched_terms("BTC to the moon") == ["btc"]
    assert matched_terms("wbtcx is not it") == []


def test_a_huge_post_fits_its_columns_and_says_it_was_cut() -> None:
    from coinstream import records
    from consumer.enrich import CASHTAGS_BYTES, HASHTAGS_BYTES, TEXT_BYTES
    from consumer.firehose_sink import MAX_BYTES_PER_RECORD

    text = " ".join(f"#비트코인{i} $BTC{i % 999}" for i in range(20_000))  # ~496 KB of tags, as the issue found
    post = records.post("x", "1", FETCHED, FETCHED, text=text)
    row = enrich(post, FETCHED)
    encoded = json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode()
    assert row["truncated"] is True and len(encoded) < MAX_BYTES_PER_RECORD
    assert len(row["text"].encode()) <= TEXT_BYTES and text.startswith(row["text"])
    assert len(json.dumps(row["hashtags"], ensure_ascii=False, separators=(",", ":")).encode()) <= HASHTAGS_BYTES
    assert len(json.dumps(row["cashtags"], ensure_ascii=False, separators=(",", ":")).encode()) <= CASHTAGS_BYTES
    assert enrich(records.post("x", "2", FETCHED, FETCHED, text="#bitcoin up"), FETCHED)["truncated"] is False


def test_a_wide_price_is_rounded_to_the_columns_scale_not_refused() -> None:
    # 21 digits before the point and 9 after: past the default decimal context's 28 digits, within DECIMAL(38, 8)
    # (found by the property test of coinone's near-miss answers)
    assert decimal_column("102922537955748077209.802576849") == "102922537955748077209.80257685"
    assert decimal_column("999999999999999999999999999999.123456789") == "999999999999999999999999999999.12345679"


def test_more_than_8_places_are_rounded_half_even_in_the_consumer_as_the_guarantees_say() -> None:
    """Real answers carry more places than DECIMAL(38,8) keeps: Coinbase's float noise, OKX's 9-place quote volumes.
    The consumer rounds them half-even (a tie goes to the even digit), so no warehouse rounds them its own way."""
    assert decimal_column("22.028889700000004") == "22.02888970"
    assert decimal_column("123.456789125") == "123.45678912"  # a tie: to the even 2, not up
    assert decimal_column("123.456789135") == "123.45678914"  # a tie: to the even 4
    assert "rounded half-even to 8 places in the consumer" in (REPO_ROOT / "docs" / "guarantees.md").read_text()


def _texts(pieces: list[str], max_pieces: int) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(pieces), max_size=max_pieces).map("".join)


_WORDS = _texts([*'ab#$_1 é비İß"\\\x01', "btc", "BTC", "bitcoin", "😀"], 20)


@settings(max_examples=300, deadline=None)
@given(items=st.lists(_WORDS, max_size=12), max_bytes=st.integers(min_value=0, max_value=400))
@example(items=["\x01" * 10], max_bytes=60)  # each character escaped as \u0001: 64 bytes, not 54
def test_fit_list_keeps_the_longest_prefix_whose_json_fits(items: list[str], max_bytes: int) -> None:
    kept, cut = fit_list(items, max_bytes)
    fitting = [n for n in range(len(items) + 1) if len(orjson.dumps(items[:n])) <= max_bytes]
    want = max(fitting, default=0)  # the empty array's "[]" is the column's floor
    assert (kept, cut) == (items[:want], want < len(items))


@settings(max_examples=300, deadline=None)
@given(text=_texts([*list("ab #$_1é비"), "btc", "BTC", "wbtc", "Bitcoin", "#BTC", "$btc"], 60))
def test_tags_and_terms_of_a_post_follow_their_definitions(text: str) -> None:
    row = enrich(make_post("1", text=text), FETCHED)
    assert row["hashtags"] == sorted({t.lower() for t in re.findall(r"(?<![\w#])#(\w+)", text)})
    assert row["cashtags"] == sorted({t.upper() for t in re.findall(r"(?<![\w$])\$([A-Za-z][A-Za-z0-9]{0,9})\b", text)})
    lowered = text.lower()
    words = re.findall(r"[a-z0-9]+", lowered)
    assert row["matched_terms"] == [t for t in DEFAULT_TERMS if ("btc" in words if t == "btc" else t in lowered)]


@settings(max_examples=300, deadline=None)
@given(
    whole=st.from_regex(r"0|[1-9][0-9]{0,29}", fullmatch=True),
    places=st.none() | st.from_regex(r"[0-9]{1,12}", fullmatch=True),
)
def test_a_decimal_column_is_what_decimal_writes_back_at_the_columns_scale(whole: str, places: str | None) -> None:
    text = whole if places is None else f"{whole}.{places}"
    number = Decimal(text)
    if number.as_tuple().exponent < -8:  # type: ignore[operator]
        number = number.quantize(Decimal("1e-8"), rounding=ROUND_HALF_EVEN, context=Context(prec=40))
    assert decimal_column(text) == format(number, "f")


@settings(max_examples=200, deadline=None)
@given(
    ids=st.lists(st.sampled_from("abcdefg"), max_size=30),
    cuts=st.lists(st.integers(0, 30), max_size=4),
    capacity=st.integers(1, 5),
)
def test_posts_admitted_by_key_in_batches_pass_and_are_remembered_as_one_by_one(
    ids: list[str], cuts: list[int], capacity: int
) -> None:
    one_by_one, by_key = Deduper(capacity), Deduper(capacity)
    expected = [one_by_one.admit(make_post(i)) for i in ids]
    keys = [make_post(i).key for i in ids]
    admitted: list[bool] = []
    bounds = [0, *sorted(min(c, len(keys)) for c in cuts), len(keys)]
    for start, stop in itertools.pairwise(bounds):
        batch = [None, *keys[start:stop]]  # None: a record the native path left to Python
        fresh = set(by_key.admit_posts(batch))
        admitted += [i in fresh for i in range(1, len(batch))]
    assert admitted == expected
    assert list(by_key._seen) == list(one_by_one._seen) and by_key.dropped == one_by_one.dropped
