"""A local AWS (Kinesis + Glue + DynamoDB) for tests: moto 5.2.5 in a thread, patched to act like AWS.

    from support.aws import MotoServer

    with MotoServer() as aws:
        kinesis = aws.client("kinesis")
        aws.create_stream("events", shards=1)
        aws.put_lines("events", [b'{"id": 1}', b'{"id": 2}'])
        subprocess.run([floe, ...], env={**os.environ, **aws.env()})

The server runs in a thread of the test process, so the test drives faults
with plain method calls (`throttle`, `expire_iterators`, `fail`) and reads
what the server saw with `calls(operation)`.

Stock moto 5.2.5 differs from real AWS in ways a Kinesis consumer trips over.
Importing this module patches moto's classes for the whole process (also for
in-process `moto.mock_aws`) so that:

* SplitShard/MergeShards close the parent(s) like Kinesis: parents keep their
  records, stay listed and readable, and get an EndingSequenceNumber; children
  start empty; PutRecord(s) route by hash key to OPEN shards only (hash key
  ranges are inclusive at both ends, as in Kinesis).
* GetRecords on a closed shard returns its remaining records, and the response
  that reaches the shard's end (the one that returns its last records, or the
  first one after that) has no NextShardIterator and carries ChildShards.
  Real Kinesis may instead return the last records with an iterator and the
  null iterator on the next call; consumers must handle both, this server
  always does the former.
* A malformed shard iterator, or one naming a shard the stream does not have,
  is HTTP 400 InvalidArgumentException (stock: HTTP 500); an iterator for a
  stream that no longer exists is ResourceNotFoundException. Iterators expire
  after `MotoServer.iterator_ttl` seconds (300, as in Kinesis) with
  ExpiredIteratorException.
* GetRecords returns at most `Limit` (default and maximum 10000) records and
  at most 10 MiB of data; a Limit outside 1..10000 is InvalidArgumentException.
* Sequence numbers are 56-digit decimal strings (like Kinesis'), strictly
  increasing per shard and across the stream's history (a child's numbers are
  above its parents'). Treat them as opaque: they do not fit in a u64/u128.
  GetShardIterator AT/AFTER_SEQUENCE_NUMBER rejects a number that is not from
  that shard (InvalidArgumentException), as Kinesis does.
* ListShards honours ShardFilter, ExclusiveStartShardId, MaxResults (at most
  1000 per page) and NextToken (which must not come with StreamName).
* Glue UpdateTable with a VersionId that is not the table's current one fails
  with ConcurrentModificationException (HTTP 400); each successful UpdateTable
  changes GetTable's VersionId (stock moto already increments it).
* Kinesis, Glue and DynamoDB requests are served one at a time (one lock), so
  the VersionId check and the update are atomic, sequence numbers never race,
  and a DynamoDB conditional write is checked and applied as one step (moto's
  server threads would otherwise interleave two writers' check and update).

Moto's backends are process-global: only one MotoServer may run per process at
a time, and starting one resets all moto state.
"""

from __future__ import annotations

import base64
import bisect
import binascii
import datetime as _dt
import hashlib
import itertools
import json
import logging
import math
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import boto3
import moto
from botocore.config import Config
from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult, BaseResponse
from moto.dynamodb.responses import DynamoHandler
from moto.glue.exceptions import GlueClientError
from moto.glue.responses import GlueResponse
from moto.kinesis import models as kinesis_models
from moto.kinesis.exceptions import (
    InvalidArgumentError,
    ResourceNotFoundError,
    StreamNotFoundError,
)
from moto.kinesis.responses import KinesisResponse
from moto.server import ThreadedMotoServer

# The patches below replace moto internals as they are in 5.2.5; another
# version may have moved them, so fail loudly rather than test the wrong thing.
if moto.__version__ != "5.2.5":
    raise ImportError(f"support/aws.py patches moto 5.2.5, found moto {moto.__version__} (see tests/requirements.txt)")

REGION = "us-east-1"
ACCESS_KEY_ID = "AKIAFLOETESTKEY00001"
SECRET_ACCESS_KEY = "floe-test-secret-access-key"
ACCOUNT_ID = "123456789012"  # moto's default account

HASH_KEY_MAX = 2**128 - 1
GET_RECORDS_MAX_LIMIT = 10_000
GET_RECORDS_MAX_BYTES = 10 * 1024 * 1024
LIST_SHARDS_MAX_RESULTS = 1000
PUT_RECORDS_MAX_RECORDS = 500
PUT_RECORDS_MAX_BYTES = 5 * 1024 * 1024

THROTTLE_KINDS = (
    "ProvisionedThroughputExceededException",
    "LimitExceededException",
    "KMSThrottlingException",
)

# Real Kinesis sequence numbers are ~56 decimal digits. Starting from such a
# base makes a consumer that parses them as u64/u128 fail here, not in AWS.
SEQUENCE_BASE = 49 * 10**54
_sequence = itertools.count(1)


def _next_sequence_number() -> int:
    return SEQUENCE_BASE + next(_sequence)


