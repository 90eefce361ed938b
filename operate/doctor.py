"""`coinstream doctor`: each configured source and AWS endpoint, one line each: what works, what to fix."""

from __future__ import annotations

import functools
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from coinstream.aws import classify, client, deployed, stack_outputs
from coinstream.config import Pipeline, Settings
from coinstream.delivery import load_delivery_streams
from coinstream.errors import CoinstreamError, NoCredentials
from coinstream.records import Kind
from coinstream.x_bill import XBudget, XPrices, usd
from operate.deploy import load_errors_table
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
    except NoCredentials as exc:  # the line is its own fix: how to give credentials, not the check's own fix
        return Check(False, what, str(exc).removeprefix(f"{what}: "))
    except CoinstreamError as exc:
        return Check(False, what, _with_fix(str(exc), what, fix))
    except Exception as exc:
        return Check(False, what, _with_fix(str(classify(exc, what)), what, fix))


def _with_fix(problem: str, what: str, fix: str) -> str:
    """The problem once (not prefixed by the check's own name again) and the fix, unless the problem says it."""
    problem = problem.removeprefix(f"{what}: ")
    names = re.findall(r"COINSTREAM_\w+", fix)
    return problem if names and all(n in problem for n in names) else f"{problem} -> {fix}"


def checks(settings: Settings, pipeline: Pipeline) -> Iterator[Check]:
    """Every check, in order: tools, AWS (or the local stack), then the data sources."""
    from consumer.daemon import check_java_and_jars

    yield _run("java + KCL jars", lambda: f"{check_java_and_jars()}", "install a JDK >= 11 and run `make setup`")
    if settings.target == "local":
        yield _run("node", lambda: shutil.which("node") or _missing("node"), "install Node >= 18")
    where = "local stack" if settings.target == "local" else "AWS"
    if settings.target == "aws":
        stack = _run(
            f"stack {settings.stack_name} ({settings.region})",
            lambda: f"{len(stack_outputs(settings))} outputs",
            "deploy it with `coinstream deploy --apply`",
        )
        yield stack
        if not stack.ok:
            return
        pipeline = deployed(settings, pipeline)
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
    if settings.target == "aws":
        yield from aws_checks(settings, pipeline, fix)
    for source in SOURCES.values():
        for probe in source.probes(settings):
            yield _run(probe.what, probe.run, probe.fix)
    yield _run(
        "x spend (from the producer's state; asks X nothing)",
        functools.partial(x_spend, settings),
        "fix or delete the state file it names",
    )


def aws_checks(settings: Settings, pipeline: Pipeline, fix: str) -> Iterator[Check]:
    """On AWS: how far behind the stream's readers are, who holds each application's leases, when each
    delivery stream last landed rows and whether COPY failed (error prefix and delivery log)."""
    from consumer.checkpoints import leases
    from consumer.daemon import DEPLOYED_APPS, application_name

    now = datetime.now(UTC)
    cloudwatch = client("cloudwatch", settings)

    def newest(namespace: str, metric: str, dimensions: list[dict[str, str]]) -> float | None:
        points = cloudwatch.get_metric_statistics(
            Namespace=namespace,
            MetricName=metric,
            Dimensions=dimensions,
            StartTime=now - timedelta(minutes=15),
            EndTime=now,
            Period=300,
            Statistics=["Maximum"],
        )["Datapoints"]
        return max((p["Maximum"] for p in points), default=None)

    def iterator_age() -> str:
        age = newest(
            "AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds", [{"Name": "StreamName", "Value": pipeline.stream_name}]
        )
        if age is None:
            return "no reads in the last 15 minutes (are the consumers running?)"
        if age > 600_000:
            raise CoinstreamError(f"readers are {age / 60_000:.0f} minutes behind (records expire after the retention)")
        return f"readers {age / 1000:.1f} s behind"

    yield _run(f"kinesis {pipeline.stream_name} iterator age", iterator_age, "start more consumer workers")
    for app_name in DEPLOYED_APPS:  # lease tables and CloudWatch namespaces are coinstream-<app>
        table = application_name(app_name)

        def application(table: str = table) -> str:
            found = leases(client("dynamodb", settings), table)
            if not found:
                return "no lease table yet (the application has not run)"
            owners = sorted({lease.owner for lease in found if lease.owner})
            lag = newest(table, "MillisBehindLatest", [{"Name": "Operation", "Value": "ProcessTask"}])
            behind = "no MillisBehindLatest in 15 min" if lag is None else f"{lag / 1000:.1f} s behind"
            finished = sum(lease.checkpoint == "SHARD_END" for lease in found)
            return (
                f"{len(found)} leases ({finished} finished), owners {', '.join(owners) or 'none'}; checkpoints {behind}"
            )

        yield _run(f"kcl {table}", application, "start `coinstream consume --app " + app_name + "`")
    s3 = client("s3", settings)
    logs = client("logs", settings)
    outputs = stack_outputs(settings)
    for group_key in HOST_GROUPS:

        def hosts(group_key: str = group_key) -> str:
            return host_health(client("autoscaling", settings), outputs, group_key, logs)

        yield _run(
            f"hosts {group_key}",
            hosts,
            "its instances' boot: the log group /coinstream/<stack>/..., and "
            f"`aws autoscaling describe-scaling-activities --auto-scaling-group-name {outputs.get(group_key, '...')}`",
        )
    lake = outputs.get("Warehouse") == "iceberg"
    for stream_def in load_delivery_streams(pipeline).values():

        def landed(stream_def: Any = stream_def) -> str:
            def newest_object(prefix: str) -> datetime | None:
                stamps = [
                    obj["LastModified"]
                    for day in (now - timedelta(days=1), now)
                    for obj in s3.list_objects_v2(Bucket=pipeline.bucket, Prefix=f"{prefix}{day:%Y/%m/%d}/").get(
                        "Contents", []
                    )
                ]
                return max(stamps, default=None)

            def newest_table_file(table: str) -> datetime | None:
                pages = s3.get_paginator("list_objects_v2").paginate(
                    Bucket=pipeline.bucket, Prefix=f"iceberg/{table}/data/"
                )
                return max((obj["LastModified"] for page in pages for obj in page.get("Contents", [])), default=None)

            # Iceberg: Firehose writes the table's data files itself (its S3 backup keeps failed rows only)
            last = newest_table_file(stream_def.table) if lake else newest_object(stream_def.prefix)
            failed = newest_object(stream_def.error_prefix)
            log_errors = 0
            if outputs.get("DeliveryLogGroup"):
                events = logs.filter_log_events(
                    logGroupName=outputs["DeliveryLogGroup"],
                    logStreamNamePrefix=stream_def.name,
                    startTime=int((now - timedelta(days=1)).timestamp() * 1000),
                    limit=100,
                )
                log_errors = len(events.get("events", []))
            if failed is not None or log_errors:
                what = (
                    f"rows for the Iceberg table {stream_def.table} failed"
                    if lake
                    else f"COPY into {stream_def.table} failed"
                )
                raise CoinstreamError(
                    f"{what} in the last 24 h ({log_errors} log events; newest error "
                    f"object {failed or 'none'} under s3://{pipeline.bucket}/{stream_def.error_prefix}); "
                    + ("see the delivery log group" if lake else f"see {load_errors_table(outputs.get('Warehouse'))}")
                )
            return f"last landed {last:%Y-%m-%d %H:%M} UTC" if last else "nothing landed in the last 24 h"

        yield _run(f"delivery {stream_def.name} -> {stream_def.table}", landed, fix)

    def warehouse_rows() -> str:
        from operate.lifecycle import newest_lake_rows, newest_rows

        tables = sorted({s.table for s in load_delivery_streams(pipeline).values()})
        if lake:
            found = newest_lake_rows(client("athena", settings), outputs, tables)
        else:
            found = newest_rows(client("redshift-data", settings), outputs, tables)
        return ", ".join(f"{table} {found.get(table) or 'empty'}" for table in tables)

    yield _run(
        f"warehouse newest row per table ({'Athena' if lake else 'Redshift Data API'})",
        warehouse_rows,
        "check the Firehose delivery log group and the Glue tables"
        if lake
        else "run redshift/*.sql, then `coinstream deploy --grant`; check the Firehose delivery log group",
    )


