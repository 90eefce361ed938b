"""The KPL aggregation format: many user records in one stream record, which KCL takes apart again.

Backfill puts thousands of small records a second; a shard takes 1,000 records (or 1 MiB) a second, so they go
packed (producer/kinesis_writer.py) and KCL hands the processor each user record with its own sub-sequence
number. What reads the stream directly (the demo's count, `local status`) unpacks them here, so a count of
records is a count of facts whichever way they travelled.

The format (amazon-kinesis-producer's aggregation.md): the 4 magic bytes, a protobuf `AggregatedRecord`
(1: partition key table, 2: explicit hash key table, 3: records, each 1: partition key index, 2: explicit hash
key index, 3: data), then the MD5 of that message. Written here in a few lines rather than through the
aws-kinesis-agg package, which edits `sys.path` when imported; a test checks both read each other's bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

MAGIC = b"\xf3\x89\x9a\xc2"
_DIGEST = 16


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _bytes_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def record_field(partition_key_index: int, explicit_hash_key_index: int | None, data: bytes) -> bytes:
    """One user record as it stands inside an aggregate (field 3 of `AggregatedRecord`)."""
    body = _varint(1 << 3) + _varint(partition_key_index)
    if explicit_hash_key_index is not None:
        body += _varint(2 << 3) + _varint(explicit_hash_key_index)
    return _bytes_field(3, body + _bytes_field(3, data))


def key_field(number: int, key: str) -> bytes:
    """One entry of the partition key table (1) or the explicit hash key table (2)."""
    return _bytes_field(number, key.encode())


def aggregate(message: bytes) -> bytes:
    """A stream record of an `AggregatedRecord` message: magic bytes, the message, its MD5."""
    return MAGIC + message + hashlib.md5(message, usedforsecurity=False).digest()


def _fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of a protobuf message: varints as ints, length-delimited fields as bytes."""
    at = 0

    def varint() -> int:
        nonlocal at
        value = shift = 0
        while True:
            byte = data[at]
            at += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7

    while at < len(data):
        tag = varint()
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            yield number, varint()
        elif wire == 2:
            size = varint()
            yield number, data[at : at + size]
            at += size
        else:
            raise ValueError(f"wire type {wire} is not in the aggregation format")


def user_records(data: bytes) -> list[bytes]:
    """The records `data` carries: itself, or each record of a well-formed aggregate (as KCL reads it)."""
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + _DIGEST:
        return [data]
    message, digest = data[len(MAGIC) : -_DIGEST], data[-_DIGEST:]
    if hashlib.md5(message, usedforsecurity=False).digest() != digest:
        return [data]  # not an aggregate after all: KCL passes such a record on as it is
    try:
        return [
            bytes(inner)
            for number, record in _fields(message)
            if number == 3 and isinstance(record, bytes)
            for field, inner in _fields(record)
            if field == 3 and isinstance(inner, bytes)
        ]
    except (IndexError, ValueError):
        return [data]
