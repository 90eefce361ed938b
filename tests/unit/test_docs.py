"""The docs cannot drift: every block marked runnable runs (and shows what it prints), the site builds with no
warning, its internal links land, and the README fits on two screens."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from coinstream import REPO_ROOT

DOCS = REPO_ROOT / "docs"
#: `<!-- runnable -->` (or `<!-- runnable: warehouse=recordings -->`) over a bash block, optionally followed by a
#: text block of lines its output must show, in that order (spaces between words do not count: tables widen).
RUNNABLE = re.compile(
    r"<!-- runnable(?:: (?P<needs>[\w=]+))? -->\n```bash\n(?P<commands>.*?)```\n(?:\n```text\n(?P<shows>.*?)```)?",
    re.S,
)


def blocks() -> list[tuple[str, str | None, list[str], list[str]]]:
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        for match in RUNNABLE.finditer(page.read_text()):
            commands = [c.split("  #")[0].strip() for c in match["commands"].splitlines() if c.strip()]
            shows = [" ".join(line.split()) for line in (match["shows"] or "").splitlines() if line.strip()]
            found.append((page.relative_to(DOCS).as_posix(), match["needs"], commands, shows))
    return found


def test_the_docs_have_runnable_blocks_in_several_pages() -> None:
    assert len({page for page, *_ in blocks()}) >= 4  # a marker that stopped matching would skip them silently


def recordings_warehouse(path: Path) -> None:
    """What `coinstream demo --source offline --from-dir tests/payloads` loads: every recorded answer."""
    from coinstream.records import Kind
    from producer.sources.offline import replay
    from tests.warehouse_data import warehouse_of

    now = datetime(2026, 11, 28, 12, 30, tzinfo=UTC)
    folder = REPO_ROOT / "tests" / "payloads"
    warehouse_of(path, replay(folder, Kind.CANDLE, now=now) + replay(folder, Kind.POST, now=now))


@pytest.mark.parametrize(("page", "needs", "commands", "shows"), blocks(), ids=lambda v: str(v)[:40])
def test_a_runnable_block_runs_and_shows_what_the_page_says(
    page: str, needs: str | None, commands: list[str], shows: list[str], tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COINSTREAM_")}
    env.update(COLUMNS="110", NO_COLOR="1", TERM="dumb", COINSTREAM_STATE_DIR=str(tmp_path))
    if needs == "warehouse=recordings":
        recordings_warehouse(tmp_path / "w.duckdb")
        env["COINSTREAM_WAREHOUSE_FILE"] = str(tmp_path / "w.duckdb")
    printed = []
    for command in commands:
        words = shlex.split(command)
        assert words[0] == "coinstream", f"{page}: a runnable block runs coinstream commands only: {command}"
        done = subprocess.run(
            [sys.executable, "-m", "operate", *words[1:]], env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, f"{page}: `{command}` exited {done.returncode}: {done.stderr[-1500:]}"
        printed += [" ".join(line.split()) for line in done.stdout.splitlines()]
    at = 0
    for line in shows:  # in order, each one somewhere after the one before
        assert line in printed[at:], f"{page}: `{' ; '.join(commands)}` no longer prints {line!r}"
        at = printed.index(line, at) + 1


def test_the_readme_fits_on_two_screens() -> None:
    lines = (REPO_ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 150


#: A table is for looking things up: past this many words a cell is a paragraph, and belongs under the table.
CELL_WORDS = 40


def test_no_table_cell_is_a_paragraph() -> None:
    from operate.reference import pages

    texts = {p.relative_to(REPO_ROOT).as_posix(): p.read_text() for p in [REPO_ROOT / "README.md", *DOCS.rglob("*.md")]}
    texts.update({f"docs/{name} (generated)": text for name, text in pages().items()})
    long = [
        f"{name}: {len(cell.split())} words: {cell.strip()[:60]}…"
        for name, text in texts.items()
        for line in text.splitlines()
        if line.startswith("|")
        for cell in re.split(r"(?<!\\)\|", line)[1:-1]
        if len(cell.split()) > CELL_WORDS
    ]
    assert long == []


class Links(HTMLParser):
    """The ids a page has and the links it makes."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.add(str(found["id"]))
        for name in ("href", "src"):
            if found.get(name) and tag in {"a", "img", "link", "script"}:
                self.links.append(str(found[name]))


def test_the_site_builds_with_no_warning_and_every_internal_link_lands(tmp_path: Path) -> None:
    site = tmp_path / "site"
    mkdocs = Path(sys.executable).with_name("mkdocs")
    done = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(site)],
        cwd=REPO_ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "WARNING" not in done.stderr, done.stderr[-3000:]
    # every page but 404.html, which a server shows at any path and so links from the site's root
    pages = {p: Links() for p in site.rglob("*.html") if p.name != "404.html"}
    for page, parsed in pages.items():
        parsed.feed(page.read_text())
    broken = []
    for page, parsed in pages.items():
        for link in parsed.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith("data:"):
                continue  # not this site's: the check is of internal links
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir() or parts.path.endswith("/"):
                broken.append(f"{page.relative_to(site)} -> {link} (a folder: from file:// it lists files)")
            elif not target.exists():
                broken.append(f"{page.relative_to(site)} -> {link}")
            elif parts.fragment and target.suffix == ".html" and target in pages:
                if parts.fragment not in pages[target].ids:
                    broken.append(f"{page.relative_to(site)} -> {link} (no such anchor)")
    assert broken == []
    assert (site / "reference" / "cli.html").exists() and (site / "troubleshooting.html").exists()


