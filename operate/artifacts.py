"""What a host of the stack installs: the wheel, its dependencies pinned, and the pipeline's declarations.

`coinstream deploy --apply` builds them here and uploads them to s3://<bucket>/artifacts/<version>/; the hosts'
bootstrap (deploy/bootstrap.sh) installs them at boot. The locks pin the versions this machine runs (and tests),
so a host installs what was tested, not what PyPI holds that day; the version names the content, so a change
replaces the hosts and an unchanged deploy leaves them be.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from coinstream import REPO_ROOT
from coinstream.config import Pipeline
from coinstream.errors import FatalError

#: The lock each host role installs: the producer needs the core, a KCL worker the consumer extra as well.
LOCKS = {"requirements-core.txt": (), "requirements-consumer.txt": ("consumer",)}
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?")
_EXTRA = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned(extras: tuple[str, ...], dist: str = "coinstream") -> list[str]:
    """`name==version` of every distribution `dist[extras]` needs, as installed here (an extra's own extras too).

    A requirement counts when its extra is one asked for and it is installed here: a marker for another platform
    (Windows' colorama) names a distribution this Linux machine does not have, nor will a Linux host need it."""
    found: dict[str, str] = {}
    todo: list[tuple[str, tuple[str, ...]]] = [(dist, extras)]
    seen: set[tuple[str, tuple[str, ...]]] = set()
    while todo:
        name, wanted = todo.pop()
        if (name, wanted) in seen:
            continue
        seen.add((name, wanted))
        try:
            meta = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if _canonical(name) != _canonical(dist):
            found[_canonical(name)] = meta.version
        for requirement in meta.requires or []:
            spec, _, marker = requirement.partition(";")
            extra = _EXTRA.search(marker)
            if extra and extra.group(1) not in wanted:
                continue
            match = _NAME.match(spec)
            if match:
                inner = tuple(e.strip() for e in (match.group(2) or "[]")[1:-1].split(",") if e.strip())
                todo.append((match.group(1), inner))
    return [f"{name}=={version}" for name, version in sorted(found.items())]


def build(pipeline: Pipeline, out: Path) -> str:
    """The artifacts in `out` (emptied first); their version: the wheel's, then a digest of every file."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(REPO_ROOT)],
        capture_output=True,
        text=True,
        check=False,
    )
    wheels = list(out.glob("coinstream-*.whl"))
    if done.returncode != 0 or len(wheels) != 1:
        raise FatalError(f"building the wheel failed: {done.stderr.strip()[-300:] or done.stdout[-300:]}")
    for name, extras in LOCKS.items():
        (out / name).write_text("\n".join(pinned(extras)) + "\n")
    config = out / "config"
    config.mkdir()
    shutil.copy2(pipeline.root / "pipeline.toml", config / "pipeline.toml")
    for file in pipeline.delivery_files.values():  # named relative to pipeline.toml: kept so
        target = config / file.relative_to(pipeline.root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, target)
    digest = hashlib.sha256()
    for file in sorted(p for p in out.rglob("*") if p.is_file()):
        digest.update(file.relative_to(out).as_posix().encode() + b"\0" + file.read_bytes())
    version = wheels[0].name.split("-")[1]
    return f"{version}-{digest.hexdigest()[:12]}"


def upload(s3: Any, bucket: str, out: Path, version: str) -> list[str]:
    """Every artifact to s3://bucket/artifacts/<version>/ (the keys written)."""
    keys = []
    for file in sorted(p for p in out.rglob("*") if p.is_file()):
        key = f"artifacts/{version}/{file.relative_to(out).as_posix()}"
        s3.upload_file(str(file), bucket, key)
        keys.append(key)
    return keys
