"""coinstream: does chatter about bitcoin move with bitcoin trading?"""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

#: The repository root: pipeline.toml, firehose_config/, s3/ and redshift/ are read from here.
REPO_ROOT = Path(__file__).resolve().parent.parent
