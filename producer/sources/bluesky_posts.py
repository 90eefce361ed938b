"""Bluesky posts as the two paths read them: Jetstream events (live) and PostViews (search's history), each counted
in the minute the network saw it, the same minute on both paths (`counted_at`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from coinstream import records
from coinstream.errors import BadPayload, CoinstreamError
from coinstream.records import Envelope
from coinstream.text import matched_terms

SOURCE = "bluesky"
COLLECTION = "app.bsky.feed.post"


def post_from_event(event: Any, fetched_at: datetime) -> Envelope | None:
    """The envelope of one Jetstream event if it is a new post about bitcoin; None for anything else.

    A malformed event (anyone can publish one to the network) raises BadPayload, never anything else.
    """
    try:
        return _post_from_event(event, fetched_at)
    except CoinstreamError:
        raise
    except Exception as exc:
        raise BadPayload(f"bluesky event: {type(exc).__name__}: {exc}"[:300]) from None


def _post_from_event(event: Any, fetched_at: datetime) -> Envelope | None:
    if not isinstance(event, dict) or event.get("kind") != "commit":
        return None  # identity, account and other events pass quietly
    commit = event.get("commit") or {}
    if commit.get("operation") != "create" or commit.get("collection") != COLLECTION:
        return None
    uri = f"at://{event.get('did')}/{COLLECTION}/{commit.get('rkey')}"
    record = commit.get("record") or {}
    if not about_bitcoin(record):
        return None
    return _post(uri, event.get("did"), record, lambda: seen_at(event, uri), fetched_at)


def post_from_view(view: Any, fetched_at: datetime, *, bitcoin_only: bool = True) -> Envelope | None:
    """The envelope of one PostView (what `app.bsky.feed.searchPosts` and the feeds return), counted at its
    `indexedAt` (when the network indexed it); None where it is not about bitcoin (unless `bitcoin_only` is off)."""
    if not isinstance(view, dict) or not isinstance(view.get("uri"), str):
        raise BadPayload("bluesky post view: no 'uri'")
    record = view.get("record")
    if not isinstance(record, dict):
        raise BadPayload(f"bluesky post view {view['uri'][:120]}: no 'record'")
    if bitcoin_only and not about_bitcoin(record):
        return None
    author = view.get("author")
    did = author.get("did") if isinstance(author, dict) else None

    def indexed() -> datetime:
        try:
            at = datetime.fromisoformat(str(view["indexedAt"]))
        except (KeyError, ValueError):
            raise BadPayload(f"bluesky post view {view['uri'][:120]}: no ISO 8601 indexedAt") from None
        if at.tzinfo is None:
            raise BadPayload(f"bluesky post view {view['uri'][:120]}: indexedAt has no UTC offset")
        return at

    return _post(view["uri"], did, record, indexed, fetched_at)


def about_bitcoin(record: dict[str, Any]) -> bool:
    """Whether a post record's text names a watched term or one of its tags is #bitcoin or #btc."""
    tags = [
        str(f.get("tag", "")).lower()
        for facet in record.get("facets") or []
        for f in facet.get("features") or []
        if isinstance(f, dict) and f.get("$type") == "app.bsky.richtext.facet#tag"
    ]
    return bool(matched_terms(str(record.get("text") or ""))) or bool({"bitcoin", "btc"} & set(tags))


def _post(
    uri: str, did: Any, record: dict[str, Any], seen: Callable[[], datetime], fetched_at: datetime
) -> Envelope | None:
    """A post counted when the network saw it (`seen`), its author's `createdAt` kept beside it."""
    try:
        created = datetime.fromisoformat(str(record["createdAt"]))
    except (KeyError, ValueError):
        return None  # a malformed record on a public network: not ours to keep
    if created.tzinfo is None:
        return None
    return records.post(
        SOURCE,
        uri,
        created,
        fetched_at,
        text=str(record.get("text") or ""),
        author_id=did if isinstance(did, str) else None,
        lang=first_lang(record.get("langs")),
        is_retweet=False,
        is_reply="reply" in record,
        seen_at=counted_at(uri, seen()),
    )


#: The alphabet of atproto's TIDs (base32, sortable).
_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
#: How far a post's TID may be from the network's own time for it (Jetstream's `time_us`, the AppView's `indexedAt`)
#: and still be the time it counts at. The app writes the TID with the author's clock, as it writes `createdAt`: a
#: clock that far off is not the network's, and the post counts at the network's own time instead.
TID_TOLERANCE = timedelta(seconds=10)


def tid_time(rkey: str) -> datetime | None:
    """The time in a record key that is a TID (13 base32-sortable characters: 53 bits of microseconds since the
    epoch, 10 of clock id), as whoever made the key wrote it; None for any other key."""
    if len(rkey) != 13 or any(c not in _TID_ALPHABET for c in rkey) or rkey[0] not in _TID_ALPHABET[:16]:
        return None
    value = 0
    for c in rkey:
        value = value * 32 + _TID_ALPHABET.index(c)
    return datetime.fromtimestamp(0, UTC) + timedelta(microseconds=value >> 10)


def counted_at(uri: str, network: datetime) -> datetime:
    """When a post counts: the network's time for it (Jetstream's `time_us`, the AppView's `indexedAt`: two machines,
    often a second apart across a minute's edge), taken as its record key's TID where that lies within TID_TOLERANCE
    of it. The TID is in the URI both paths carry, so the live path and the history count the post in one minute."""
    written = tid_time(uri.rsplit("/", 1)[-1])
    if written is not None and abs(written - network) <= TID_TOLERANCE:
        return written
    return network


def seen_at(event: dict[str, Any], uri: str) -> datetime:
    """When the network saw the post: the event's `time_us` (the record's `createdAt` is the author's clock)."""
    time_us = event.get("time_us")
    if type(time_us) is not int or time_us <= 0:
        raise BadPayload(f"bluesky event {uri[:120]}: no integer time_us, so no minute the network saw it in")
    return datetime.fromtimestamp(time_us // 1_000_000, UTC).replace(microsecond=time_us % 1_000_000)


def xrpc_error(body: Any) -> str:
    """What an XRPC error answer says (`{"error": "AuthMissing", "message": ...}`), or ""."""
    if isinstance(body, dict) and isinstance(body.get("error"), str) and "kind" not in body:
        return f"{body['error']}: {str(body.get('message'))[:200]}"
    return ""


def first_lang(langs: Any) -> str | None:
    """The post's first language tag; some clients send one tag as a string rather than a list."""
    if isinstance(langs, str):
        return langs or None
    if isinstance(langs, list) and langs and isinstance(langs[0], str):
        return langs[0] or None
    return None
