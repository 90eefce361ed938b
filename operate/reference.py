"""Reference pages written from the code, so they cannot drift from it: every command's help (typer), every
setting (pydantic-settings, with the `#:` comment above it), and every `error:` line and `doctor` check a user can
meet (read from the source). They are committed under docs/ (`python -m operate.reference` writes them; a test
keeps them current) and the docs site's hook (mkdocs.yml `hooks:`) writes them afresh at each build."""

from __future__ import annotations

import ast
import inspect
import os
import re
from pathlib import Path
from typing import Any

from coinstream import REPO_ROOT
from coinstream.config import Settings

#: The packages whose errors a user can meet, in the order a user meets them.
PACKAGES = ("coinstream", "producer", "consumer", "warehouse", "operate")


def cli_page() -> str:
    """`coinstream --help` and every command's `--help`, in the order `--help` lists them."""
    from typer.main import get_command
    from typer.testing import CliRunner

    from operate.cli import app

    group: Any = get_command(app)  # typer's own click: its groups list their commands
    runner = CliRunner()
    env = {"COLUMNS": "110", "NO_COLOR": "1", "TERM": "dumb"}

    def help_of(*words: str) -> str:
        done = runner.invoke(app, [*words, "--help"], env=env, prog_name="coinstream")
        return str(done.output).rstrip()

    out = [
        "# Command reference\n",
        "Written from the code at each build (`coinstream <command> --help`); the order is the one a user meets "
        "them in.\n",
        f"```text\n{help_of()}\n```\n",
    ]
    for name in group.list_commands(None):
        command = group.commands[name]
        if getattr(command, "hidden", False):
            continue
        out.append(f"## coinstream {name}\n")
        out.append(f"```text\n{help_of(name)}\n```\n")
        for sub in getattr(command, "commands", {}):
            out.append(f"### coinstream {name} {sub}\n")
            out.append(f"```text\n{help_of(name, sub)}\n```\n")
    return "\n".join(out)


def _comments(cls: type) -> dict[str, str]:
    """The `#:` comment block above each field of a class; a block serves the fields under it up to a blank line."""
    found: dict[str, str] = {}
    block: list[str] = []
    current = ""
    for line in inspect.getsource(cls).splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            block.append(stripped[2:].strip())
            continue
        field = re.match(r"^\s{4}([a-z_][a-z0-9_]*)\s*:", line)
        if field:
            if block:
                current, block = " ".join(block), []
            found[field.group(1)] = current
        elif not stripped:
            current, block = "", []
    return found


def settings_page() -> str:
    """Every setting: its environment variable, type, default and what it is for."""
    comments = _comments(Settings)
    rows = ["| variable | type | default | what it is for |", "| --- | --- | --- | --- |"]
    last = ""
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        kind = (
            annotation.__name__
            if isinstance(annotation, type)
            else str(annotation).replace("typing.", "").replace("pathlib.", "").replace("pydantic.types.", "")
        )
        if field.default_factory is not None:
            default = "computed"
        elif field.default is None:
            default = "unset"
        else:
            default = f"`{field.default}`".replace(str(REPO_ROOT), ".")
        said = comments.get(name, "")
        shown = said if said and said != last else ("(as above)" if said else "")
        last = said or last
        cell = shown.replace("|", "\\|")
        rows.append(f"| `COINSTREAM_{name.upper()}` | `{kind}` | {default} | {cell} |")
    return "\n".join(
        [
            "# Settings reference\n",
            "Every setting is an environment variable (or a line in `.env`), read by pydantic-settings; written from "
            "`coinstream/config.py` at each build. Secrets come from the environment, a file outside the repo, or "
            "(on the stack's hosts) SSM Parameter Store, and are never logged.\n",
            *rows,
            "",
        ]
    )


