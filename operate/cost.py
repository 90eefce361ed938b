"""What the deployed stack costs a month, line by line, from the dated prices in deploy/prices.json."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from coinstream.config import Pipeline
from coinstream.delivery import load_delivery_streams
from coinstream.errors import FatalError

#: Billed 5 KB Firehose units per 1,000 rows in steady state with the consumer's delivery window, as measured by
#: `python -m benchmarks.steady_state` (README, Performance); perfect packing would be ~111 for 570-byte rows.
MEASURED_UNITS_PER_1000_ROWS = 124.5
FIREHOSE_UNIT_BYTES = 5120
KINESIS_PAYLOAD_UNIT_BYTES = 25 * 1024
#: Redshift Serverless bills at least 60 s of its base capacity each time it wakes (for a COPY or a query).
SERVERLESS_MINIMUM_SECONDS = 60
#: The warehouses an estimate knows: Redshift Serverless or provisioned, or Iceberg tables queried by Athena.
WAREHOUSES = ("serverless", "provisioned", "iceberg")
#: Athena bills at least 10 MB per query.
ATHENA_MINIMUM_BYTES = 10 * 1024**2
#: S3 PUTs of one Iceberg commit: a data file, a manifest, a manifest list and the table's metadata file.
ICEBERG_PUTS_PER_COMMIT = 4


@dataclass(frozen=True)
class Traffic:
    """The traffic and the hosts a cost estimate assumes (the mission: 2 exchanges, 100 posts a minute)."""

    posts_per_minute: float = 100.0
    candles_per_minute: float = 2.0
    record_bytes: int = 400
    warehouse: str = "serverless"
    #: analysis or dashboard sessions a day that wake the warehouse (Serverless bills each at least 60 s)
    queries_per_day: int = 4
    #: Redshift Serverless base capacity: 4 RPU is the smallest (the template's default)
    serverless_rpus: int = 4
    redshift_node_type: str = "ra3.large"
    redshift_nodes: int = 1
    #: the stack's hosts (deploy/hosts.json): one producer, and WorkerCount KCL workers per consumer application
    workers_per_app: int = 1
    consumer_apps: int = 2
    instance_type: str = "t4g.small"
    disk_gb: int = 8
    units_per_1000_rows: float = MEASURED_UNITS_PER_1000_ROWS
    #: Iceberg: the share of the raw rows' bytes an analysis query scans (Parquet: the columns read, compressed)
    scanned_share: float = 0.3
    #: Iceberg: Glue compaction DPU-hours a day for the three tables (assumed: Firehose commits one small file per
    #: table every 15 minutes; compaction bills at least a minute per run)
    compaction_dpu_hours_per_day: float = 0.25


@dataclass(frozen=True)
class Estimate:
    """A monthly bill: where the prices come from, and one (item, basis, USD) line per billed part."""

    region: str
    as_of: str
    lines: list[tuple[str, str, float]]

    @property
    def total(self) -> float:
        """USD per month, all lines."""
        return sum(line[2] for line in self.lines)


def estimate(pipeline: Pipeline, traffic: Traffic, region: str) -> Estimate:
    """The monthly cost of the rendered stack under `traffic` in `region`, from the dated deploy/prices.json."""
    prices = json.loads((pipeline.root / "deploy" / "prices.json").read_text())
    regional = prices["regions"].get(region)
    if regional is None:
        raise FatalError(
            f"deploy/prices.json has no prices for {region}; priced regions: {', '.join(sorted(prices['regions']))} "
            "(add one from the AWS price pages, or pass --region)"
        )
    return Estimate(region, prices["as_of"], monthly_cost(pipeline, regional, prices["hours_per_month"], traffic))


def _price(table: dict[str, float], key: str, what: str) -> float:
    if key not in table:
        raise FatalError(f"deploy/prices.json has no {what} price for {key}; priced: {', '.join(sorted(table))}")
    return table[key]


def monthly_cost(
    pipeline: Pipeline, prices: dict[str, Any], hours: float, traffic: Traffic
) -> list[tuple[str, str, float]]:
    """(item, how it was computed, USD per month) for each billed part."""
    minutes = hours * 60
    days = hours / 24
    posts = traffic.posts_per_minute * minutes
    records = posts + traffic.candles_per_minute * minutes
    rows_gb = records * traffic.record_bytes / 1024**3
    streams = list(load_delivery_streams(pipeline).values())
    workers = traffic.consumer_apps * traffic.workers_per_app
    hosts = 1 + workers
    out: list[tuple[str, str, float]] = []

    def line(item: str, basis: str, usd: float) -> None:
        out.append((item, basis, usd))

    line(
        "Kinesis shards",
        f"{pipeline.shards} shards x {hours:g} h",
        pipeline.shards * hours * prices["kinesis_shard_hour"],
    )
    units = records * math.ceil(traffic.record_bytes / KINESIS_PAYLOAD_UNIT_BYTES)
    line(
        "Kinesis PUT payload units",
        f"{units / 1e6:.2f} M (25 KB each)",
        units / 1e6 * prices["kinesis_put_payload_units_per_million"],
    )
    if traffic.warehouse not in WAREHOUSES:
        raise FatalError(f"--warehouse {traffic.warehouse!r}: choose {', '.join(WAREHOUSES)}")
    lake = traffic.warehouse == "iceberg"
    if lake:
        line(
            "Firehose ingestion (to Iceberg)",
            f"{rows_gb:.2f} GB (billed per byte: no 5 KB rounding, one row per record)",
            rows_gb * prices["firehose_iceberg_per_gb"],
        )
    else:
        billed_gb = records * traffic.units_per_1000_rows / 1000 * FIREHOSE_UNIT_BYTES / 1024**3
        line(
            "Firehose ingestion",
            f"{billed_gb:.2f} GB billed ({traffic.units_per_1000_rows:g} 5 KB units per 1,000 rows, measured)",
            billed_gb * prices["firehose_per_gb_ingested"],
        )
    line(
        "S3 storage (a month of rows + gzip backup)",
        f"{rows_gb * 1.2:.2f} GB",
        rows_gb * 1.2 * prices["s3_standard_gb_month"],
    )
    objects = 0.0
    commits = 0.0
    for stream in streams:
        conf = stream.definition["RedshiftDestinationConfiguration"]
        landed = minutes * 60 / conf["S3Configuration"]["BufferingHints"]["IntervalInSeconds"]
        commits += landed
        objects += landed * (ICEBERG_PUTS_PER_COMMIT if lake else 1)
        objects += (
            minutes * 60 / conf.get("S3BackupConfiguration", {}).get("BufferingHints", {}).get("IntervalInSeconds", 900)
        )
    line(
        "S3 PUT requests",
        f"{objects:,.0f} objects ("
        + (f"{ICEBERG_PUTS_PER_COMMIT} per Iceberg commit" if lake else "one per buffer interval")
        + " per stream, and the backup)",
        objects / 1000 * prices["s3_put_per_1000"],
    )
    renewals = pipeline.shards * 2 * hours * 3600 / 3.3  # two applications, a lease renewal every ~3.3 s
    live = posts * 2 + posts / 99 * 2 + traffic.candles_per_minute * minutes  # transactional writes: 2 units each
    checkpoints = records / 100
    writes = renewals + live + checkpoints
    line(
        "DynamoDB on demand",
        f"{writes / 1e6:.1f} M write units (leases, checkpoints; live keys in transactions, 2 units each)",
        writes / 1e6 * prices["dynamodb_write_request_units_per_million"],
    )
    if lake:
        queries = traffic.queries_per_day * days
        scanned_tb = queries * max(ATHENA_MINIMUM_BYTES, rows_gb * 1024**3 * traffic.scanned_share) / 1024**4
        line(
            "Athena queries",
            f"{queries:.0f} queries, {scanned_tb * 1024:.1f} GB scanned (a month of rows, "
            f"{traffic.scanned_share:.0%} of their bytes each)",
            scanned_tb * prices["athena_per_tb_scanned"],
        )
        glue_requests = commits * 2 + queries * 10  # Firehose: GetTable + UpdateTable per commit; Athena's lookups
        line(
            "Glue Data Catalog",
            f"{glue_requests / 1e6:.3f} M requests, {len(streams)} tables (first 1 M requests and objects free)",
            max(0.0, glue_requests - 1e6) / 1e6 * prices["glue_requests_per_million"],
        )
        line(
            "Glue table optimizers",
            f"{traffic.compaction_dpu_hours_per_day:g} DPU-h/day compaction (assumed)",
            traffic.compaction_dpu_hours_per_day * days * prices["glue_dpu_hour"],
        )
    elif traffic.warehouse == "serverless":
        # every delivery stream COPYs once per buffer interval; each COPY (and each query session) wakes the
        # workgroup for at least 60 s of its base capacity. Worst case: no two wake-ups overlap.
        wakes = sum(
            86400
            / s.definition["RedshiftDestinationConfiguration"]["S3Configuration"]["BufferingHints"]["IntervalInSeconds"]
            for s in streams
        )
        active_hours = min(24.0, (wakes + traffic.queries_per_day) * SERVERLESS_MINIMUM_SECONDS / 3600)
        rpu_hours = traffic.serverless_rpus * active_hours * days
        line(
            "Redshift Serverless",
            f"{traffic.serverless_rpus} RPU x {active_hours:.1f} h/day awake "
            f"({wakes:.0f} COPYs + {traffic.queries_per_day} sessions)",
            rpu_hours * prices["redshift_serverless_rpu_hour"],
        )
    elif traffic.warehouse == "provisioned":
        node_hour = _price(prices["redshift_node_hour"], traffic.redshift_node_type, "Redshift node")
        line(
            "Redshift provisioned",
            f"{traffic.redshift_nodes} x {traffic.redshift_node_type} x {hours:g} h",
            traffic.redshift_nodes * node_hour * hours,
        )
        line("Public IPv4 (Redshift cluster)", f"1 x {hours:g} h", hours * prices["public_ipv4_hour"])
    if not lake:
        line(
            "Redshift managed storage",
            f"{rows_gb:.2f} GB (first month; grows each month)",
            rows_gb * prices["redshift_managed_storage_gb_month"],
        )
        line("Secrets Manager", "2 secrets (admin, COPY user)", 2 * prices["secrets_manager_secret_month"])
    alarms = 1 + len(streams)
    line("CloudWatch alarms", f"{alarms} alarms", alarms * prices["cloudwatch_alarm_month"])
    metrics = 2 * (20 + 6 * pipeline.shards)  # KCL metricsLevel SUMMARY, per application: per-operation + per-shard
    puts = workers * minutes * 6  # each worker flushes its metrics about every 10 s
    line(
        "CloudWatch KCL metrics",
        f"~{metrics} metrics, {puts / 1e6:.2f} M PutMetricData",
        metrics * prices["cloudwatch_metric_month"] + puts / 1000 * prices["cloudwatch_put_metric_requests_per_1000"],
    )
    instance = _price(prices["ec2_instance_hour"], traffic.instance_type, "EC2 instance")
    line(
        "EC2 hosts",
        f"{hosts} x {traffic.instance_type} + {traffic.disk_gb} GB gp3 (1 producer, {traffic.workers_per_app} KCL "
        f"worker per application x {traffic.consumer_apps})",
        hosts * (instance * hours + traffic.disk_gb * prices["ebs_gp3_gb_month"]),
    )
    line("Public IPv4 (hosts)", f"{hosts} x {hours:g} h", hosts * hours * prices["public_ipv4_hour"])
    return out
