"""Whatever arrives, only coinstream's own errors come out, and no stored number differs from its text.

Inputs are arbitrary JSON values and recorded API answers with parts replaced by arbitrary JSON
(the near-misses real APIs send); the contract path runs stream bytes through parse, enrich and the row.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Context, Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coinstream.errors import CoinstreamError
from coinstream.records import Envelope, Kind
from consumer.enrich import enrich
from producer.sources.bluesky_posts import post_from_event
from producer.sources.coinone import parse_chart
from producer.sources.mastodon import parse_statuses
from producer.sources.upbit import parse_candles
from producer.sources.x_answers import parse_counts, parse_recent_search
from tests.conftest import payload

NOW = datetime(2026, 11, 28, 12, 0, 30, tzinfo=UTC)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
numberish = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["nan", "NaN", "inf", "-Infinity", "1e999", "-1", "12x", "", " ", "1" * 40, "0.000000001"]),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.integers(),
    st.floats(),
    st.none(),
)
RELAXED = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _paths(value: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON value (dict keys and list indexes)."""
    out = [here]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*here, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:3]):
            out += _paths(v, (*here, i))
    return out


@st.composite
def mutated(draw: st.DrawFn, recorded: Any) -> Any:
    """A recorded answer with one to three places replaced by arbitrary JSON (or a number-like oddity)."""
    body = copy.deepcopy(recorded)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(body) if p]
        if not paths:
            return draw(json_values)
        path = draw(st.sampled_from(paths))
        parent = body
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = draw(numberish | json_values)
    return body


def _only_our_errors(parse: Any, body: Any) -> list[Envelope]:
    try:
        return list(parse(body))
    except CoinstreamError:
        return []


PARSERS = {
    "coinone/chart_KRW_BTC_1m.json": lambda b: parse_chart(b, "KRW-BTC", NOW),
    "upbit/candles_KRW_BTC_1m.json": lambda b: parse_candles(b, "KRW-BTC", NOW),
    "x/recent_search_page1.json": lambda b: parse_recent_search(b, NOW),
    "x_counts/counts_recent_minute.json": lambda b: parse_counts(b, "q", NOW),
    "mastodon/tag_bitcoin.json": lambda b: parse_statuses(b, NOW),
    "bluesky/jetstream_events.json": lambda b: (
        [p for p in (post_from_event(e, NOW) for e in b) if p] if isinstance(b, list) else []
    ),
}


def _check_parser(name: str, body: Any) -> None:
    for envelope in _only_our_errors(PARSERS[name], body):
        _check_row(Envelope.from_bytes(envelope.to_bytes()))


def _check_row(envelope: Envelope) -> None:
    row = enrich(envelope, NOW)
    json.dumps(row, ensure_ascii=False)
    if envelope.kind is Kind.CANDLE:
        c = envelope.candle
        for field in ("open", "high", "low", "close", "volume"):
            assert Decimal(row[field]) == Decimal(getattr(c, field)).quantize(
                Decimal("1e-8"), context=Context(prec=40)
            ) or Decimal(row[field]) == Decimal(getattr(c, field))


for _name in PARSERS:

    def _make(name: str) -> Any:
        @RELAXED
        @given(body=mutated(payload(name)))
        def test(body: Any) -> None:
            _check_parser(name, body)

        @RELAXED
        @given(body=json_values)
        def test_any(body: Any) -> None:
            _check_parser(name, body)

        return test, test_any

    _near, _any = _make(_name)
    _stem = _name.split("/")[0]
    globals()[f"test_{_stem}_near_misses_raise_only_our_errors"] = _near
    globals()[f"test_{_stem}_any_json_raises_only_our_errors"] = _any


@st.composite
def envelopes(draw: st.DrawFn) -> bytes:
    """Stream bytes shaped like envelopes, with arbitrary values where the contract is strict."""
    kind = draw(st.sampled_from(["candle", "post", "post_count", "nope", 3, None]))
    when = draw(
        st.sampled_from(
            ["2026-11-28T12:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-11-28T12:00:00", "x"]
        )
    )
    figures = {k: draw(numberish) for k in ("open", "high", "low", "close", "volume", "quote_volume")}
    body: dict[str, Any] = {
        "v": 1,
        "kind": kind,
        "source": draw(st.sampled_from(["coinone", "x", "", "s" * 40])),
        "key": draw(st.text(min_size=0, max_size=300)),
        "event_time": when,
        "fetched_at": "2026-11-28T12:01:00Z",
        "payload": draw(
            st.sampled_from(
                [
                    {"market": draw(st.sampled_from(["KRW-BTC", "", "krw", 5])), **figures},
                    {"post_id": draw(numberish), "text": draw(numberish), "is_retweet": draw(json_values)},
                    {"query": "q", "count": draw(numberish)},
                    draw(json_values),
                ]
            )
        ),
    }
    return json.dumps(body).encode()


@settings(max_examples=400, deadline=None)
@given(data=envelopes() | st.binary(max_size=60))
def test_stream_bytes_become_a_row_or_a_skippable_error(data: bytes) -> None:
    try:
        envelope = Envelope.from_bytes(data)
    except CoinstreamError:
        return
    _check_row(envelope)
