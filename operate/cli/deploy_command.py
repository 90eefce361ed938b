"""`coinstream deploy`: the AWS side as one CloudFormation stack: render, price, apply, grant, show, destroy."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from coinstream.errors import FatalError
from coinstream.x_bill import XPlan, XPrices
from operate.cli.common import context, err, friendly, out

app = typer.Typer()


def _params(values: list[str]) -> dict[str, str]:
    out_: dict[str, str] = {}
    for value in values:
        key, sep, given = value.partition("=")
        if not sep or not key:
            raise FatalError(f"--param {value!r}: write KEY=VALUE, e.g. --param VpcId=vpc-0123")
        out_[key] = given
    return out_


@app.command()
@friendly
def deploy(
    check: Annotated[bool, typer.Option("--check", help="Print what would be created and its monthly cost.")] = False,
    render_to: Annotated[Path | None, typer.Option("--render", help="Write the CloudFormation template here.")] = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="Create or update the stack through a change set (shown, then asked).")
    ] = False,
    schema: Annotated[
        bool,
        typer.Option(
            "--schema",
            help="The warehouse's schema, again (--apply does it): redshift/*.sql and the COPY user through the "
            "Data API, or the Athena views on Iceberg. Idempotent.",
        ),
    ] = False,
    grant: Annotated[
        bool,
        typer.Option("--grant", help="Create the COPY user in Redshift (after redshift/*.sql; again after rotation)."),
    ] = False,
    views: Annotated[
        bool, typer.Option("--views", help="Iceberg: create (or replace) the views in Athena, from redshift/*.sql.")
    ] = False,
    status: Annotated[bool, typer.Option("--status", help="The stack's status and outputs.")] = False,
    destroy: Annotated[
        bool, typer.Option("--destroy", help="Delete the stack and the KCL tables; say what is kept and why.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="With --apply/--destroy: do not ask.")] = False,
    template: Annotated[
        Path | None, typer.Option(help="With --apply: deploy this template file instead of the rendered one.")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="With --apply: a stack parameter, KEY=VALUE (repeat).")
    ] = None,
    region: Annotated[
        str | None, typer.Option(help="With --check: price in this region (default: the configured one).")
    ] = None,
    warehouse: Annotated[
        str | None,
        typer.Option(
            help="With --check: the warehouse the detailed bill is for: serverless or provisioned (Redshift), or "
            "iceberg (default: iceberg when COINSTREAM_WAREHOUSE=iceberg, else serverless). All three are compared."
        ),
    ] = None,
    posts_per_minute: Annotated[float, typer.Option(help="Traffic the estimate assumes.")] = 100.0,
    candles_per_minute: Annotated[float, typer.Option(help="Traffic the estimate assumes.")] = 2.0,
    record_bytes: Annotated[int, typer.Option(help="Average record size, bytes.")] = 400,
    queries_per_day: Annotated[int, typer.Option(help="Analysis/dashboard sessions a day (Serverless).")] = 4,
    redshift_node_type: Annotated[str, typer.Option(help="Provisioned: Redshift node type.")] = "ra3.large",
    redshift_nodes: Annotated[int, typer.Option(help="Provisioned: Redshift nodes.")] = 1,
    worker_count: Annotated[
        int, typer.Option(help="KCL workers per consumer application (the stack's WorkerCount).", min=0)
    ] = 1,
    host_instance_type: Annotated[
        str, typer.Option(help="Every host's instance type (HostInstanceType).")
    ] = "t4g.small",
) -> None:
    """The AWS side as one CloudFormation stack (deploy/cloudformation.json, or cloudformation-iceberg.json with
    COINSTREAM_WAREHOUSE=iceberg): its cost, and its whole life."""
    from operate import cost, lifecycle
    from operate import deploy as dp

    if not any((check, render_to, apply, schema, grant, views, status, destroy)):
        raise FatalError(
            "say what to do: --check (plan and cost), --render PATH, --apply, --schema, --grant, --views, --status "
            "or --destroy"
        )
    settings, pipeline = context(deployed=False)
    if warehouse is None:
        warehouse = "iceberg" if settings.warehouse == "iceberg" else "serverless"
    if warehouse not in cost.WAREHOUSES:
        raise FatalError(f"--warehouse {warehouse!r}: choose {', '.join(cost.WAREHOUSES)}")
    base = dp.template_path(pipeline)
    if render_to is not None:
        render_to.write_text(dp.render_text(pipeline, base, settings.warehouse))
        params = " --param VpcId=... --param PublicSubnetIds=..."
        out.print(
            f"wrote {render_to} (warehouse {settings.warehouse}: COINSTREAM_WAREHOUSE); "
            f"apply it with: coinstream deploy --apply{params}"
        )
    if check:
        traffic = cost.Traffic(
            posts_per_minute=posts_per_minute,
            candles_per_minute=candles_per_minute,
            record_bytes=record_bytes,
            warehouse=warehouse,
            queries_per_day=queries_per_day,
            redshift_node_type=redshift_node_type,
            redshift_nodes=redshift_nodes,
            workers_per_app=worker_count,
            instance_type=host_instance_type,
        )
        _check(settings, pipeline, region or settings.region, traffic)
    if apply or schema or grant or views or status or destroy:
        if settings.target != "aws":
            raise FatalError(
                "--apply/--schema/--grant/--views/--status/--destroy act on AWS: set COINSTREAM_TARGET=aws "
                "(and AWS_REGION)"
            )
        from botocore.exceptions import ClientError

        from coinstream.aws import classify, client

        cfn = client("cloudformation", settings)
        stack = settings.stack_name
        if apply:
            body = (
                lifecycle.template_body(json.loads(template.read_text()))  # compact, as the rendered one
                if template
                else lifecycle.template_body(dp.render(pipeline, base, settings.warehouse))
            )
            if settings.warehouse != "iceberg":
                dp.check_redshift_region(base.parent, settings.region)  # before anything is created
            from operate import artifacts

            # what the hosts install: uploaded before an update replaces them; a new stack's hosts wait for them
            built = settings.state_dir / "artifacts"
            version = artifacts.build(pipeline, built)
            given = _params(param or [])
            given.setdefault("ArtifactVersion", version)
            s3 = client("s3", settings)
            existing = lifecycle.stack_status(cfn, stack) not in (None, "REVIEW_IN_PROGRESS")
            uploaded: list[str] = []
            if existing:
                uploaded = artifacts.upload(s3, lifecycle.outputs(cfn, stack)["LandingBucket"], built, version)

            def upload_once_the_bucket_exists() -> None:
                """A new stack's hosts wait for the artifacts and the stack for its hosts' signals: upload them as
                soon as the landing bucket exists, while the stack is still being created."""
                nonlocal uploaded
                if not uploaded and (bucket := lifecycle.resource_id(cfn, stack, "LandingBucket")):
                    uploaded = artifacts.upload(s3, bucket, built, version)

            # the template goes by TemplateURL (1 MB) from a bucket made before any stack, never inline (51,200 B)
            plain_http = (settings.endpoint("s3") or "").startswith("http://")  # a stand-in, never AWS itself
            try:
                account = client("sts", settings).get_caller_identity()["Account"]
                bucket = lifecycle.deploy_bucket(s3, account, settings.region, tls_only=not plain_http)
                url = lifecycle.template_url(s3, bucket, settings.region, body)
            except ClientError as exc:
                raise classify(exc, "uploading the template to the deploy bucket") from None
            try:
                done = lifecycle.apply(
                    cfn,
                    stack,
                    (body, url),
                    given,
                    _confirm(yes),
                    lambda m: out.print(m),
                    while_waiting=upload_once_the_bucket_exists,
                    logs=client("logs", settings),
                )
            except ClientError as exc:  # CloudFormation's refusal, in one line
                raise classify(exc, f"applying the stack {stack}") from None
            if done is not None:
                if not uploaded:
                    uploaded = artifacts.upload(s3, done["LandingBucket"], built, version)
                keys = lifecycle.upload_jsonpaths(s3, pipeline, done["LandingBucket"])
                out.print(f"stack {stack} is ready in {settings.region}; uploaded {', '.join(keys)}")
                out.print(
                    f"the hosts install artifacts/{version}/ ({len(uploaded)} files: the wheel, its locks, "
                    "pipeline.toml)"
                )
                _schema(settings, pipeline, done)
                out.print("next: `coinstream doctor` (the hosts take a few minutes to install themselves)")
        if schema:
            _schema(settings, pipeline, lifecycle.outputs(cfn, stack))
        if grant:
            _grant(settings, pipeline, lifecycle.outputs(cfn, stack))
        if views:
            _views(settings, pipeline, lifecycle.outputs(cfn, stack))
        if status:
            _status(cfn, client("autoscaling", settings), stack, client("logs", settings))
        if destroy:
            _destroy(settings, cfn, stack, yes)


def _confirm(yes: bool) -> Any:
    def confirm(changes: list[Any]) -> bool:
        table = Table("action", "logical id", "type", "replacement", title="change set")
        for change in changes:
            table.add_row(change.action, change.logical_id, change.type, change.replacement)
        out.print(table)
        return yes or typer.confirm("execute this change set?", default=False, err=True)

    return confirm


def _schema(settings: Any, pipeline: Any, described: dict[str, str]) -> None:
    """The warehouse's tables and views (and on Redshift its COPY user), idempotent: what --apply ends with."""
    from coinstream.aws import client
    from operate import lifecycle

    if settings.warehouse == "iceberg":
        _views(settings, pipeline, described)
        return
    ran = lifecycle.apply_schema(client("redshift-data", settings), described, pipeline.root / "redshift")
    out.print(f"schema applied: {ran} statements of redshift/*.sql in one transaction (Data API, admin user)")
    _grant(settings, pipeline, described)


