"""The native path for posts (native/, coinstream_native) against the Python path it stands in for.

Sound: every record it accepts is one the contract accepts, and its line is byte for byte the line
`row_line(enrich(Envelope.from_bytes(data), now))` writes. Useful: posts in their usual shape take it.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from benchmarks.corpus import corpus
from coinstream.errors import SkippableError
from coinstream.records import Envelope, Kind, post
from consumer.dedupe import Deduper
from consumer.enrich import enrich, stamp
from consumer.firehose_sink import row_line
from consumer.native import post_rows
from consumer.route import route
from tests.conftest import make_candle, make_post

NATIVE = post_rows()
pytestmark = pytest.mark.skipif(
    NATIVE is None and not os.environ.get("COINSTREAM_REQUIRE_NATIVE"),
    reason="coinstream-native is not installed (make setup builds it where cargo is)",
)
NOW = datetime(2026, 11, 27, 12, 1, 5, 123456, tzinfo=UTC)


def native(data: bytes) -> tuple[str, bytes] | None:
    assert NATIVE is not None, "coinstream-native is not installed: pip install ./native (needs cargo)"
    (key,), (line,) = NATIVE([data], stamp(NOW))
    assert (key is None) == (line is None)
    return None if key is None or line is None else (key, line)


def python_path(data: bytes) -> tuple[str, bytes]:
    envelope = Envelope.from_bytes(data)
    return envelope.key, row_line(enrich(envelope, NOW))


def assert_sound(data: bytes) -> bool:
    """The native answer, if any, is the Python path's; True when the native path took the record."""
    hit = native(data)
    if hit is not None:
        assert hit == python_path(data), data
    return hit is not None


def test_word_characters_are_pythons_on_every_code_point_it_claims_to_know() -> None:
    import coinstream_native

    table = coinstream_native.word_table()
    word = re.compile(r"\w")
    known = [code for code in range(0x110000) if table[code] != 2]
    assert len(known) > 30_000  # ASCII, Latin, Greek, Cyrillic, CJK, kana, Hangul, emoji...
    wrong = [hex(code) for code in known if (table[code] == 1) != bool(word.fullmatch(chr(code)))]
    assert not wrong


def test_characters_it_keeps_when_lowering_python_keeps_too_on_every_code_point() -> None:
    import coinstream_native

    table = coinstream_native.case_stable_table()
    wrong = [hex(code) for code in range(0x110000) if table[code] and chr(code).lower() != chr(code)]
    assert not wrong


def test_every_post_of_the_benchmark_corpus_takes_the_native_path_with_the_python_paths_line() -> None:
    records = corpus(3_000)
    took = sum(assert_sound(data) for data in records)
    posts = sum(Envelope.from_bytes(data).kind == Kind.POST for data in records)
    assert took == posts > 2_500


# Characters where the two paths could part: escapes, cased letters outside ASCII, marks, signs next to words.
_TRICKY = [
    *'aZ09_#$ .,!/"\\\n\t\x00\x1f\x7f',
    *"éÉßΣ\u03c3ςİ\u212aÅǅŉ",  # cased beyond ASCII (U+212A is the Kelvin sign)
    *"\u0301\u3099\u0345\u200d\ufe0f\u2028",  # combining marks, joiners, the line separator
    *"비트코인ビットコインー比特币仮想通貨\uff41\uff22\uff11",  # full-width a, B, 1
    *"🧵🚀🇰🇷🅰",
    "btc",
    "BTC",
    "Bitcoin",
    "#btc",
    "$BTC",
    "#비트코인",
    "$ABCDEFGHIJK",
]


def _texts(max_size: int) -> st.SearchStrategy[str]:
    piece = st.one_of(st.sampled_from(_TRICKY), st.characters(codec="utf-8"))
    return st.lists(piece, max_size=max_size).map("".join)


_ID = st.text(st.characters(codec="utf-8"), min_size=1, max_size=140)
_TIME = st.datetimes(min_value=datetime(2009, 1, 1), max_value=datetime(2100, 1, 2), timezones=st.just(UTC)).map(
    lambda at: at.replace(microsecond=at.microsecond if at.microsecond % 3 else 0)
)


