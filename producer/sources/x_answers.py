"""X API v2's answers (recent search, per-minute counts, problem bodies) read into the record contract."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from coinstream import records
from coinstream.errors import BadPayload
from coinstream.records import Envelope
from producer.sources.parsing import OnSkip, parse_items

SOURCE = "x"
logger = logging.getLogger(__name__)


def parse_recent_search(body: Any, fetched_at: datetime, on_skip: OnSkip | None = None) -> list[Envelope]:
    """Post envelopes for one page of `GET /2/tweets/search/recent` (tweet.fields incl. created_at)."""
    if not isinstance(body, dict):
        raise BadPayload(f"x recent search: expected a JSON object, got {type(body).__name__}")
    if "data" not in body:
        problem = x_problem(body)
        if problem:
            raise BadPayload(f"x recent search: {problem}")
    elif body.get("errors"):
        # partial errors (an expansion it may not show, a deleted quoted post): the posts stand; said once
        logger.warning("x recent search: the answer has its posts and %s", x_problem(body))
    data = body.get("data", [])  # an empty result has no "data" at all
    if not isinstance(data, list):
        raise BadPayload("x recent search: 'data' is not a list")

    def build(post: Any) -> Envelope:
        if not isinstance(post, dict) or not is_x_id(post.get("id")):
            raise BadPayload("x recent search: a post has no numeric string 'id'")
        created = post.get("created_at")
        if not isinstance(created, str):
            raise BadPayload(f"x recent search: post {post['id']} has no created_at (ask for tweet.fields=created_at)")
        try:
            created_at = datetime.fromisoformat(created)
        except ValueError:
            raise BadPayload(
                f"x recent search: post {post['id']} created_at={created[:40]!r} is not ISO 8601"
            ) from None
        refs = post.get("referenced_tweets") or []
        referenced = {r.get("type") for r in refs if isinstance(r, dict)} if isinstance(refs, list) else set()
        text = post.get("text", "")
        return records.post(
            SOURCE,
            post["id"],
            created_at,
            fetched_at,
            text=text if isinstance(text, str) else "",
            author_id=post.get("author_id"),
            lang=post.get("lang"),
            is_retweet="retweeted" in referenced,
            is_reply="replied_to" in referenced,
        )

    return parse_items(data, build, "x recent search", on_skip)


def x_problem(body: dict[str, Any]) -> str:
    """What an X answer says went wrong, in one line ("" if it says nothing): its `errors` list (partial errors
    hold `title`/`detail`, invalid requests `message`), or the problem+json fields (`title`, `detail`) that 401
    and 429 answers carry without any list."""
    errors = (
        [e for e in body.get("errors") or [] if isinstance(e, dict)] if isinstance(body.get("errors"), list) else []
    )
    if errors:
        first = errors[0]
        title = str(first.get("title") or "")[:80]
        said = str(first.get("detail") or first.get("message") or "")[:200]
        others = sorted({str(e.get("title")) for e in errors[1:] if e.get("title") and e.get("title") != title})
        return (
            f"{len(errors)} error{'s' if len(errors) > 1 else ''}: "
            + (f"{title}: " if title else "")
            + said
            + (f" (also {', '.join(others)[:160]})" if others else "")
        )
    if "title" in body or "detail" in body:
        status = f"HTTP {body['status']} " if "status" in body else ""
        return f"{status}{str(body.get('title'))[:80]}: {str(body.get('detail'))[:200]}"
    return ""


def is_x_id(value: Any) -> bool:
    """X ids are decimal strings (64-bit); since_id must be one, or every later request is refused."""
    return isinstance(value, str) and value.isascii() and value.isdigit() and 0 < len(value) <= 20


def parse_counts(body: Any, query: str, fetched_at: datetime, on_skip: OnSkip | None = None) -> list[Envelope]:
    """Per-minute count envelopes of `GET /2/tweets/counts/recent` (granularity=minute), closed minutes only.

    Only a bucket of exactly one whole minute is a minute's count. X answers with partial buckets at both ends
    when the window is not on the minute (`"start": "...T19:18:24.000Z"`): each is skipped with its reason (the
    counts run reads that minute again once whole). Buckets of another size (an answer asked with
    granularity=hour or day) are no minute's count: the page is refused. `meta.total_tweet_count` counts one page
    only and is not used.
    """
    if isinstance(body, dict) and "data" not in body:
        problem = x_problem(body)
        if problem:
            raise BadPayload(f"x counts: {problem}")
    if not isinstance(body, dict) or not isinstance(body.get("data", []), list):
        raise BadPayload("x counts: expected an object with a 'data' list")
    buckets = body.get("data", [])
    # the edges may be partial; a bucket inside the page tells the granularity
    sizes = {size for size in map(_bucket_seconds, buckets[1:-1]) if size is not None and size != 60.0}
    if sizes:
        raise BadPayload(
            f"x counts: buckets of {', '.join(f'{s:g} s' for s in sorted(sizes))}, not one minute: "
            "no minute's count can be read from them (ask with granularity=minute)"
        )

    edges = (id(buckets[0]), id(buckets[-1])) if buckets else ()

    def build(bucket: Any) -> Envelope | None:
        try:
            start = datetime.fromisoformat(str(bucket["start"]))
            end = datetime.fromisoformat(str(bucket["end"]))
            count = bucket["tweet_count"]
        except (KeyError, TypeError, ValueError):
            raise BadPayload(f"x counts: a bucket is not start/end/tweet_count: {bucket!r}"[:200]) from None
        if end.tzinfo is None or start.tzinfo is None or end > fetched_at:
            return None  # the running minute is not a fact yet (and a time without a zone never is)
        if not whole_minute(start, end):
            if id(bucket) in edges:  # X's usual answer to a window not on the minute: nothing is wrong with it
                logger.info("x counts: partial edge bucket %s..%s not stored (read whole later)", start, end)
                return None
            raise BadPayload(f"x counts: the bucket {bucket['start']}..{bucket['end']} is not one whole minute")
        return records.post_count(SOURCE, start, count, query, fetched_at)

    return parse_items(buckets, build, "x counts", on_skip)


def whole_minute(start: datetime, end: datetime) -> bool:
    """Whether [start, end) is exactly one minute, from a minute's start."""
    return end - start == timedelta(minutes=1) and start.second == 0 and start.microsecond == 0


def _bucket_seconds(bucket: Any) -> float | None:
    try:
        start, end = datetime.fromisoformat(str(bucket["start"])), datetime.fromisoformat(str(bucket["end"]))
        return (end - start).total_seconds()
    except (KeyError, TypeError, ValueError):
        return None


def partial_start(body: Any) -> datetime | None:
    """The start of the first partial bucket after a whole one on a counts page (a partial trailing edge): the
    minutes from there on are read again. None where the page ends whole."""
    spans = []
    for bucket in body.get("data", []) if isinstance(body, dict) and isinstance(body.get("data"), list) else []:
        try:
            start, end = datetime.fromisoformat(str(bucket["start"])), datetime.fromisoformat(str(bucket["end"]))
        except (KeyError, TypeError, ValueError):
            continue
        if start.tzinfo is not None and end.tzinfo is not None:
            spans.append((start, whole_minute(start, end)))
    spans.sort()
    first_whole = next((start for start, whole in spans if whole), None)
    if first_whole is None:
        return None
    return next((start for start, whole in spans if not whole and start > first_whole), None)