def _grant(settings: Any, pipeline: Any, described: dict[str, str]) -> None:
    from coinstream.aws import client
    from coinstream.delivery import load_delivery_streams
    from operate import lifecycle

    tables = sorted({s.table for s in load_delivery_streams(pipeline).values()})
    ids = lifecycle.grant_copy_user(
        client("redshift-data", settings), client("secretsmanager", settings), described, tables
    )
    out.print(
        f"{lifecycle.COPY_USER} may now COPY into {', '.join(tables)} ({len(ids)} statements through the Data API)"
    )


def _views(settings: Any, pipeline: Any, described: dict[str, str]) -> None:
    from coinstream.aws import client, run_athena

    try:
        from warehouse.athena import view_statements
    except ImportError:
        raise FatalError(
            "--views translates redshift/*.sql with sqlglot: pip install 'coinstream[warehouse]'"
        ) from None
    if "AthenaWorkGroup" not in described:
        raise FatalError(
            f"stack {settings.stack_name} has no Athena workgroup: --views is for the Iceberg warehouse "
            "(COINSTREAM_WAREHOUSE=iceberg, then `coinstream deploy --apply`)"
        )
    statements = view_statements(pipeline.root / "redshift")
    ids = run_athena(client("athena", settings), described["AthenaWorkGroup"], described["LakeDatabase"], statements)
    out.print(f"created the views in {described['LakeDatabase']} ({len(ids)} Athena statements)")