@settings(max_examples=400, deadline=None)
@given(
    text=_texts(40),
    post_id=_ID,
    source=st.sampled_from(["x", "bluesky", "mastodon", "s" * 32]),
    created=_TIME,
    fetched=_TIME,
    author=st.none() | _ID,
    lang=st.none() | st.text(max_size=18),
    flags=st.tuples(st.booleans(), st.booleans(), st.booleans()),
)
@example(
    text="#Bitcoin🚀 $btc #BTC #비트코인ー $ETH_ wbtc btc", post_id="1", source="x",
    created=datetime(2026, 12, 31, 15, 0, 1, tzinfo=UTC), fetched=datetime(2026, 12, 31, 15, 1, tzinfo=UTC),
    author=None, lang="", flags=(False, True, False),
)  # fmt: skip
def test_a_post_gets_the_python_paths_line_byte_for_byte_or_goes_the_python_way(
    text: str,
    post_id: str,
    source: str,
    created: datetime,
    fetched: datetime,
    author: str | None,
    lang: str | None,
    flags: tuple[bool, bool, bool],
) -> None:
    try:
        envelope = post(
            source,
            post_id,
            created,
            fetched,
            text=text,
            author_id=author,
            lang=lang,
            is_retweet=flags[0],
            is_reply=flags[1],
            simulated=flags[2],
        )
    except SkippableError:  # outside the contract: a record no producer sends; the mutations test covers those
        return
    assert_sound(envelope.to_bytes())


def _valid() -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(make_post("42", text="gm #bitcoin $BTC 비트코인").to_bytes())
    return data


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=5), inner, max_size=2),
    max_leaves=4,
)
_TIMES = st.sampled_from(
    [
        "2026-11-27T12:00:05Z",
        "2026-11-27T12:00:05.5Z",
        "2026-11-27T12:00:05.1234567Z",
        "2026-11-27T12:00:05+00:00",
        "2026-11-27T21:00:05+09:00",
        "2026-11-27t12:00:05z",
        "2026-11-27 12:00:05Z",
        "2026-11-27T12:00:05",
        "2026-02-29T12:00:05Z",
        "2024-02-29T12:00:05Z",
        "2026-11-27T24:00:00Z",
        "2026-11-27T12:00:60Z",
        "2009-01-02T23:59:59.999999Z",
        "2100-01-01T00:00:00Z",
        "2100-01-01T00:00:00.000001Z",
        "\uff11\uff12\uff13\uff14-11-27T12:00:05Z",  # full-width digits,
    ]
)
_FIELDS = ["kind", "v", "source", "key", "event_time", "fetched_at", "payload", "extra"]
_PAYLOAD_FIELDS = ["post_id", "text", "author_id", "lang", "is_retweet", "is_reply", "simulated", "count", "extra"]


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    data = _valid()
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(["envelope", "payload"]))
        target = data if where == "envelope" or not isinstance(data.get("payload"), dict) else data["payload"]
        name = draw(st.sampled_from(_FIELDS if target is data else _PAYLOAD_FIELDS))
        action = draw(st.sampled_from(["set", "delete", "time", "long"]))
        if action == "delete":
            target.pop(name, None)
        elif action == "time":
            target[name] = draw(_TIMES)
        elif action == "long":
            target[name] = draw(st.sampled_from(["", "a" * 16, "a" * 17, "a" * 32, "a" * 33, "é" * 128, "é" * 129]))
        else:
            target[name] = draw(_JSON)
    raw = orjson.dumps(data)
    if draw(st.booleans()):  # the same object spelled another way: spaces, escapes, a repeated field
        raw = draw(
            st.sampled_from(
                [
                    raw.replace(b":", b" : "),
                    raw.replace(b'"v"', b'"\\u0076"'),
                    raw[:-1] + b',"kind":"post"}',
                    raw[:-1] + b',"v":1}',
                    raw + b" x",
                    raw.replace(b"gm", b"g\\u0000m"),
                    raw.replace(b"gm", b"\\ud800"),
                    raw.replace(b"gm", b"g\xffm"),  # not UTF-8
                    raw.replace(b"gm", b"g\xed\xa0\x80m"),  # a surrogate written out as UTF-8
                ]
            )
        )
    return raw


@settings(max_examples=600, deadline=None)
@given(data=_mutated())
def test_a_record_the_native_path_takes_is_one_the_contract_takes_with_the_same_line(data: bytes) -> None:
    hit = native(data)
    if hit is None:
        return
    try:
        expected = python_path(data)
    except SkippableError as exc:
        pytest.fail(f"the native path took a record the contract refuses ({exc}): {data!r}")
    assert hit == expected


