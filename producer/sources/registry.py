"""Every source by name: the sources that call an API (`apis.py`: add one there, one line, and it appears in the
CLI, doctor and offline replay), the offline replayer and the simulation."""

from __future__ import annotations

from typing import Any

from coinstream.config import Settings
from coinstream.errors import FatalError
from coinstream.records import Kind
from producer.sources.apis import API_SOURCES
from producer.sources.base import RunOptions, Source
from producer.sources.offline import Offline
from producer.sources.simulated import Simulated

_ALL: tuple[type[Source[Any]], ...] = (Offline, Simulated, *API_SOURCES)
SOURCES: dict[str, type[Source[Any]]] = {source.name: source for source in _ALL}


def names_for(kind: Kind) -> list[str]:
    """The sources that `coinstream produce <kind>s` accepts."""
    return [name for name, source in SOURCES.items() if kind in source.kinds]


def build(name: str, settings: Settings, options: RunOptions) -> Source[Any]:
    """The named source for one run; an unknown name or a kind it does not give is one clear line."""
    source = SOURCES.get(name)
    if source is None:
        raise FatalError(f"unknown source {name!r}: use one of {', '.join(SOURCES)}")
    if options.kind not in source.kinds:
        gives = sorted(k.value for k in source.kinds if k is not Kind.POST_COUNT)
        raise FatalError(f"{name} gives {' and '.join(gives)}s: use `coinstream produce {gives[0]}s --source {name}`")
    return source.build(settings, options)
