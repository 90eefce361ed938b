"""Records per second per core of the consumer's pure core: parse, dedupe, enrich, batch.

    python -m benchmarks.processor [--records 100000] [--runs 5]

Runs in one process (one core). Prints the median of several runs and, as a baseline measured
in the same run on the same bytes, plain `json.loads` (the floor any parser pays).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictBool, TypeAdapter

from benchmarks.corpus import corpus
from coinstream.records import Envelope
from consumer.dedupe import Deduper
from consumer.enrich import enrich
from consumer.firehose_sink import calls, pack, row_line


def run_core(records: list[bytes]) -> int:
    """What the record processor does per batch, minus the network: the rows it would send."""
    deduper = Deduper()
    now = datetime.now(UTC)
    rows: dict[str, list[bytes]] = {"candle": [], "post": []}
    for data in records:
        envelope = Envelope.from_bytes(data)
        if deduper.admit(envelope):
            row = enrich(envelope, now)
            rows[envelope.kind.value].append(row_line(row))
    return sum(len(batch) for kind_rows in rows.values() for batch in calls(list(pack(kind_rows))))


def baseline(records: list[bytes]) -> int:
    """Only json.loads of every record."""
    return sum(1 for data in records if json.loads(data))


def baseline_orjson(records: list[bytes]) -> int:
    """Only orjson.loads of every record: the floor of a parse in Python."""
    return sum(1 for data in records if orjson.loads(data))


_D = Annotated[str, Field(max_length=80, pattern=r"^(?:0|[1-9][0-9]{0,29})(?:\.[0-9]+)?$")]


class _Lean(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _LeanCandle(_Lean):
    simulated: StrictBool = False
    market: Annotated[str, Field(min_length=3, max_length=32, pattern=r"^[A-Z0-9]+-[A-Z0-9]+$")]
    open: _D
    high: _D
    low: _D
    close: _D
    volume: _D
    quote_volume: _D | None = None


class _LeanPost(_Lean):
    simulated: StrictBool = False
    post_id: Annotated[str, Field(min_length=1, max_length=128)]
    text: str = ""
    author_id: Annotated[str, Field(max_length=128)] | None = None
    lang: Annotated[str, Field(max_length=16)] | None = None
    is_retweet: StrictBool = False
    is_reply: StrictBool = False


class _LeanEnvelope(_Lean):
    v: Literal[1]
    source: Annotated[str, Field(min_length=1, max_length=32)]
    key: Annotated[str, Field(min_length=1, max_length=256)]
    event_time: datetime
    fetched_at: datetime


class _LeanCandleEnvelope(_LeanEnvelope):
    kind: Literal["candle"]
    payload: _LeanCandle


class _LeanPostEnvelope(_LeanEnvelope):
    kind: Literal["post"]
    payload: _LeanPost


#: The contract as a lean pydantic model (types, lengths, patterns and a tagged union, no Python validators):
#: the alternative issue 12 asked to measure against msgspec's structs.
LEAN_PYDANTIC: TypeAdapter[Any] = TypeAdapter(
    Annotated[_LeanCandleEnvelope | _LeanPostEnvelope, Field(discriminator="kind")]
)


def parse_msgspec(records: list[bytes]) -> int:
    """Only decode and check every record with the contract (msgspec structs)."""
    for data in records:
        Envelope.from_bytes(data)
    return len(records)


def parse_lean_pydantic(records: list[bytes]) -> int:
    """Only decode and check every record with the lean pydantic model."""
    return sum(1 for data in records if LEAN_PYDANTIC.validate_json(data))


def measure(fn: Callable[[list[bytes]], int], records: list[bytes], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(records)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    records = corpus(args.records)
    size = sum(len(r) for r in records)
    core = statistics.median(measure(run_core, records, args.runs))
    floor = statistics.median(measure(baseline, records, args.runs))
    fast_floor = statistics.median(measure(baseline_orjson, records, args.runs))
    contract = statistics.median(measure(parse_msgspec, records, args.runs))
    lean = statistics.median(measure(parse_lean_pydantic, records, args.runs))
    firehose_records = run_core(records)
    print(f"corpus: {len(records):,} records, {size / 1e6:.1f} MB, median of {args.runs} runs, 1 core")
    print(f"processor core (parse+dedupe+enrich+batch): {len(records) / core:,.0f} records/s  ({core:.2f} s)")
    print(f"baseline json.loads only:                   {len(records) / floor:,.0f} records/s  ({floor:.2f} s)")
    print(
        f"baseline orjson.loads only:                 {len(records) / fast_floor:,.0f} records/s  ({fast_floor:.2f} s)"
    )
    print(
        f"decode+check only, the contract (msgspec): {len(records) / contract:,.0f} records/s  ({contract:.2f} s); "
        f"a lean pydantic model of it: {len(records) / lean:,.0f} records/s ({lean / contract:.1f}x slower)"
    )
    print(
        f"core costs {core / floor:.1f}x json.loads and {core / fast_floor:.1f}x orjson.loads; "
        f"{firehose_records:,} Firehose records "
        f"(~5 KB each) for {len(records):,} stream records"
    )


if __name__ == "__main__":
    main()