# ---------------------------------------------------------------------------
# Process-wide state shared by the patches (server threads) and MotoServer.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One Kinesis or Glue request the server answered."""

    service: str  # "kinesis", "glue" or "dynamodb"
    operation: str  # e.g. "GetRecords"
    time: float  # time.monotonic() when the request arrived
    shard_id: str | None  # GetRecords: decoded from the iterator; else the ShardId param
    stream: str | None
    status: int  # HTTP status answered
    error: str | None  # the error's __type when status >= 400
    answered: float  # time.monotonic() once the answer was ready, before it was sent


@dataclass
class _Fault:
    operation: str
    kind: str
    shard_id: str | None
    remaining: int
    status: int
    message: str | None
    # A raw answer (e.g. a proxy's HTML error page) instead of an AWS error.
    body: str | None = None


class _State:
    def __init__(self) -> None:
        # Serialises every Kinesis/Glue request (RLock: a patched handler may
        # call another patched method on the same thread).
        self.lock = threading.RLock()
        self.faults: list[_Fault] = []
        self.calls: list[Call] = []
        self.iterator_ttl = 300.0


_STATE = _State()


def _take_fault(operation: str, shard_id: str | None) -> _Fault | None:
    """The first pending fault that matches, with one use consumed."""
    for fault in _STATE.faults:
        if fault.remaining <= 0 or fault.operation != operation:
            continue
        if fault.shard_id is not None and fault.shard_id != shard_id:
            continue
        fault.remaining -= 1
        return fault
    return None


# ---------------------------------------------------------------------------
# Shard iterators: opaque base64 of [version, stream, shard, position, issued].
# ---------------------------------------------------------------------------


