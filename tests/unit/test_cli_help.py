"""`coinstream --help`: the commands in the order a user meets them, each with a one-line summary."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from operate.cli import ORDER, app


def test_help_lists_the_commands_in_the_order_a_user_meets_them() -> None:
    shown = CliRunner().invoke(app, ["--help"], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    names = re.findall(r"^│ ([a-z]+) +\S", shown.output, flags=re.M)
    assert names == [n for n in ORDER if n in names] and names[:4] == ["demo", "produce", "consume", "load"]
    assert set(names) >= {"backfill", "coverage", "analyze", "dashboard", "doctor", "deploy", "local"}
