"""coinstream: does chatter about bitcoin move with bitcoin trading? This package is the kernel every floor imports."""

from __future__ import annotations

import os
from pathlib import Path

__version__ = "0.1.0"

#: The checkout this package runs from (tests, node_modules); meaningless in an installed wheel.
REPO_ROOT = Path(__file__).resolve().parent.parent

_PACKAGED = Path(__file__).resolve().parent / "resources"

#: Where pipeline.toml, firehose_config/, s3/, redshift/ and deploy/ are read from: the copies the wheel
#: carries (coinstream/resources/, put there at build time), else the checkout's top-level folders.
RESOURCES = _PACKAGED if (_PACKAGED / "pipeline.toml").is_file() else REPO_ROOT


def default_state_dir() -> Path:
    """Local state (pids, logs, spool, cursors, the warehouse file): .coinstream/ in a checkout, else the
    XDG state folder of the user (~/.local/state/coinstream), so an installed wheel never writes into site-packages."""
    if RESOURCES == REPO_ROOT:
        return REPO_ROOT / ".coinstream"
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "coinstream"