#: The stack's Auto Scaling groups (outputs naming them): the producer host, then each application's KCL workers.
HOST_GROUPS = ("ProducerGroup", "WarehouseWorkers", "LiveWorkers")


def host_log_group(outputs: dict[str, str], group_key: str) -> str | None:
    """The log group a host group's bootstrap writes to (stack outputs ProducerLogGroup, WorkerLogGroups)."""
    if group_key == "ProducerGroup":
        return outputs.get("ProducerLogGroup")
    workers = outputs.get("WorkerLogGroups", "").split(",")
    index = {"WarehouseWorkers": 0, "LiveWorkers": 1}.get(group_key)
    return workers[index] if index is not None and len(workers) > index and workers[index] else None


def host_health(autoscaling: Any, outputs: dict[str, str], group_key: str, logs: Any = None) -> str:
    """How many of a group's hosts are in service, healthy and ready, which they are; CoinstreamError when fewer
    than it wants. Ready: its bootstrap saw its service run and said so (the log stream <instance>-ready in the
    group's log group, beside the cfn-signal); EC2's health alone says only that the machine runs."""
    name = outputs.get(group_key)
    if not name:
        raise CoinstreamError(f"the stack has no output {group_key} (made before the hosts were in it)")
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
    if not groups:
        raise CoinstreamError(f"no Auto Scaling group {name}")
    group = groups[0]
    instances = group.get("Instances", [])
    healthy = [
        i["InstanceId"] for i in instances if i["LifecycleState"] == "InService" and i["HealthStatus"] == "Healthy"
    ]
    want = int(group["DesiredCapacity"])
    log_group = host_log_group(outputs, group_key)
    if logs is not None and log_group and healthy:
        streams = logs.describe_log_streams(logGroupName=log_group, logStreamNamePrefix="i-").get("logStreams", [])
        ready = {s["logStreamName"].removesuffix("-ready") for s in streams if s["logStreamName"].endswith("-ready")}
        unready = [i for i in healthy if i not in ready]
        if unready:
            failed = {s["logStreamName"].removesuffix("-bootstrap") for s in streams}
            said = [
                f"{i} {'failed: see its stream ' + i + '-bootstrap' if i in failed else 'not ready yet'}"
                for i in unready
            ]
            raise CoinstreamError(
                f"{len(healthy) - len(unready)} of {want} hosts ready in {log_group} ({', '.join(said)})"
            )
    if len(healthy) < want:
        others = ", ".join(f"{i['InstanceId']} {i['LifecycleState']} {i['HealthStatus']}" for i in instances)
        raise CoinstreamError(f"{len(healthy)} of {want} hosts in service and healthy ({others or 'none launched'})")
    return f"{len(healthy)}/{want} in service, healthy and ready: {', '.join(healthy) or 'none wanted'}"


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
