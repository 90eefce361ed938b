"""X API v2 recent search: parse one page of its answer into post envelopes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from coinstream.records import Envelope, Kind, post_key
from producer.sources.base import BadPayload

SOURCE = "x"


def parse_recent_search(body: Any, fetched_at: datetime) -> list[Envelope]:
    """Post envelopes for one page of `GET /2/tweets/search/recent` (tweet.fields incl. created_at)."""
    if not isinstance(body, dict):
        raise BadPayload(f"x recent search: expected a JSON object, got {type(body).__name__}")
    if "errors" in body and "data" not in body:
        first = body["errors"][0] if body["errors"] else {}
        raise BadPayload(f"x recent search: error {first.get('title') or first.get('message')!r}")
    data = body.get("data", [])  # an empty result has no "data" at all
    if not isinstance(data, list):
        raise BadPayload("x recent search: 'data' is not a list")
    out = []
    for post in data:
        if not isinstance(post, dict) or not isinstance(post.get("id"), str):
            raise BadPayload("x recent search: a post has no string 'id'")
        created = post.get("created_at")
        if not isinstance(created, str):
            raise BadPayload(f"x recent search: post {post['id']} has no created_at (ask for tweet.fields=created_at)")
        try:
            created_at = datetime.fromisoformat(created)
        except ValueError:
            raise BadPayload(f"x recent search: post {post['id']} created_at={created!r} is not ISO 8601") from None
        referenced = {r.get("type") for r in post.get("referenced_tweets") or [] if isinstance(r, dict)}
        payload = {
            "post_id": post["id"],
            "text": str(post.get("text", "")),
            "author_id": post.get("author_id"),
            "lang": post.get("lang"),
            "is_retweet": "retweeted" in referenced,
            "is_reply": "replied_to" in referenced,
        }
        out.append(
            Envelope(
                kind=Kind.POST,
                source=SOURCE,
                key=post_key(SOURCE, post["id"]),
                event_time=created_at,
                fetched_at=fetched_at,
                payload=payload,
            )
        )
    return out
