"""`coinstream doctor`: each configured source and AWS endpoint, one line each: what works, what to fix."""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import ValidationError

from coinstream.aws import classify, client
from coinstream.config import Pipeline, Settings
from coinstream.delivery import load_delivery_streams
from coinstream.errors import CoinstreamError
from coinstream.records import Kind
from coinstream.x_bill import XBudget, XPrices, usd
from producer.run import run_name
from producer.sources.registry import SOURCES
from producer.sources.x_search import XCursor
from producer.state import StateFile


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    ok: bool
    what: str
    detail: str


def _run(what: str, probe: Callable[[], str], fix: str) -> Check:
    try:
        return Check(True, what, probe())
    except CoinstreamError as exc:
        return Check(False, what, f"{exc} -> {fix}")
    except Exception as exc:
        return Check(False, what, f"{classify(exc, what)} -> {fix}")


def checks(settings: Settings, pipeline: Pipeline) -> Iterator[Check]:
    """Every check, in order: tools, AWS (or the local stack), then the data sources."""
    from consumer.daemon import check_java_and_jars

    yield _run("java + KCL jars", lambda: f"{check_java_and_jars()}", "install a JDK >= 11 and run `make setup`")
    if settings.target == "local":
        yield _run("node", lambda: shutil.which("node") or _missing("node"), "install Node >= 18")
    where = "local stack" if settings.target == "local" else "AWS"
    fix = "run `coinstream local up`" if settings.target == "local" else "check credentials, region and the stack"

    def stream() -> str:
        s = client("kinesis", settings).describe_stream_summary(StreamName=pipeline.stream_name)
        summary = s["StreamDescriptionSummary"]
        return f"{summary['StreamStatus']}, {summary['OpenShardCount']} shards, {summary['RetentionPeriodHours']} h"

    yield _run(f"kinesis stream {pipeline.stream_name} ({where})", stream, fix)
    yield _run(
        f"s3 bucket {pipeline.bucket}", lambda: _ok(client("s3", settings).head_bucket(Bucket=pipeline.bucket)), fix
    )
    yield _run(
        f"dynamodb table {pipeline.live_table}",
        lambda: client("dynamodb", settings).describe_table(TableName=pipeline.live_table)["Table"]["TableStatus"],
        fix,
    )

    def delivery(name: str) -> str:
        described = client("firehose", settings).describe_delivery_stream(DeliveryStreamName=name)
        return described["DeliveryStreamDescription"]["DeliveryStreamStatus"]

    for stream_def in load_delivery_streams(pipeline).values():
        yield _run(f"firehose {stream_def.name}", functools.partial(delivery, stream_def.name), fix)
    for source in SOURCES.values():
        for probe in source.probes(settings):
            yield _run(probe.what, probe.run, probe.fix)
    yield _run(
        "x spend (from the producer's state; asks X nothing)",
        functools.partial(x_spend, settings),
        "fix or delete the state file it names",
    )


def x_spend(settings: Settings, now: datetime | None = None) -> str:
    """Today's and this month's X spend against the budgets, and what is left today."""
    state = StateFile(settings.state_dir / "producer" / f"{run_name(Kind.POST, 'x', '')}.state.json").load()
    try:
        cursor = XCursor.model_validate(state)
    except ValidationError as exc:
        raise CoinstreamError(
            f"the X producer's state is not what this version writes: {exc.errors()[0]['msg']}"
        ) from None
    prices = XPrices.load(settings.prices_file)
    budget = XBudget(
        prices, settings.x_dollars_per_day, settings.x_dollars_per_month, cursor.spent, now or datetime.now(UTC)
    )
    return f"{budget.summary()}; {usd(budget.left)} left today"


def _missing(name: str) -> str:
    raise CoinstreamError(f"{name} not found on PATH")


def _ok(_: object) -> str:
    return "reachable"
