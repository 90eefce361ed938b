"""Records per second per core of the consumer's pure core: parse, dedupe, enrich, batch (`consumer.route`).

    python -m benchmarks.processor [--records 100000] [--runs 7] [--smoke] [--results FILE]

Runs in one process (one core). Prints the median of several runs of the core with the native path for posts
(when coinstream-native is installed) and without it and, as baselines measured in the same run on the same
bytes, plain `json.loads` and `orjson.loads` (the floor any parser pays).
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
from benchmarks.results import Figure, options, publish
from coinstream.records import Envelope, Kind
from consumer.dedupe import Deduper
from consumer.firehose_sink import calls, pack, row_line
from consumer.native import PostRows, post_rows
from consumer.route import route

#: The native path for posts where coinstream-native is installed (`make setup` builds it).
NATIVE = post_rows()


def run_core(records: list[bytes], post_rows: PostRows | None = NATIVE, batch: int = 10_000) -> int:
    """What the record processor does (`consumer.route.route` per KCL batch of `batch` records, one Deduper
    throughout), minus the network: the Firehose records it would send."""
    rows: dict[Kind, list[bytes]] = {}
    rejected: list[str] = []
    deduper = Deduper()
    now = datetime.now(UTC)
    for start in range(0, len(records), batch):
        route(
            records[start : start + batch],
            now,
            deduper,
            add=lambda i, kind, row: rows.setdefault(kind, []).append(row_line(row)),
            reject=lambda i, why: rejected.append(why),
            post_rows=post_rows,
            add_lines=lambda kind, lines, at: rows.setdefault(kind, []).extend(lines),
        )
    assert not rejected, rejected[:3]
    return sum(len(batch) for kind_rows in rows.values() for batch in calls(list(pack(kind_rows))))


def run_python_core(records: list[bytes]) -> int:
    """The same without the native path: every record parsed against the contract and enriched in Python."""
    return run_core(records, post_rows=None)


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
    authored_at: datetime | None = None


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


def measure(fns: dict[str, Callable[[list[bytes]], int]], records: list[bytes], runs: int) -> dict[str, list[float]]:
    """Seconds of each function per run, the functions taking turns within every run: on a shared machine a slow
    moment then slows all of them alike, and their ratios within one run stay comparable."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn(records)
            times[name].append(time.perf_counter() - start)
    return times


def ratio(times: dict[str, list[float]], slow: str, fast: str) -> float:
    """The median over runs of slow/fast within each run."""
    return statistics.median(a / b for a, b in zip(times[slow], times[fast], strict=True))


def main() -> None:
    parser = options(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    if args.smoke:
        args.records, args.runs = 2_000, 1
    records = corpus(args.records)
    size = sum(len(r) for r in records)
    if NATIVE is None:
        print("coinstream-native is not installed (make setup builds it where cargo is): the core runs in Python")
    times = measure(
        {
            "core": run_core,
            "python_core": run_python_core,
            "json": baseline,
            "orjson": baseline_orjson,
            "contract": parse_msgspec,
            "lean": parse_lean_pydantic,
        },
        records,
        args.runs,
    )
    core, python_core, contract, lean = (
        statistics.median(times[name]) for name in ("core", "python_core", "contract", "lean")
    )
    firehose_records = run_core(records)
    n = len(records)
    print(f"corpus: {n:,} records, {size / 1e6:.1f} MB, KCL batches of 10,000, median of {args.runs} runs, 1 core")
    print(f"{firehose_records:,} Firehose records (~5 KB each) for {n:,} stream records")
    path = "native path for posts" if NATIVE is not None else "Python path (coinstream-native not installed)"
    publish(
        "processor",
        f"python -m benchmarks.processor --records {args.records} --runs {args.runs}",
        [
            Figure(
                "processor.core",
                f"consumer core, {n:,} realistic records, {path}",
                n / core,
                "records/s",
                baseline=n / python_core,
                baseline_what="the Python path for every record",
                ratio=ratio(times, "python_core", "core"),
                ratio_what="faster",
            ),
            Figure(
                "processor.core_vs_orjson",
                "the core's time against `orjson.loads` alone on the same bytes (the floor of a parse in Python)",
                ratio(times, "core", "orjson"),
                "x",
            ),
            Figure(
                "processor.contract",
                "record contract alone (msgspec), decode and check",
                n / contract,
                "records/s",
                baseline=n / lean,
                baseline_what="the same contract as a lean pydantic model",
                ratio=ratio(times, "lean", "contract"),
                ratio_what="faster",
            ),
        ],
        args,
    )


if __name__ == "__main__":
    main()