def _encode_iterator(stream_name: str, shard_id: str, position: int, issued: float | None = None) -> str:
    issued = time.time() if issued is None else issued
    raw = json.dumps([1, stream_name, shard_id, str(position), round(issued, 3)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_iterator(iterator: Any) -> tuple[str, str, int, float]:
    """(stream, shard, position, issued) or InvalidArgumentException."""
    try:
        raw = base64.urlsafe_b64decode(iterator.encode("ascii"))
        version, stream_name, shard_id, position, issued = json.loads(raw)
        if version != 1 or not isinstance(stream_name, str) or not isinstance(shard_id, str):
            raise ValueError
        return stream_name, shard_id, int(position), float(issued)
    except (AttributeError, UnicodeError, binascii.Error, ValueError, TypeError):
        raise InvalidArgumentError("Invalid ShardIterator.") from None


def _iterator_shard(iterator: Any) -> tuple[str | None, str | None]:
    try:
        stream_name, shard_id, _, _ = _decode_iterator(iterator)
        return stream_name, shard_id
    except InvalidArgumentError:
        return None, None


def _iso(epoch: float) -> str:
    return _dt.datetime.fromtimestamp(epoch, _dt.timezone.utc).strftime("%a %b %d %H:%M:%S UTC %Y")


def _epoch(value: Any) -> float:
    if isinstance(value, _dt.datetime):
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return _dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    raise InvalidArgumentError(f"Invalid timestamp: {value!r}")


# ---------------------------------------------------------------------------
# Kinesis patches.
# ---------------------------------------------------------------------------

Shard = kinesis_models.Shard
Stream = kinesis_models.Stream
KinesisBackend = kinesis_models.KinesisBackend

_stock_shard_init = Shard.__init__


def _shard_init(self: Any, *args: Any, **kwargs: Any) -> None:
    # Real Kinesis gives each shard a StartingSequenceNumber when it is created
    # (stock moto reports the first record's, or "0"), an EndingSequenceNumber
    # fixed when it closes, and the times it opened/closed (ListShards filters).
    _stock_shard_init(self, *args, **kwargs)
    self.starting_sequence_number = _next_sequence_number()
    self.ending_sequence_number = None
    self.opened_at = time.time()
    self.closed_at = None
    self._seqs = []  # sequence numbers of self.records, ascending (bisect)


def _shard_put_record(self: Any, partition_key: str, data: str, explicit_hash_key: str) -> str:
    # Sequence numbers come from one increasing counter (stock: per-shard
    # 1, 2, 3...), so they grow over the stream's history like Kinesis'.
    seq = _next_sequence_number()
    self.records[seq] = kinesis_models.Record(partition_key, data, seq, explicit_hash_key)
    self._seqs.append(seq)
    return str(seq)


def _shard_get_min_sequence_number(self: Any) -> int:
    return self._seqs[0] if self._seqs else 0


def _shard_get_max_sequence_number(self: Any) -> int:
    return self._seqs[-1] if self._seqs else 0


def _shard_close(shard: Any) -> None:
    shard.is_open = False
    shard.ending_sequence_number = _next_sequence_number()
    shard.closed_at = time.time()


def _shard_to_json(self: Any) -> dict[str, Any]:
    # Kinesis' shape: StartingSequenceNumber assigned at creation,
    # EndingSequenceNumber only once CLOSED, parents when the shard has any.
    out: dict[str, Any] = {
        "ShardId": self.shard_id,
        "HashKeyRange": {"StartingHashKey": str(self.starting_hash), "EndingHashKey": str(self.ending_hash)},
        "SequenceNumberRange": {"StartingSequenceNumber": str(self.starting_sequence_number)},
    }
    if self.parent:
        out["ParentShardId"] = self.parent
    if self.adjacent_parent:
        out["AdjacentParentShardId"] = self.adjacent_parent
    if not self.is_open:
        out["SequenceNumberRange"]["EndingSequenceNumber"] = str(self.ending_sequence_number)
    return out


def _next_shard_index(stream: Any) -> int:
    return max(s._shard_id for s in stream.shards.values()) + 1


def _open_shard_count(stream: Any) -> int:
    return sum(1 for s in stream.shards.values() if s.is_open)


def _stream_split_shard(self: Any, shard_to_split: str, new_starting_hash_key: str) -> None:
    # Real SplitShard: the parent becomes CLOSED but keeps its records (readable
    # until they expire); two EMPTY children with ParentShardId split its hash
    # range at NewStartingHashKey. Stock moto re-put the parent's records (into
    # the parent again) and kept routing new records to the closed parent.
    shard = self.shards[shard_to_split]
    new_start = int(new_starting_hash_key)
    if not shard.is_open:
        raise InvalidArgumentError(
            f"Shard {shard.shard_id} in stream {self.stream_name} under account {self.account_id} "
            "has already been merged or split, and thus is not eligible for merging or splitting."
        )
    if not shard.starting_hash < new_start < shard.ending_hash:
        raise InvalidArgumentError(
            f"NewStartingHashKey {new_start} used in SplitShard() on shard {shard.shard_id} in stream "
            f"{self.stream_name} under account {self.account_id} is not both greater than one plus the "
            f"shard's StartingHashKey {shard.starting_hash} and less than the shard's EndingHashKey "
            f"{shard.ending_hash}."
        )
    _shard_close(shard)
    index = _next_shard_index(self)
    low = Shard(index, shard.starting_hash, new_start - 1, parent=shard.shard_id)
    high = Shard(index + 1, new_start, shard.ending_hash, parent=shard.shard_id)
    self.shards[low.shard_id] = low
    self.shards[high.shard_id] = high
    self.shard_count = _open_shard_count(self)


def _stream_merge_shards(self: Any, shard_to_merge: str, adjacent_shard_to_merge: str) -> None:
    # Real MergeShards: both parents become CLOSED and keep their records; one
    # EMPTY child (ParentShardId = ShardToMerge, AdjacentParentShardId =
    # AdjacentShardToMerge) covers the union of their hash ranges, whichever
    # order they were given in. Stock moto copied the parents' records into the
    # child, mis-checked adjacency in one order and kept routing to the parents.
    first = self.shards[shard_to_merge]
    second = self.shards[adjacent_shard_to_merge]
    for shard in (first, second):
        if not shard.is_open:
            raise InvalidArgumentError(
                f"Shard {shard.shard_id} in stream {self.stream_name} under account {self.account_id} "
                "has already been merged or split, and thus is not eligible for merging or splitting."
            )
    low, high = sorted((first, second), key=lambda s: s.starting_hash)
    if first is second or low.ending_hash + 1 != high.starting_hash:
        raise InvalidArgumentError(
            f"Shard {adjacent_shard_to_merge} in stream {self.stream_name} under account "
            f"{self.account_id} is not an adjacent shard to {shard_to_merge}."
        )
    _shard_close(first)
    _shard_close(second)
    child = Shard(
        _next_shard_index(self),
        low.starting_hash,
        high.ending_hash,
        parent=first.shard_id,
        adjacent_parent=second.shard_id,
    )
    self.shards[child.shard_id] = child
    self.shard_count = _open_shard_count(self)


def _hash_key(partition_key: Any, explicit_hash_key: Any) -> int:
    if not isinstance(partition_key, str) or not 1 <= len(partition_key) <= 256:
        raise InvalidArgumentError("PartitionKey must be a string of 1 to 256 characters.")
    if explicit_hash_key:
        try:
            key = int(explicit_hash_key)
        except (TypeError, ValueError):
            key = -1
        if not 0 <= key <= HASH_KEY_MAX:
            raise InvalidArgumentError(
                f"Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, {HASH_KEY_MAX}]. "
                f"Specified value was {explicit_hash_key}"
            )
        return key
    return int(hashlib.md5(partition_key.encode("utf-8")).hexdigest(), 16)


def _stream_get_shard_for_key(self: Any, partition_key: str, explicit_hash_key: str) -> Any:
    # Kinesis routes to the OPEN shard whose inclusive range holds the key.
    # Stock moto considered closed shards too (first match wins, usually the
    # closed parent) and treated EndingHashKey as exclusive (2**128-1 crashed).
    key = _hash_key(partition_key, explicit_hash_key)
    for shard in self.shards.values():
        if shard.is_open and shard.starting_hash <= key <= shard.ending_hash:
            return shard
    raise InvalidArgumentError(f"No open shard holds hash key {key}.")


def _sequence_in_shard(shard: Any, seq: int) -> bool:
    if seq in (shard.starting_sequence_number, shard.ending_sequence_number):
        return True
    i = bisect.bisect_left(shard._seqs, seq)
    return i < len(shard._seqs) and shard._seqs[i] == seq


def _backend_get_shard_iterator(
    self: Any,
    stream_arn: str | None,
    stream_name: str | None,
    shard_id: str,
    shard_iterator_type: str,
    starting_sequence_number: Any,
    at_timestamp: Any,
) -> str:
    # Same positions as stock moto, but: the iterator names the stream even
    # when the caller used StreamARN (stock wrote "None" and GetRecords failed
    # without StreamARN); missing/invalid/foreign sequence numbers and missing
    # timestamps are InvalidArgumentException (stock: HTTP 500 or accepted).
    stream = self.describe_stream(stream_arn=stream_arn, stream_name=stream_name)
    shard = stream.shards.get(shard_id)
    if shard is None:
        raise ResourceNotFoundError(
            f"Shard {shard_id} in stream {stream.stream_name} under account {self.account_id} does not exist"
        )
    kind = shard_iterator_type
    if kind in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
        text = str(starting_sequence_number) if starting_sequence_number is not None else ""
        if not text.isdigit():
            raise InvalidArgumentError(
                f"StartingSequenceNumber {starting_sequence_number} used in GetShardIterator on shard "
                f"{shard_id} in stream {stream.stream_name} under account {self.account_id} is invalid."
            )
        seq = int(text)
        if not _sequence_in_shard(shard, seq):
            raise InvalidArgumentError(
                f"Invalid StartingSequenceNumber. It does not belong to shard {shard_id} in stream "
                f"{stream.stream_name} under account {self.account_id}."
            )
        position = seq - 1 if kind == "AT_SEQUENCE_NUMBER" else seq
    elif kind == "TRIM_HORIZON":
        position = 0
    elif kind == "LATEST":
        position = shard._seqs[-1] if shard._seqs else 0
    elif kind == "AT_TIMESTAMP":
        if at_timestamp is None:
            raise InvalidArgumentError("Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP.")
        position = shard.get_sequence_number_at(_epoch(at_timestamp))
    else:
        raise InvalidArgumentError(f"Invalid ShardIteratorType: {shard_iterator_type}")
    return _encode_iterator(stream.stream_name, shard.shard_id, position)


def _child_shards(stream: Any, shard: Any) -> list[dict[str, Any]]:
    out = []
    for child in sorted(stream.shards.values(), key=lambda s: s._shard_id):
        if shard.shard_id in (child.parent, child.adjacent_parent):
            parents = [p for p in (child.parent, child.adjacent_parent) if p]
            out.append(
                {
                    "ShardId": child.shard_id,
                    "ParentShards": parents,
                    "HashKeyRange": {
                        "StartingHashKey": str(child.starting_hash),
                        "EndingHashKey": str(child.ending_hash),
                    },
                }
            )
    return out


def _backend_get_records(
    self: Any, stream_arn: str | None, shard_iterator: str, limit: int | None
) -> tuple[str | None, list[Any], int, list[dict[str, Any]] | None]:
    # Returns (NextShardIterator or None, records, MillisBehindLatest,
    # ChildShards or None). Stock returned 3 values and never ended a shard.
    stream_name, shard_id, position, issued = _decode_iterator(shard_iterator)
    now = time.time()
    if now - issued > _STATE.iterator_ttl:
        raise JsonRESTError(
            "ExpiredIteratorException",
            f"Iterator expired. The iterator was created at time {_iso(issued)} while right now it is "
            f"{_iso(now)} which is further in the future than the tolerated delay of "
            f"{int(_STATE.iterator_ttl * 1000)} milliseconds.",
        )
    if limit is None:
        limit = GET_RECORDS_MAX_LIMIT
    if not 1 <= int(limit) <= GET_RECORDS_MAX_LIMIT:
        raise InvalidArgumentError(f"Limit {limit} is invalid: it must be between 1 and {GET_RECORDS_MAX_LIMIT}.")
    stream = self.streams.get(stream_name)
    if stream is None:
        raise StreamNotFoundError(stream_name, self.account_id)
    shard = stream.shards.get(shard_id)
    if shard is None:
        raise InvalidArgumentError("Invalid ShardIterator.")

    seqs = shard._seqs
    i = bisect.bisect_right(seqs, position)
    records: list[Any] = []
    size = 0
    while i < len(seqs) and len(records) < int(limit):
        record = shard.records[seqs[i]]
        record_size = len(record.data) * 3 // 4 + len(record.partition_key)
        if records and size + record_size > GET_RECORDS_MAX_BYTES:
            break
        records.append(record)
        size += record_size
        i += 1
    at_end = i >= len(seqs)
    millis_behind = 0
    if records and not at_end:
        millis_behind = int((shard.records[seqs[-1]].created_at - records[-1].created_at) * 1000)
    if at_end and not shard.is_open:
        return None, records, millis_behind, _child_shards(stream, shard)
    new_position = records[-1].sequence_number if records else position
    return _encode_iterator(stream.stream_name, shard.shard_id, new_position), records, millis_behind, None


def _response_get_records(self: Any) -> ActionResult:
    # GetRecords' response: no NextShardIterator once a closed shard is
    # drained, ChildShards then; faults injected by MotoServer come first.
    next_iterator, records, millis_behind, child_shards = self.kinesis_backend.get_records(
        self._get_param("StreamARN"), self._get_param("ShardIterator"), self._get_param("Limit")
    )
    out: dict[str, Any] = {
        "Records": [record.to_json() for record in records],
        "MillisBehindLatest": millis_behind,
    }
    if next_iterator is not None:
        out["NextShardIterator"] = next_iterator
    if child_shards is not None:
        out["ChildShards"] = child_shards
    return ActionResult(out)


def _encode_token(payload: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()


def _decode_token(token: str) -> dict[str, Any]:
    try:
        payload = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
        if not isinstance(payload, dict) or "s" not in payload:
            raise ValueError
        return payload
    except (UnicodeError, binascii.Error, ValueError, TypeError):
        raise InvalidArgumentError("Invalid NextToken.") from None


def _response_list_shards(self: Any) -> ActionResult:
    # Real ListShards: ShardFilter/ExclusiveStartShardId select shards, at most
    # 1000 per page, NextToken identifies the stream and must not come with
    # StreamName. Stock moto ignored the filters and required StreamName on
    # every page.
    stream_name = self._get_param("StreamName")
    stream_arn = self._get_param("StreamARN")
    next_token = self._get_param("NextToken")
    max_results = self._get_param("MaxResults")
    if max_results is not None and int(max_results) < 1:
        raise InvalidArgumentError("MaxResults must be at least 1.")
    page_size = min(int(max_results or LIST_SHARDS_MAX_RESULTS), LIST_SHARDS_MAX_RESULTS)
    if next_token:
        if stream_name:
            raise InvalidArgumentError("NextToken and StreamName cannot be provided together.")
        token = _decode_token(next_token)
        stream_name, shard_filter, after = token["s"], token.get("f"), token.get("a")
        stream = self.kinesis_backend.describe_stream(stream_arn=None, stream_name=stream_name)
    else:
        stream = self.kinesis_backend.describe_stream(stream_arn=stream_arn, stream_name=stream_name)
        shard_filter = self._get_param("ShardFilter")
        after = self._get_param("ExclusiveStartShardId")

    shards = sorted(stream.shards.values(), key=lambda s: s.shard_id)
    if after:
        shards = [s for s in shards if s.shard_id > after]
    if shard_filter:
        kind = shard_filter.get("Type")
        if kind == "AFTER_SHARD_ID":
            if not shard_filter.get("ShardId"):
                raise InvalidArgumentError("ShardId is required for the AFTER_SHARD_ID ShardFilter type.")
            shards = [s for s in shards if s.shard_id > shard_filter["ShardId"]]
        elif kind == "AT_LATEST":
            shards = [s for s in shards if s.is_open]
        elif kind == "AT_TRIM_HORIZON":
            # Nothing expires here, so the trim horizon is the stream's start.
            shards = [s for s in shards if not s.parent]
        elif kind == "FROM_TRIM_HORIZON":
            pass
        elif kind in ("AT_TIMESTAMP", "FROM_TIMESTAMP"):
            if shard_filter.get("Timestamp") is None:
                raise InvalidArgumentError(f"Timestamp is required for the {kind} ShardFilter type.")
            at = _epoch(shard_filter["Timestamp"])
            still_open = [s for s in shards if s.closed_at is None or s.closed_at >= at]
            shards = still_open if kind == "FROM_TIMESTAMP" else [s for s in still_open if s.opened_at <= at]
        else:
            raise InvalidArgumentError(f"Invalid ShardFilter type: {kind}")
        shard_filter = {k: (_epoch(v) if k == "Timestamp" else v) for k, v in shard_filter.items()}

    page, rest = shards[:page_size], shards[page_size:]
    out: dict[str, Any] = {"Shards": [s.to_json() for s in page]}
    if rest:
        out["NextToken"] = _encode_token({"s": stream.stream_name, "a": page[-1].shard_id, "f": shard_filter})
    return ActionResult(out)


# ---------------------------------------------------------------------------
# Glue patch.
# ---------------------------------------------------------------------------


class ConcurrentModificationException(GlueClientError):
    def __init__(self, message: str):
        super().__init__("ConcurrentModificationException", message)


_stock_glue_update_table = GlueResponse.update_table


def _glue_update_table(self: Any) -> Any:
    # Real Glue: UpdateTable with VersionId succeeds only if it is the table's
    # current version (optimistic locking, what Iceberg's Glue catalog relies
    # on); stock moto ignored VersionId and always applied the update.
    params = self.parameters
    version_id = params.get("VersionId")
    if version_id is not None:
        name = (params.get("TableInput") or {}).get("Name") or params.get("Name")
        table = self.glue_backend.get_table(params.get("DatabaseName"), name)
        if str(version_id) != str(table._current_version):
            raise ConcurrentModificationException(
                f"Update table failed due to concurrent modifications: VersionId {version_id} is not the "
                f"current version {table._current_version} of table {params.get('DatabaseName')}.{name}."
            )
    return _stock_glue_update_table(self)


# ---------------------------------------------------------------------------
# Request recording and fault injection around every Kinesis/Glue action.
# ---------------------------------------------------------------------------


def _error_type(body: Any) -> str | None:
    try:
        return json.loads(body).get("__type")
    except (TypeError, ValueError, AttributeError):
        return None


def _make_call_action(service: str, stock: Callable[[Any], Any] = BaseResponse.call_action) -> Callable[[Any], Any]:
    def call_action(self: Any) -> Any:
        # Added by the Floe launcher: one request at a time, record it, and
        # answer with an injected error when a fault matches.
        arrived = time.monotonic()
        operation = self._get_action()
        stream_name = shard_id = None
        if service == "kinesis":
            if operation == "GetRecords":
                stream_name, shard_id = _iterator_shard(self._get_param("ShardIterator"))
            else:
                shard_id = self._get_param("ShardId")
                arn = self._get_param("StreamARN")
                stream_name = self._get_param("StreamName") or (arn.split("/")[-1] if arn else None)
        with _STATE.lock:
            fault = _take_fault(operation, shard_id)
            if fault is not None and fault.body is not None:
                headers = dict(self.response_headers)
                headers.update({"status": str(fault.status), "Content-Type": "text/html"})
                status, body = fault.status, fault.body
            elif fault is not None:
                message = fault.message or _fault_message(fault.kind, shard_id, stream_name)
                err = JsonRESTError(fault.kind, message)
                err.code = fault.status
                headers = dict(self.response_headers)
                headers.update(dict(err.get_headers()))
                headers["status"] = str(fault.status)
                status, headers, body = fault.status, *self._enrich_response(headers, err.get_body())
            else:
                status, headers, body = stock(self)
            error = _error_type(body) if int(status) >= 400 else None
            answered = time.monotonic()
            _STATE.calls.append(Call(service, operation, arrived, shard_id, stream_name, int(status), error, answered))
        return status, headers, body

    return call_action


def _fault_message(kind: str, shard_id: str | None, stream_name: str | None) -> str:
    where = f"shard {shard_id} in stream {stream_name} under account {ACCOUNT_ID}"
    if kind == "ProvisionedThroughputExceededException":
        return f"Rate exceeded for {where}."
    if kind == "LimitExceededException":
        return f"Rate exceeded for {where}."
    if kind == "KMSThrottlingException":
        return "The request was denied due to request throttling. (Service: AWSKMS; Status Code: 400)"
    if kind == "ExpiredIteratorException":
        return "Iterator expired. The iterator was created more than 300000 milliseconds ago (injected by the test)."
    return f"{kind} injected by the test."


_PATCHED = False


def _install_patches() -> None:
    global _PATCHED
    if _PATCHED:
        return
    Shard.__init__ = _shard_init
    Shard.put_record = _shard_put_record
    Shard.get_min_sequence_number = _shard_get_min_sequence_number
    Shard.get_max_sequence_number = _shard_get_max_sequence_number
    Shard.to_json = _shard_to_json
    Stream.split_shard = _stream_split_shard
    Stream.merge_shards = _stream_merge_shards
    Stream.get_shard_for_key = _stream_get_shard_for_key
    KinesisBackend.get_shard_iterator = _backend_get_shard_iterator
    KinesisBackend.get_records = _backend_get_records
    KinesisResponse.get_records = _response_get_records
    KinesisResponse.list_shards = _response_list_shards
    KinesisResponse.call_action = _make_call_action("kinesis")
    GlueResponse.update_table = _glue_update_table
    GlueResponse.call_action = _make_call_action("glue")
    DynamoHandler.call_action = _make_call_action("dynamodb", DynamoHandler.call_action)
    _PATCHED = True


_install_patches()


# ---------------------------------------------------------------------------
# The launcher.
# ---------------------------------------------------------------------------

class _FastStopMotoServer(ThreadedMotoServer):
    """ThreadedMotoServer whose serve loop polls for shutdown every 50 ms
    (werkzeug's default 0.5 s made every stop() take half a second)."""

    def _server_entry(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        app = DomainDispatcherApplication(create_backend_app)
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever(poll_interval=0.05)


_running: MotoServer | None = None
_running_lock = threading.Lock()


def max_in_window(calls: Sequence[Call], window: float = 1.0) -> int:
    """The most calls that arrived within any `window` seconds (half-open),
    e.g. `max_in_window(aws.calls("GetRecords", shard_id=s)) <= 5`."""
    if window <= 0:
        raise ValueError("window must be > 0")
    times = sorted(c.time for c in calls)
    best = 0
    start = 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def paced(calls: Sequence[Call], gap: float) -> bool:
    """Whether one client's calls, made one after another (each once the
    previous one was answered), can have been sent at least `gap` seconds
    apart. The server only knows that each was sent after the previous
    call's answer and before it arrived; the client may have sent a call
    long before a busy server got to it. So this holds for a client that
    waits `gap` between its calls however late the server saw them, where
    counting arrivals in a window (`max_in_window`) can see two calls
    bunched; and it fails for a client that does not wait.

    The check: the earliest send time each call can have had, given the
    gap after the previous one's, must not be after its arrival."""
    earliest = -math.inf
    previous: Call | None = None
    for call in sorted(calls, key=lambda c: c.time):
        earliest = max(previous.answered if previous else -math.inf, earliest + gap)
        if earliest > call.time:
            return False
        previous = call
    return True


class MotoServer:
    """moto on 127.0.0.1:<free port>, patched as described in the module doc.

    Use as a context manager (or `start()`/`stop()`). Starting resets all moto
    state, the faults and the call log.
    """

    def __init__(self) -> None:
        self._server: ThreadedMotoServer | None = None
        self._clients: dict[str, Any] = {}
        self.port: int | None = None
        self.endpoint: str | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> MotoServer:
        global _running
        with _running_lock:
            if _running is not None:
                raise RuntimeError("a MotoServer is already running in this process (moto's state is global)")
            _running = self
        try:
            logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no per-request lines
            self._server = _FastStopMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            self._server.start()
            host, self.port = self._server.get_host_and_port()
            self.endpoint = f"http://{host}:{self.port}"
            req = urllib.request.Request(f"{self.endpoint}/moto-api/reset", data=b"", method="POST")
            with urllib.request.urlopen(req, timeout=10) as resp:
                resp.read()
            with _STATE.lock:
                _STATE.faults.clear()
                _STATE.calls.clear()
                _STATE.iterator_ttl = 300.0
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        global _running
        if self._server is not None:
            self._server.stop()
            self._server = None
        self._clients.clear()
        with _running_lock:
            if _running is self:
                _running = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- clients -----------------------------------------------------------

    def client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client for this server. No retries by default, so injected
        faults reach the test one for one (pass `config=` to change that).
        Without kwargs the client is cached per service."""
        assert self.endpoint, "MotoServer not started"
        if not kwargs and service in self._clients:
            return self._clients[service]
        options: dict[str, Any] = {
            "endpoint_url": self.endpoint,
            "region_name": REGION,
            "aws_access_key_id": ACCESS_KEY_ID,
            "aws_secret_access_key": SECRET_ACCESS_KEY,
            "config": Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=60),
        }
        options.update(kwargs)
        client = boto3.session.Session().client(service, **options)
        if not kwargs:
            self._clients[service] = client
        return client

    def env(self) -> dict[str, str]:
        """Environment for a child process using aws-config (the `floe` binary).
        Merge it over os.environ: {**os.environ, **aws.env()}."""
        assert self.endpoint, "MotoServer not started"
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "false",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    # -- faults and the call log ----------------------------------------------

    @property
    def iterator_ttl(self) -> float:
        """Seconds a shard iterator stays valid (Kinesis: 300)."""
        return _STATE.iterator_ttl

    @iterator_ttl.setter
    def iterator_ttl(self, seconds: float) -> None:
        with _STATE.lock:
            _STATE.iterator_ttl = float(seconds)

    def fail(
        self,
        operation: str,
        kind: str,
        times: int = 1,
        shard_id: str | None = None,
        status: int = 400,
        message: str | None = None,
        body: str | None = None,
    ) -> None:
        """The next `times` calls of Kinesis/Glue `operation` (on `shard_id`,
        or any) answer HTTP `status` with {"__type": kind, "message": ...},
        or with `body` as it is (text/html, no AWS error code) when given.
        Faults queue: each call consumes the first matching one."""
        if times < 1:
            raise ValueError("times must be >= 1")
        with _STATE.lock:
            _STATE.faults.append(_Fault(operation, kind, shard_id, times, status, message, body))

    def throttle(
        self, shard_id: str | None = None, times: int = 1, kind: str = "ProvisionedThroughputExceededException"
    ) -> None:
        """The next `times` GetRecords calls (on `shard_id`, or any) are throttled."""
        if kind not in THROTTLE_KINDS:
            raise ValueError(f"kind must be one of {THROTTLE_KINDS}")
        self.fail("GetRecords", kind, times=times, shard_id=shard_id)

    def expire_iterators(self, shard_id: str | None = None, times: int = 1) -> None:
        """The next `times` GetRecords calls (on `shard_id`, or any) fail with
        ExpiredIteratorException."""
        self.fail("GetRecords", "ExpiredIteratorException", times=times, shard_id=shard_id)

    def reset_faults(self) -> None:
        """Drops every pending fault."""
        with _STATE.lock:
            _STATE.faults.clear()

    def pending_faults(self) -> int:
        """How many injected failures are still to be served."""
        with _STATE.lock:
            return sum(f.remaining for f in _STATE.faults)

    def calls(self, operation: str | None = None, shard_id: str | None = None) -> list[Call]:
        """Kinesis/Glue requests answered so far (all, or of one operation
        and/or shard), in order of arrival."""
        with _STATE.lock:
            return [
                c
                for c in _STATE.calls
                if (operation is None or c.operation == operation) and (shard_id is None or c.shard_id == shard_id)
            ]

    def clear_calls(self) -> None:
        with _STATE.lock:
            _STATE.calls.clear()

    # -- Kinesis helpers ---------------------------------------------------

    def _wait_active(self, stream: str, timeout: float = 10.0) -> None:
        kinesis = self.client("kinesis")
        deadline = time.monotonic() + timeout
        while True:
            status = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"]
            if status == "ACTIVE":
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"stream {stream} still {status} after {timeout}s")
            time.sleep(0.05)

    def shards(self, stream: str, open_only: bool = False) -> list[dict[str, Any]]:
        """ListShards (all pages), sorted by shard id."""
        kinesis = self.client("kinesis")
        args: dict[str, Any] = {"StreamName": stream}
        if open_only:
            args["ShardFilter"] = {"Type": "AT_LATEST"}
        out: list[dict[str, Any]] = []
        while True:
            resp = kinesis.list_shards(**args)
            out.extend(resp["Shards"])
            if not resp.get("NextToken"):
                return sorted(out, key=lambda s: s["ShardId"])
            args = {"NextToken": resp["NextToken"]}

    def create_stream(self, name: str, shards: int = 1) -> None:
        """CreateStream (provisioned, `shards` shards), then waits for ACTIVE."""
        self.client("kinesis").create_stream(StreamName=name, ShardCount=shards)
        self._wait_active(name)

    def put_lines(
        self,
        stream: str,
        lines: Sequence[bytes],
        partition_key: str | Callable[[int, bytes], str] | None = None,
    ) -> list[dict[str, str]]:
        """PutRecords in batches (<= 500 records, <= 5 MiB each), one record
        per line. `partition_key`: a string for every record, a function
        (index, line) -> key, or None for str(index) (spreads over shards).
        Returns one {"ShardId", "SequenceNumber"} per line, in order."""
        kinesis = self.client("kinesis")

        def key(i: int, line: bytes) -> str:
            if partition_key is None:
                return str(i)
            if callable(partition_key):
                return partition_key(i, line)
            return partition_key

        results: list[dict[str, str]] = []
        batch: list[dict[str, Any]] = []
        batch_bytes = 0

        def flush() -> None:
            nonlocal batch, batch_bytes
            if not batch:
                return
            resp = kinesis.put_records(StreamName=stream, Records=batch)
            if resp.get("FailedRecordCount"):
                raise RuntimeError(f"PutRecords failed for {resp['FailedRecordCount']} records: {resp['Records']}")
            results.extend({"ShardId": r["ShardId"], "SequenceNumber": r["SequenceNumber"]} for r in resp["Records"])
            batch, batch_bytes = [], 0

        for i, line in enumerate(lines):
            pk = key(i, line)
            size = len(line) + len(pk.encode())
            if len(batch) == PUT_RECORDS_MAX_RECORDS or (batch and batch_bytes + size > PUT_RECORDS_MAX_BYTES):
                flush()
            batch.append({"Data": bytes(line), "PartitionKey": pk})
            batch_bytes += size
        flush()
        return results

    # -- DynamoDB helpers ----------------------------------------------------

    def create_lease_table(self, name: str) -> None:
        """A shard lease table shaped like infra/modules/lease_table: on
        demand, string hash key `lease_key` and nothing else."""
        self.client("dynamodb").create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "lease_key", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "lease_key", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )

    def lease_items(self, name: str) -> list[dict[str, Any]]:
        """Every item of a lease table (all scan pages), attribute values
        unwrapped: {"lease_key": "...", "counter": 3, ...}."""
        dynamodb = self.client("dynamodb")
        args: dict[str, Any] = {"TableName": name, "ConsistentRead": True}
        out: list[dict[str, Any]] = []
        while True:
            resp = dynamodb.scan(**args)
            for item in resp["Items"]:
                out.append({k: int(v["N"]) if "N" in v else next(iter(v.values())) for k, v in item.items()})
            if not resp.get("LastEvaluatedKey"):
                return out
            args["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def split(self, stream: str, shard_id: str) -> list[str]:
        """Splits an open shard at the middle of its hash range; waits for
        ACTIVE. Returns the two children's ids (lower hash range first)."""
        shard = next(s for s in self.shards(stream) if s["ShardId"] == shard_id)
        start = int(shard["HashKeyRange"]["StartingHashKey"])
        end = int(shard["HashKeyRange"]["EndingHashKey"])
        middle = start + (end - start + 1) // 2
        before = {s["ShardId"] for s in self.shards(stream)}
        self.client("kinesis").split_shard(StreamName=stream, ShardToSplit=shard_id, NewStartingHashKey=str(middle))
        self._wait_active(stream)
        children = [s for s in self.shards(stream) if s["ShardId"] not in before]
        return [s["ShardId"] for s in sorted(children, key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]))]

    def merge(self, stream: str, shard_a: str, shard_b: str) -> str:
        """Merges two adjacent open shards (shard_a = ShardToMerge); waits for
        ACTIVE. Returns the child's id."""
        before = {s["ShardId"] for s in self.shards(stream)}
        self.client("kinesis").merge_shards(StreamName=stream, ShardToMerge=shard_a, AdjacentShardToMerge=shard_b)
        self._wait_active(stream)
        (child,) = [s["ShardId"] for s in self.shards(stream) if s["ShardId"] not in before]
        return child


def moto_fixture() -> Iterator[MotoServer]:
    """Generator for a pytest fixture, e.g. in conftest.py:

        moto = pytest.fixture(aws.moto_fixture, name="moto")

    Function scope gives each test a fresh server and fresh state (~0.3 s).
    A wider scope works too; then call `reset_faults()`/`clear_calls()` and
    use distinct stream/table names per test (moto state is not reset)."""
    with MotoServer() as server:
        yield server
