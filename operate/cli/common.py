"""What every command module shares: the consoles, one-line errors, settings, common options."""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from coinstream.config import Pipeline, Settings, load_settings
from coinstream.errors import NO_CREDENTIALS, CoinstreamError, FatalError

# Piped output (cron logs, tests) gets a wide fixed width so tables are not squeezed into 80 columns.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 160)
F = TypeVar("F", bound=Callable[..., Any])

EXIT_FAILURE = 1


def print_error(message: str) -> None:
    """The one `error:` line on stderr; the message printed as written (`coinstream[warehouse]` is no markup)."""
    err.print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def friendly(func: F) -> F:
    """Turn a CoinstreamError into one red line and an exit code, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CoinstreamError as exc:
            print_error(str(exc))
            raise typer.Exit(EXIT_FAILURE) from None
        except ModuleNotFoundError as exc:
            part = missing_part(exc)
            if part is None:
                raise
            print_error(part)
            raise typer.Exit(EXIT_FAILURE) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None
        except Exception as exc:  # an AWS call that ran before any classify: only missing credentials are known
            if type(exc).__name__ not in ("NoCredentialsError", "PartialCredentialsError"):
                raise
            print_error(NO_CREDENTIALS)
            raise typer.Exit(EXIT_FAILURE) from None

    return wrapper  # type: ignore[return-value]


def missing_part(exc: ModuleNotFoundError) -> str | None:
    """What to install when a command needs an optional part of coinstream this install lacks (a producer host has
    the core alone); None when the missing module is no optional dependency (a bug: its traceback stays)."""
    from importlib import metadata

    def normal(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    wanted = normal((exc.name or "").partition(".")[0])
    try:
        requires = metadata.requires("coinstream") or []
    except metadata.PackageNotFoundError:
        return None
    extras: dict[str, list[str]] = {}  # extra -> the distributions it adds
    for requirement in requires:
        found = re.match(r"\s*([A-Za-z0-9._-]+)[^;]*;.*\bextra\s*==\s*[\"']([^\"']+)[\"']", requirement)
        if found:
            extras.setdefault(found[2], []).append(normal(found[1]))
    having = [extra for extra, dists in extras.items() if wanted in dists]
    if not having:
        return None
    narrowest = min(having, key=lambda extra: len(extras[extra]))
    return f"this command needs {wanted}, which this install lacks: pip install 'coinstream[{narrowest}]'"


def context(*, deployed: bool = True) -> tuple[Settings, Pipeline]:
    """Settings from the environment and the pipeline they name; on AWS with the names the deployed stack gave
    its resources (`deployed=False` for commands that create or render the stack)."""
    from coinstream.aws import deployed as deployed_names

    settings = load_settings()
    pipeline = Pipeline.load(settings.pipeline_file)
    return settings, deployed_names(settings, pipeline) if deployed else pipeline


def require_local(settings: Settings) -> None:
    """Refuse a local-stack command when the target is AWS."""
    if settings.target != "local":
        raise FatalError("this command manages the local stack; unset COINSTREAM_TARGET (it is 'aws')")


FromDir = Annotated[
    Path | None,
    typer.Option(
        "--from-dir",
        help="offline source: folder of recorded API answers, <source>/*.json (default: COINSTREAM_OFFLINE_DIR).",
        exists=True,
        file_okay=False,
    ),
]
