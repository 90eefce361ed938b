"""The docs' figures, rendered from the results file (`make bench` writes it): the performance page's table, each
`{{ key }}` in a page's prose, and the README's "How fast" lines. A page can then only quote what a benchmark printed.

    python -m benchmarks.report --readme     rewrite the README's generated lines from the results file
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from benchmarks.results import RESULTS, Figure, figures, load, number
from coinstream import REPO_ROOT

README = REPO_ROOT / "README.md"
TABLE_MARK = "<!-- performance -->"
README_START, README_END = "<!-- figures: start -->", "<!-- figures: end -->"
#: `{{ processor.core }}` in a page: that figure's value and unit; `{{ processor.core:baseline }}`, its baseline's;
#: `{{ processor.core:ratio }}`, the ratio; `{{ processor.core:measured }}`, when and on what.
PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+\.[a-z0-9_]+)(?::(baseline|ratio|measured))?\s*\}\}")
#: The README's lines: (figure key, how the line reads).
README_LINES = (
    ("processor.core", "the consumer's core"),
    ("end_to_end.throughput", "end to end through the real KCL daemon"),
    ("kcl_start.new_app", "a new KCL application's start"),
    ("backfill.wall", "a 7-day backfill"),
    ("dashboard_queries.refresh_30d", "a dashboard refresh over 30 days and 10 million posts"),
    ("demo.fresh", "`coinstream demo` in a fresh folder"),
    ("collect.after_reboot", "`coinstream run` after a reboot, until no minute is missing"),
    ("ci_run.fresh_clone", "`.ci/run` in a fresh clone"),
)


def with_unit(amount: float, unit: str) -> str:
    """An amount as the docs print it with its unit: `2.38x`, `88.3% of ideal`, `10.9 s`."""
    return f"{number(amount)} {unit}".replace(" %", "%").replace(" x", "x")


def value(figure: Figure) -> str:
    """A figure's value with its unit."""
    return with_unit(figure.value, figure.unit)


def measured(entry: dict[str, Any]) -> str:
    """When, at which commit and on what a benchmark's figures were measured."""
    m = entry["machine"]
    return f"{entry['measured']}, {entry['commit'] or 'no commit'}, {m['cores']} cores, {m['memory_gib']:g} GiB"


def compared(figure: Figure) -> str:
    """The baseline and the ratio, as one table cell."""
    if figure.baseline is None:
        return ""
    text = f"{figure.baseline_what}: {with_unit(figure.baseline, figure.unit)}"
    if figure.ratio is not None:
        text += f" ({' '.join(filter(None, [with_unit(figure.ratio, 'x'), figure.ratio_what]))})"
    return text


def table(data: dict[str, Any]) -> str:
    """The performance page's figures: per benchmark, its command and when and on what it ran, then a table of its
    figures with the baseline each was measured against in the same run."""
    from benchmarks.__main__ import SUITE

    blocks = []
    for name in (n for n in SUITE if n in data["benchmarks"]):
        entry = data["benchmarks"][name]
        rows = [
            f"**`{entry['command']}`** — measured {measured(entry)}",
            "",
            "| what | figure | baseline in the same run |",
            "| --- | --- | --- |",
        ]
        for raw in entry["figures"]:
            f = Figure(**raw)
            rows.append(f"| {f.what} | **{value(f)}** | {compared(f)} |")
        blocks.append("\n".join(rows))
    return "\n\n".join(blocks)


def substitute(markdown: str, data: dict[str, Any]) -> str:
    """A page with its table marker and every `{{ key }}` rendered; an unknown key is an error naming it."""
    found = figures(data)

    def one(match: re.Match[str]) -> str:
        key, part = match.group(1), match.group(2)
        if key not in found:
            raise KeyError(f"{key} is not in the results file: run `make bench` (benchmarks/results.json)")
        figure, entry = found[key]
        if part == "baseline":
            return with_unit(figure.baseline or 0, figure.unit)
        if part == "ratio":
            return with_unit(figure.ratio or 0, "x")
        if part == "measured":
            return measured(entry)
        return value(figure)

    return PLACEHOLDER.sub(one, markdown.replace(TABLE_MARK, table(data)))


def readme_lines(data: dict[str, Any]) -> str:
    """The README's "How fast" lines."""
    found = figures(data)
    out = []
    for key, what in README_LINES:
        if key not in found:  # ci_run measures the suite that checks this file: it comes after a green run
            continue
        figure, entry = found[key]
        line = f"- {what}: **{value(figure)}**"
        if figure.baseline is not None:
            line += f"; {compared(figure)}"
        out.append(f"{line} ({entry['measured']}, {entry['machine']['cores']} cores)")
    return "\n".join(out)


def readme(text: str, data: dict[str, Any]) -> str:
    """The README with its generated lines rendered afresh."""
    start, end = text.index(README_START) + len(README_START), text.index(README_END)
    return text[:start] + "\n" + readme_lines(data) + "\n" + text[end:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", action="store_true", help="rewrite the README's generated lines")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    data = load(args.results)
    if args.readme:
        README.write_text(readme(README.read_text(), data))
        print(f"README.md: figures from {args.results}")
    else:
        print(table(data))


if __name__ == "__main__":
    main()
