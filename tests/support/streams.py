"""Kinesis helpers shared by the stream tests: records keyed so that every
version of an event lands in one shard in put order, and KPL aggregates."""

from __future__ import annotations

import hashlib
import json

STREAM = "events"


def key_of(i: int, line: bytes) -> str:
    try:
        obj = json.loads(line)
        if isinstance(obj, dict) and isinstance(obj.get("event_uuid"), str) and obj["event_uuid"]:
            obj["event_uuid"].encode()
            return obj["event_uuid"][:256]
    except (ValueError, UnicodeEncodeError):
        pass
    return f"line-{i}"


def lines_of(path) -> list[bytes]:
    """The lines a Kinesis record can carry: not blank, at most 1 MiB."""
    return [l for l in path.read_bytes().splitlines() if l.strip() and len(l) <= 1_000_000]


def put(server, lines: list[bytes], stream: str = STREAM) -> None:
    """One record per line, keyed by event_uuid (all versions of a key in one shard)."""
    server.put_lines(stream, lines, partition_key=key_of)


def body(row) -> tuple:
    payload = row["payload"]
    if isinstance(payload, str):
        payload = json.loads(payload)
    return (row["event_name"], row["created_at"], json.dumps(payload, sort_keys=True))


def kpl_aggregate(records: list[bytes], corrupt: bool = False) -> bytes:
    """A KPL aggregated record (magic, protobuf AggregatedRecord, MD5)."""

    def varint(v: int) -> bytes:
        out = bytearray()
        while True:
            byte, v = v & 0x7F, v >> 7
            out.append(byte | (0x80 if v else 0))
            if not v:
                return bytes(out)

    def field(number: int, data: bytes) -> bytes:
        return varint(number << 3 | 2) + varint(len(data)) + data

    body = field(1, b"pk-0") + field(1, b"pk-1")
    for i, data in enumerate(records):
        body += field(3, varint(1 << 3) + varint(i % 2) + field(3, data))
    digest = hashlib.md5(body).digest()
    if corrupt:
        digest = bytes([digest[0] ^ 1]) + digest[1:]
    return b"\xf3\x89\x9a\xc2" + body + digest