def _status(cfn: Any, autoscaling: Any, stack: str, logs: Any = None) -> None:
    from coinstream.errors import CoinstreamError
    from operate import lifecycle
    from operate.doctor import HOST_GROUPS, host_health

    state = lifecycle.stack_status(cfn, stack)
    if state is None:
        raise FatalError(f"no stack {stack}: create it with `coinstream deploy --apply`")
    described = lifecycle.outputs(cfn, stack)
    table = Table("output", "value", title=f"stack {stack}: {state}")
    for key, value in described.items():
        table.add_row(key, value)
    out.print(table)
    hosts = Table("group", "hosts", title="the stack's hosts (doctor adds the leases each worker holds)")
    for key in HOST_GROUPS:
        try:
            health = host_health(autoscaling, described, key, logs)
        except CoinstreamError as exc:
            health = f"[red]{exc}[/red]"
        hosts.add_row(key, health)
    out.print(hosts)


def _destroy(settings: Any, cfn: Any, stack: str, yes: bool) -> None:
    from coinstream.aws import client
    from consumer.daemon import DEPLOYED_APPS, application_name
    from consumer.replay import start_over
    from operate import lifecycle

    if lifecycle.stack_status(cfn, stack) is None:
        raise FatalError(f"no stack {stack} in {settings.region}: nothing to destroy")
    described = lifecycle.outputs(cfn, stack)
    kept = lifecycle.kept_after_destroy(client("s3", settings), stack, described)
    out.print(f"deletes stack {stack} and the KCL tables of {', '.join(DEPLOYED_APPS)}; keeps:")
    for line in kept:
        out.print(f"  - {line}")
    if not yes and not typer.confirm("destroy?", default=False, err=True):
        raise typer.Exit(1)
    dynamodb = client("dynamodb", settings)
    removed = []
    for app_name in DEPLOYED_APPS:  # refused while a worker still renews leases: stop the consumers first
        removed += start_over(dynamodb, application_name(app_name), watch_seconds=12)
    err.print(f"deleting stack {stack} (a few minutes)...")
    lifecycle.destroy(cfn, stack)
    out.print(f"deleted stack {stack}; removed KCL tables: {', '.join(removed) or 'none existed'}")


