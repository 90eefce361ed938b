"""`coinstream deploy`: the AWS side as one CloudFormation template, and its cost."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from coinstream.errors import FatalError
from coinstream.x_bill import XPlan, XPrices
from operate.cli.common import context, friendly, out

app = typer.Typer()


@app.command()
@friendly
def deploy(
    check: Annotated[bool, typer.Option("--check", help="Print what would be created and its monthly cost.")] = False,
    render_to: Annotated[Path | None, typer.Option("--render", help="Write the CloudFormation template here.")] = None,
    posts_per_minute: Annotated[float, typer.Option(help="Traffic the estimate assumes.")] = 60.0,
    candles_per_minute: Annotated[float, typer.Option(help="Traffic the estimate assumes.")] = 2.0,
    record_bytes: Annotated[int, typer.Option(help="Average record size, bytes.")] = 400,
    redshift_node_type: Annotated[str, typer.Option(help="Redshift node type.")] = "ra3.large",
    redshift_nodes: Annotated[int, typer.Option(help="Redshift nodes.")] = 1,
) -> None:
    """The AWS side as one CloudFormation template (deploy/cloudformation.json) and its estimated cost."""
    from operate import deploy as dp

    settings, pipeline = context()
    base = dp.template_path(pipeline)
    if render_to is None and not check:
        raise FatalError("say what to do: --check (plan and cost) and/or --render PATH (write the template)")
    if render_to is not None:
        render_to.write_text(dp.render_text(pipeline, base))
        out.print(
            f"wrote {render_to}; deploy it with: aws cloudformation deploy --template-file {render_to} "
            "--stack-name coinstream --capabilities CAPABILITY_IAM --parameter-overrides VpcId=... PublicSubnetIds=..."
        )
    if check:
        template = dp.render(pipeline, base)
        resources = Table("logical id", "type", title="would be created")
        for logical, resource in template["Resources"].items():
            resources.add_row(logical, resource["Type"])
        out.print(resources)
        traffic = dp.Traffic(posts_per_minute, candles_per_minute, record_bytes, 2, redshift_node_type, redshift_nodes)
        bill = dp.estimate(pipeline, traffic)
        table = Table(
            "item",
            "basis",
            "USD / month",
            title=f"estimate for {posts_per_minute:g} posts/min and {candles_per_minute:g} candles/min "
            f"({bill.region} prices as of {bill.as_of})",
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
