"""Producer state between cron runs (since_id, cursors, the last minute emitted), written atomically."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

from coinstream.errors import FatalError


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class StateFile:
    """One producer's state: a small JSON object."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any]:
        """The saved state, or {} before the first run; a damaged file is one clear FatalError."""
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise FatalError(f"{self.path}: producer state is unreadable ({exc}); fix or delete it") from None
        if not isinstance(data, dict):
            raise FatalError(f"{self.path}: producer state must be a JSON object; fix or delete it")
        return data

    def save(self, state: dict[str, Any]) -> None:
        """Replace the state (write, then rename)."""
        write_atomically(self.path, json.dumps(state, indent=1).encode())