def test_the_readmes_picture_of_the_pipeline_is_the_one_the_code_draws() -> None:
    """The docs draw it at each build (`<!-- pipeline -->`); the README keeps a copy, checked here."""
    from operate.reference import pipeline_picture

    assert pipeline_picture() in (REPO_ROOT / "README.md").read_text(), "paste pipeline_picture() into the README"
    assert "<!-- pipeline -->" in (DOCS / "index.md").read_text()


def heading_ids(markdown_text: str) -> set[str]:
    """The ids a Markdown page's headings get (MkDocs' slugify; GitHub's agrees for headings like ours)."""
    from markdown.extensions.toc import slugify

    without_code = re.sub(r"```.*?```", "", markdown_text, flags=re.S)
    return {slugify(h.replace("`", ""), "-") for h in re.findall(r"^#+ (.+)$", without_code, re.M)}


def test_every_link_in_the_readme_lands() -> None:
    """The README is read on GitHub, outside the site the build checks: its links to files and anchors are checked
    here."""
    readme = (REPO_ROOT / "README.md").read_text()
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", readme):
        if urlsplit(target).scheme:
            continue
        path, _, anchor = target.partition("#")
        file = REPO_ROOT / path if path else REPO_ROOT / "README.md"
        if not file.exists():
            broken.append(target)
        elif anchor and anchor not in heading_ids(file.read_text()):
            broken.append(f"{target} (no such heading)")
    assert broken == []


def test_the_backfill_page_names_every_source_the_plan_reads() -> None:
    from producer.backfill import HISTORY_SOURCES
    from producer.sources.registry import SOURCES

    page = (DOCS / "backfill.md").read_text().splitlines()
    rows = [line.split("|")[1].strip().lower() for line in page if line.startswith("|")]
    missing = [name for name in HISTORY_SOURCES if name not in rows and SOURCES[name].name not in rows]
    assert missing == [], f"docs/backfill.md's table of sources lacks {missing}"


def test_the_offline_demos_figures_are_the_recordings_own() -> None:
    """docs/index.md says what `coinstream demo --source offline --from-dir tests/payloads` puts: counted here."""
    from collections import Counter

    from coinstream.records import Kind
    from producer.sources.offline import replay

    now = datetime.now(UTC)
    folder = REPO_ROOT / "tests" / "payloads"
    candles, posts = replay(folder, Kind.CANDLE, now=now), replay(folder, Kind.POST, now=now)
    per_exchange = Counter(e.source for e in candles)
    kinds = Counter((e.source, e.kind.value) for e in posts)
    distinct_x = len({e.key for e in posts if e.source == "x" and e.kind is Kind.POST})
    page = " ".join((DOCS / "index.md").read_text().split())
    for said in (
        f"{len(candles)} candles of the {len(per_exchange)} exchanges".replace(" 8 ", " eight "),
        f"({min(per_exchange.values())} to {max(per_exchange.values())} minutes each)",
        f"{len(posts)} post records — {kinds['x', 'post']} X posts ({distinct_x} distinct land",
        f"{kinds['mastodon', 'post']} Mastodon and {kinds['bluesky', 'post']} Bluesky posts",
        f"{kinds['x', 'post_count']} X per-minute counts",
    ):
        assert said in page, f"docs/index.md no longer says {said!r}"


def test_the_generated_pages_in_docs_are_current() -> None:
    """The command, settings and troubleshooting pages are committed (so the repository's view of the docs has
    them) and written afresh at each build; a change to the code they are written from must renew them."""
    from operate.reference import pages

    stale = [name for name, text in pages().items() if (DOCS / name).read_text() != text]
    assert stale == [], f"renew {stale}: .venv/bin/python -m operate.reference"


def test_every_figure_the_docs_quote_is_in_the_results_file() -> None:
    """The performance table and every `{{ benchmark.figure }}` are rendered from benchmarks/results.json, which
    holds a full-size run of every benchmark (never a smoke run); the README's lines are that file's too."""
    from benchmarks.__main__ import SUITE
    from benchmarks.report import PLACEHOLDER, readme, substitute
    from benchmarks.results import RESULTS, load

    data = load(RESULTS)
    # ci_run times the suite that runs this test, so it is measured on a commit whose suite is already green
    assert set(SUITE) - {"ci_run"} <= set(data["benchmarks"]) <= set(SUITE), "run `make bench` and commit its results"
    assert not [n for n, e in data["benchmarks"].items() if e["command"].endswith("--smoke")]
    for page in DOCS.rglob("*.md"):
        rendered = substitute(page.read_text(), data)  # an unknown figure raises, naming it
        assert not PLACEHOLDER.search(rendered), page
    text = (REPO_ROOT / "README.md").read_text()
    assert readme(text, data) == text, "renew the README's figures: python -m benchmarks.report --readme"


#: A measured result written by hand: a rate, a time in ms, a size in MiB, billed units, a ratio like 3.9x.
HAND_FIGURE = re.compile(r"\b\d[\d,.]*\s?(?:records/s|ms|MiB|units)\b|\b\d+(?:\.\d+)?x\b")


def test_the_performance_page_quotes_no_figure_by_hand() -> None:
    """Above its explanations, the page's figures are placeholders the results file fills; a figure typed in
    would drift from what the benchmarks print."""
    page = (DOCS / "performance.md").read_text().split("## Why the figures are what they are")[0]
    typed = HAND_FIGURE.findall(re.sub(r"\{\{.*?\}\}", "", page))
    assert typed == [], f"docs/performance.md quotes {typed} by hand: use {{{{ benchmark.figure }}}}"
    how_fast = (REPO_ROOT / "README.md").read_text().split("## How fast")[1].split("\n## ")[0]
    outside = re.sub(r"<!-- figures: start -->.*<!-- figures: end -->", "", how_fast, flags=re.S)
    assert HAND_FIGURE.findall(outside) == [], "the README's How fast section quotes a figure by hand"
