"""`coinstream`: one command in front of the local stack, the producers, the consumer and the warehouse.

One module per command group (`*_command.py`); each renders what the layers below compute.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Any

import typer
from rich.logging import RichHandler
from typer.core import TyperGroup

from coinstream.errors import CoinstreamError
from operate.cli import (
    backfill_command,
    consume_command,
    demo_command,
    deploy_command,
    local_command,
    produce_command,
    run_command,
    warehouse_command,
)
from operate.cli.common import EXIT_FAILURE, err, print_error

#: `coinstream --help` lists the commands in the order a user meets them; any other follows, by name.
ORDER = (
    "demo",
    "produce",
    "consume",
    "load",
    "run",
    "analyze",
    "dashboard",
    "backfill",
    "coverage",
    "doctor",
    "deploy",
    "local",
    "replay",
    "live",
    "compact",
)


class InUsersOrder(TyperGroup):
    """The command group, its commands listed in ORDER."""

    def list_commands(self, ctx: Any) -> list[str]:
        """Names in ORDER first, the rest by name."""
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


app = typer.Typer(
    cls=InUsersOrder,
    help="Does chatter about bitcoin move with bitcoin trading? A streaming pipeline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(local_command.app, name="local")
app.add_typer(produce_command.app, name="produce")
for group in (consume_command, deploy_command, warehouse_command, demo_command, backfill_command, run_command):
    app.registered_commands += group.app.registered_commands


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at DEBUG.")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False)],
    )
    # tweepy logs request headers (the bearer token) at DEBUG: never let it, whatever --verbose says
    for noisy in ("botocore", "boto3", "urllib3", "tweepy", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main() -> None:
    """Console entry point."""
    try:
        app()
    except CoinstreamError as exc:  # raised outside a command (settings, pipeline file)
        print_error(str(exc))
        sys.exit(EXIT_FAILURE)
