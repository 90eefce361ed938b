"""The one retry policy: exponential backoff with jitter (or the server's own wait), bounded attempts, a log
line before each sleep. Every loop in coinstream that waits and tries again goes through `retrying`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_never,
    wait_exponential_jitter,
)

from coinstream.errors import RetryAfter, TransientError


def retrying(
    logger: logging.Logger,
    *,
    max_attempts: int | None,
    initial: float = 0.2,
    max_wait: float = 10.0,
    sleep: Callable[[float], None] | None = None,
    reraise: bool = True,
) -> Retrying:
    """A tenacity Retrying that retries TransientError only and says why before it sleeps.

    `max_attempts=None` retries until it works: for a caller that must not move on (a KCL record
    processor whose shard waits for Firehose to come back).
    """

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        of = "" if max_attempts is None else f" of {max_attempts}"
        logger.warning("%s; retrying in %.1fs (attempt %d%s)", exc, wait, state.attempt_number, of)

    backoff = wait_exponential_jitter(multiplier=initial, max=max_wait)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetryAfter) and exc.wait is not None:
            return min(exc.wait, max_wait)  # the server said how long (Retry-After, x-rate-limit-reset)
        return float(backoff(state))

    extra: dict[str, Any] = {"sleep": sleep} if sleep else {}
    return Retrying(
        stop=stop_never if max_attempts is None else stop_after_attempt(max_attempts),
        wait=wait,
        retry=retry_if_exception_type(TransientError),
        before_sleep=before_sleep,
        reraise=reraise,
        **extra,
    )