def _check(settings: Any, pipeline: Any, region: str, traffic: Any) -> None:
    from operate import cost
    from operate import deploy as dp

    warehouse = traffic.warehouse
    if warehouse != "iceberg":
        dp.check_redshift_region(dp.template_path(pipeline).parent, region)
    template = dp.render(pipeline, dp.template_path(pipeline), "iceberg" if warehouse == "iceberg" else "redshift")
    resources = Table("logical id", "type", title="would be created")
    for logical, resource in template["Resources"].items():
        condition = resource.get("Condition", "")
        if condition in {"Serverless", "Provisioned"} and condition.lower() != warehouse:
            continue
        resources.add_row(logical, resource["Type"])
    out.print(resources)
    bill = cost.estimate(pipeline, traffic, region)
    what = "Iceberg tables + Athena" if warehouse == "iceberg" else f"Redshift {warehouse}"
    table = Table(
        "item",
        "basis",
        "USD / month",
        title=f"estimate for {traffic.posts_per_minute:g} posts/min and {traffic.candles_per_minute:g} candles/min, "
        f"{what} ({bill.region} prices as of {bill.as_of})",
    )
    for item, basis, usd in bill.lines:
        table.add_row(item, basis, f"{usd:,.2f}")
    table.add_row("AWS total", "", f"{bill.total:,.2f}", end_section=True)
    x_prices = XPrices.load(settings.prices_file)
    plan = XPlan.of(settings.x_counts_every_minutes, settings.x_sample_every_minutes, settings.x_sample_size)
    x_lines = plan.lines(x_prices, settings.x_dollars_per_month)
    for item, basis, usd in x_lines:
        table.add_row(item, basis, f"{usd:,.2f}")
    x_total = sum(line[2] for line in x_lines)
    table.add_row(f"X total (X prices as of {x_prices.as_of})", "", f"{x_total:,.2f}", end_section=True)
    table.add_row("total", "", f"{bill.total + x_total:,.2f}")
    out.print(table)
    out.print(_side_by_side(pipeline, traffic, region))
    out.print(
        "Serverless is priced at its worst case: every COPY wakes it for its 60 s minimum, none overlapping. "
        "Iceberg: Athena bills the bytes each query scans (at least 10 MB), nothing while idle."
    )


def _side_by_side(pipeline: Any, traffic: Any, region: str) -> Table:
    """The same traffic priced on each warehouse: every line, the totals, and what dominates each."""
    from operate import cost

    bills = {w: cost.estimate(pipeline, dataclasses.replace(traffic, warehouse=w), region) for w in cost.WAREHOUSES}
    names = {"serverless": "Redshift Serverless", "provisioned": "Redshift RA3", "iceberg": "Iceberg + Athena"}
    table = Table("item (USD / month)", *(names[w] for w in bills), title="the same traffic on each warehouse")
    items = list(dict.fromkeys(item for bill in bills.values() for item, _, _ in bill.lines))
    for item in items:
        cells = [{i: usd for i, _, usd in bill.lines}.get(item) for bill in bills.values()]
        table.add_row(item, *("-" if usd is None else f"{usd:,.2f}" for usd in cells))
    table.add_row("AWS total", *(f"{bill.total:,.2f}" for bill in bills.values()), end_section=True)
    table.add_row("largest line", *(max(bill.lines, key=lambda line: line[2])[0] for bill in bills.values()))
    return table
