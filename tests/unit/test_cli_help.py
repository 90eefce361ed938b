"""`coinstream --help`: the commands in the order a user meets them, each with a one-line summary."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from operate.cli import ORDER, app


def test_help_lists_the_commands_in_the_order_a_user_meets_them() -> None:
    shown = CliRunner().invoke(app, ["--help"], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    names = re.findall(r"^│ ([a-z]+) +\S", shown.output, flags=re.M)
    assert names == [n for n in ORDER if n in names] and names[:4] == ["demo", "produce", "consume", "load"]
    assert set(names) >= {"backfill", "coverage", "analyze", "dashboard", "doctor", "deploy", "local"}


def test_a_command_that_needs_a_part_this_install_lacks_names_the_extra_to_install() -> None:
    from operate.cli.common import missing_part

    def lacking(module: str) -> str | None:
        return missing_part(ModuleNotFoundError(f"No module named {module!r}", name=module))

    # the narrowest extra that brings it (amazon-kclpy is in consumer, local and dev: consumer)
    assert lacking("amazon_kclpy") == (
        "this command needs amazon-kclpy, which this install lacks: pip install 'coinstream[consumer]'"
    )
    assert lacking("duckdb") is not None and lacking("duckdb").endswith("'coinstream[warehouse]'")  # type: ignore[union-attr]
    assert lacking("pyiceberg.catalog") is not None and "coinstream[iceberg]" in lacking("pyiceberg.catalog")  # type: ignore[operator]
    # a module no extra brings is a bug, not an install to finish: the traceback stays
    assert lacking("operate.no_such_module") is None
    assert lacking("no_such_distribution") is None


def test_an_error_line_is_printed_as_written_never_read_as_markup(capsys: pytest.CaptureFixture[str]) -> None:
    from coinstream.errors import FatalError
    from operate.cli.common import friendly

    @friendly
    def needs_sqlglot() -> None:
        raise FatalError("rendering reads redshift/*.sql with sqlglot: pip install 'coinstream[warehouse]'")

    with pytest.raises(typer.Exit):
        needs_sqlglot()
    assert capsys.readouterr().err.strip() == (
        "error: rendering reads redshift/*.sql with sqlglot: pip install 'coinstream[warehouse]'"
    )


@pytest.mark.parametrize("words", [["deploy", "--status"], ["deploy", "--apply"], ["deploy", "--destroy"], ["doctor"]])
def test_aws_without_credentials_is_one_line_naming_how_to_give_them(
    words: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    """COINSTREAM_TARGET=aws and no credentials (the autouse fixture clears them): never botocore's traceback, and
    doctor's line names the credentials, not `deploy --apply`."""
    monkeypatch.setenv("COINSTREAM_TARGET", "aws")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("COINSTREAM_STATE_DIR", str(tmp_path))
    done = CliRunner().invoke(app, words, input="n\n", env={"COLUMNS": "200"})
    output = done.output
    assert done.exception is None or isinstance(done.exception, SystemExit), repr(done.exception)
    assert "Traceback" not in output and done.exit_code == 1, output
    assert "no AWS credentials: set AWS_PROFILE" in output, output
    assert "deploy it with" not in output


def test_live_stays_readable_with_eight_exchanges_and_picks_a_market() -> None:
    """With eight exchanges `coinstream live` had about 35 columns, every cell cut to "9…" even 200 wide (issue 39).
    Now the posts and the candles are two tables as narrow as their figures: no cell is cut at 100 columns, and
    --market narrows the candles to one series (an unknown one is one line naming those there are)."""
    import pytest
    from rich.console import Console

    from coinstream.errors import FatalError
    from operate.cli.consume_command import live_tables

    exchanges = ["binance", "bitstamp", "bybit", "coinbase", "coinone", "kraken", "okx", "upbit"]
    rows = [
        {
            "minute": f"2026-11-28T12:{m:02d}Z",
            "posts": {"bluesky": 3, "mastodon": 1, "x": 41},
            "candles": {
                f"{e}#{'KRW' if e in ('coinone', 'upbit') else 'USDT'}-BTC": {
                    "volume": "123.45678912",
                    "high": "131234567.5",
                    "low": "131000000",
                    "close": "131100000.25",
                }
                for e in exchanges
            },
        }
        for m in range(15)
    ]
    console = Console(width=100, record=True, color_system=None)
    for table in live_tables(rows, [], "coinstream-live-minutes"):
        console.print(table)
    shown = console.export_text()
    assert "…" not in shown and "131100000.25" in shown and shown.count("upbit") == 15
    console = Console(width=100, record=True, color_system=None)
    for table in live_tables(rows, ["upbit KRW-BTC"], "t"):
        console.print(table)
    one = console.export_text()
    assert "binance" not in one and one.count("KRW-BTC") == 15
    with pytest.raises(
        FatalError, match=r"--market 'bithumb': no live figures for it; the markets there are binance USDT-BTC, "
    ):
        live_tables(rows, ["bithumb"], "t")
