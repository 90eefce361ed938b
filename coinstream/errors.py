"""One root error; below it the three ways a failure is handled (retry, stop, dead-letter)."""

from __future__ import annotations


class CoinstreamError(Exception):
    """Root of every error coinstream raises on purpose. Its message is one line: what, and the fix."""


class TransientError(CoinstreamError):
    """Worth retrying: throttling, a 5xx, a connection refused, a partial batch failure."""


class RetryAfter(TransientError):
    """A transient answer (429, 5xx) that may say how long to wait before asking again: the retry waits that long."""

    def __init__(self, message: str, wait: float | None) -> None:
        super().__init__(message)
        self.wait = wait


class TryLater(TransientError):
    """The API is closed for now (maintenance, this client rate-limited or blocked for a while): the run keeps its
    state and ends as "nothing to do", so the next scheduled run simply asks again. `wait` is how long the API
    says the closure lasts, where it says (Coinone blocks a client for a minute): a backfill waits that out."""

    def __init__(self, message: str, wait: float | None = None) -> None:
        super().__init__(message)
        self.wait = wait


class FatalError(CoinstreamError):
    """Stop and say why: bad configuration, a missing tool, a port already taken."""


class NoCredentials(FatalError):
    """AWS was asked with no credentials to ask it with: the line says how to give them (and is the whole fix)."""


#: What a user who reaches AWS without credentials is told, from every command.
NO_CREDENTIALS = (
    "no AWS credentials: set AWS_PROFILE (a profile in ~/.aws/config), or AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, or run on a host with an instance role (COINSTREAM_TARGET=aws talks to AWS; unset it "
    "for the local stack)"
)


class SkippableError(CoinstreamError):
    """This one record cannot be processed: dead-letter it with the reason and go on."""


class BadPayload(SkippableError):
    """An API answer that is not what the API documents; the run logs it and fetches nothing from it."""


class RefusedError(SkippableError):
    """A service refused this content for good (too large, invalid): the records in it are dead-lettered."""
