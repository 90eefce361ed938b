"""Recorded API answers (tests/payloads/<source>/*.json) laid out as the offline source reads them."""

from __future__ import annotations

from pathlib import Path

PAYLOADS = Path(__file__).parent / "payloads"


def recording(folder: Path, *sources: str) -> Path:
    """A recording in `folder` holding only the named sources' answers (symlinks into tests/payloads)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in sources:
        link = folder / name
        if not link.exists():
            link.symlink_to(PAYLOADS / name, target_is_directory=True)
    return folder


#: What the offline source replayed before it learnt every source: Coinone candles and X posts.
CLASSIC = ("coinone", "x")