_LEFT_TO_PYTHON = {
    "a candle": lambda: make_candle(1).to_bytes(),
    "a time with an offset": lambda: _valid_bytes(event_time="2026-11-27T21:00:05+09:00"),
    "seven fraction digits": lambda: _valid_bytes(fetched_at="2026-11-27T12:00:05.1234567Z"),
    "a text with a cased letter beyond ASCII": lambda: _valid_bytes(text="ΣΤΟ ΦΕΓΓΑΡΙ bitcoin"),
    "a tag next to a character it does not know": lambda: _valid_bytes(text="#btc\u0e31"),
    "a text over its column": lambda: _valid_bytes(text="a" * 65536),
    "more hashtags than surely fit their column": lambda: _valid_bytes(text=" ".join(f"#t{i:04d}" for i in range(200))),
    "an author's clock beside the network's": lambda: post(
        "bluesky", "at://did:plc:a/p/1", datetime(2019, 5, 1, tzinfo=UTC), NOW, text="bitcoin", seen_at=NOW
    ).to_bytes(),
}


@pytest.mark.parametrize("why", list(_LEFT_TO_PYTHON))
def test_the_python_path_decides_what_the_native_path_leaves(why: str) -> None:
    data = _LEFT_TO_PYTHON[why]()
    assert native(data) is None
    python_path(data)  # a valid record all the same: the Python path takes it


def _valid_bytes(**changes: Any) -> bytes:
    data = _valid()
    for name, value in changes.items():
        (data["payload"] if name in data["payload"] else data)[name] = value
    return orjson.dumps(data)


def test_a_poll_routes_each_record_once_whichever_path_takes_it() -> None:
    first = make_post("1", text="#btc")
    records = [
        first.to_bytes(),
        make_candle(1).to_bytes(),
        first.to_bytes(),  # a duplicate of a post the native path took
        b"garbage",
        _valid_bytes(event_time="2026-11-27T21:00:05+09:00"),  # the Python path
        make_post("1", text="#btc").to_bytes(),
    ]
    rows: list[tuple[int, Kind, bytes]] = []
    rejected: list[int] = []
    deduper = Deduper()
    route(
        records,
        NOW,
        deduper,
        add=lambda i, kind, row: rows.append((i, kind, row_line(row))),
        reject=lambda i, why: rejected.append(i),
        post_rows=NATIVE,
        add_lines=lambda kind, lines, at: rows.extend(zip(at, [kind] * len(at), lines, strict=True)),
    )
    # the native path's rows come first, once per batch
    assert [(i, kind) for i, kind, _ in rows] == [(0, Kind.POST), (1, Kind.CANDLE), (4, Kind.POST)]
    assert rows[0][2] == python_path(records[0])[1]
    assert rejected == [3] and deduper.dropped == 2


def test_a_candle_whose_key_a_native_post_took_first_is_still_admitted_as_a_replacement() -> None:
    deduper = Deduper()
    candle = make_candle(1)
    assert deduper.admit_posts([None, candle.key]) == [1]  # a post known by its key alone: no fetch time
    assert deduper.admit(candle) and deduper.replaced == 1
    assert not deduper.admit(candle) and deduper.dropped == 1


def test_terms_match_the_python_definition_through_the_native_path() -> None:
    for text in ["wbtc btc2 BTC!", "Bitcoin", "#BTC", "$btc", "btc_", "비트코인", "ビットコイン", "比特币"]:
        data = make_post("7", text=text).to_bytes()
        hit = native(data)
        assert hit is not None and hit == python_path(data), text
        assert orjson.loads(hit[1])["matched_terms"] == orjson.loads(python_path(data)[1])["matched_terms"]


@pytest.mark.parametrize(
    "at",
    [
        datetime(2026, 12, 31, 15, 0, 0, tzinfo=UTC),  # KST's new year
        datetime(2028, 2, 28, 14, 59, 59, 999999, tzinfo=UTC),  # into a leap day in KST
        datetime(2100, 1, 1, tzinfo=UTC),  # the last instant the contract takes
    ],
)
def test_times_at_the_edges_of_days_and_of_the_contract_are_written_as_python_writes_them(at: datetime) -> None:
    data = _valid_bytes(event_time=at.isoformat().replace("+00:00", "Z"))
    assert native(data) is not None
    assert_sound(data)