def _text(node: ast.expr) -> str | None:
    """A message as a user reads it: a string, or an f-string with its values shown as `{...}` placeholders."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            "{" + ast.unparse(v.value) + "}" if isinstance(v, ast.FormattedValue) else str(getattr(v, "value", ""))
            for v in node.values
        )
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text(node.left), _text(node.right)
        return None if left is None or right is None else left + right
    return None


def errors_of(root: Path = REPO_ROOT) -> dict[str, list[str]]:
    """Every `raise FatalError(...)` message (and its kin that stop a command) per module, as written."""
    stopping = {"FatalError", "Refused", "Busy", "TryLater"}
    out: dict[str, list[str]] = {}
    for package in PACKAGES:
        for file in sorted((root / package).rglob("*.py")):
            tree = ast.parse(file.read_text())
            for node in ast.walk(tree):
                if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
                    continue
                func = node.exc.func
                name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                if name not in stopping or not node.exc.args:
                    continue
                message = _text(node.exc.args[0])
                if message:
                    out.setdefault(file.relative_to(root).as_posix(), []).append(" ".join(message.split()))
    return out


def doctor_checks(root: Path = REPO_ROOT) -> list[tuple[str, str]]:
    """(what `coinstream doctor` checks, the fix it names when the check fails), as written in operate/doctor.py."""
    tree = ast.parse((root / "operate" / "doctor.py").read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_run":
            what, fix = (_text(a) for a in (node.args[0], node.args[2])) if len(node.args) >= 3 else (None, None)
            if what and fix:
                found.append((" ".join(what.split()), " ".join(fix.split())))
    return found


def troubleshooting_page() -> str:
    """Every doctor check with its fix, and every `error:` line a command can stop with."""
    out = [
        "# Every error, and its fix\n",
        "Written from the code at each build. A command that stops prints one line, `error: <what is wrong>`, "
        "and the line says what to do; a failing `coinstream doctor` check prints `FAIL <what>: <why> -> <fix>`. "
        "`{...}` stands for the value the line names (a file, a setting, a market).\n",
        "## coinstream doctor\n",
        "| check | when it fails |",
        "| --- | --- |",
    ]
    out += [f"| {what} | {fix} |" for what, fix in doctor_checks()]
    out.append("")
    for module, messages in errors_of().items():
        out.append(f"## {module}\n")
        out += [
            f"- `error: {m}`".replace("`error: `", "`error:`") if "`" not in m else f"- error: {m}" for m in messages
        ]
        out.append("")
    return "\n".join(out)


def pipeline_picture() -> str:
    """The pipeline as text, from what the code declares: the registered sources, pipeline.toml's stream, the
    consumer applications, each delivery stream and its table (a new source or kind redraws it)."""
    from coinstream.config import Pipeline
    from coinstream.delivery import load_delivery_streams
    from coinstream.records import Kind
    from consumer.daemon import DEPLOYED_APPS, application_name
    from producer.sources.registry import SOURCES

    pipeline = Pipeline.load(REPO_ROOT / "pipeline.toml")
    real = {n: s for n, s in SOURCES.items() if n not in {"offline", "simulated"}}
    candles = ", ".join(n for n, s in real.items() if Kind.CANDLE in s.kinds)
    posts = ", ".join(n for n, s in real.items() if Kind.POST in s.kinds)
    streams = list(load_delivery_streams(pipeline).values())
    left = [f"produce candles: {candles}", f"produce posts: {posts}", "backfill: the history of each"]
    width = max(len(x) for x in left)
    out = [
        f" {left[0].ljust(width)} ─┐",
        f" {left[1].ljust(width)} ─┤ (spooled on disk while the stream is down)",
        f" {left[2].ljust(width)} ─┘",
        f"   └─► Kinesis {pipeline.stream_name} ({pipeline.shards} shards, {pipeline.retention_hours} h)",
    ]
    pad = " " * 9
    for i, app in enumerate(DEPLOYED_APPS):
        last = i == len(DEPLOYED_APPS) - 1
        branch, rest = ("└", " ") if last else ("├", "│")
        name = application_name(app)
        if app == "live":
            out.append(f"{pad}{branch}─► KCL app {name} ─► DynamoDB {pipeline.live_table} (per-minute figures)")
            continue
        out.append(f"{pad}{branch}─► KCL app {name} (dedupe, enrich)")
        for s in streams:
            out.append(f"{pad}{rest}     ├─► Firehose {s.name} ─► S3 {s.prefix} ─► COPY {s.table}")
        out.append(f"{pad}{rest}     └─► bad records ─► S3 {pipeline.dead_letter_prefix}{app}/ (with the reason)")
    out.append(" warehouse: raw tables ─► views (one row per key) ─► minute_metrics ─► analyze, dashboard")
    return "```text\n" + "\n".join(out) + "\n```"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs hook: a generated page is written afresh from the code; `<!-- pipeline -->` becomes the pipeline's
    picture, drawn from the code; the performance table and every `{{ benchmark.figure }}` come from the
    benchmarks' results file (benchmarks/results.json, which `make bench` writes)."""
    generated = _pages().get(page.file.src_uri)
    if generated is not None:
        return generated
    if "<!-- pipeline -->" in markdown:
        markdown = markdown.replace("<!-- pipeline -->", pipeline_picture())
    from benchmarks.report import PLACEHOLDER, TABLE_MARK, substitute
    from benchmarks.results import RESULTS, load

    if TABLE_MARK in markdown or PLACEHOLDER.search(markdown):
        markdown = substitute(markdown, load(RESULTS))
    return markdown


_cache: dict[str, str] = {}


def _pages() -> dict[str, str]:
    """The generated pages, written once per build."""
    if not _cache:
        _cache.update(pages())
    return _cache


def pages() -> dict[str, str]:
    """The generated pages, by their path under docs/."""
    os.environ.setdefault("COLUMNS", "110")
    return {
        "reference/cli.md": cli_page(),
        "reference/settings.md": settings_page(),
        "troubleshooting.md": troubleshooting_page(),
    }


def main(argv: Any = None) -> None:
    """`python -m operate.reference [DIR]`: write the generated pages under DIR (default docs/, where they are
    committed so the repository's own view of the docs has them; a test keeps them current)."""
    import sys

    target = Path((argv or sys.argv[1:] or [str(REPO_ROOT / "docs")])[0])
    for name, text in pages().items():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_text(text)


if __name__ == "__main__":
    main()
