"""The local AWS launcher (support/aws.py) behaves like Kinesis and Glue where stock moto does not."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import urllib.error
from concurrent.futures import ThreadPoolExecutor
import urllib.request

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from support import aws
from support.aws import HASH_KEY_MAX, MotoServer, max_in_window

STREAM = "events"
SHARD0 = "shardId-000000000000"
SHARD1 = "shardId-000000000001"
SHARD2 = "shardId-000000000002"
MIDDLE = 2**127


@pytest.fixture
def moto():
    yield from aws.moto_fixture()


@pytest.fixture
def kinesis(moto: MotoServer):
    return moto.client("kinesis")


def hash_key(partition_key: str) -> int:
    return int(hashlib.md5(partition_key.encode()).hexdigest(), 16)


def lines(prefix: str, n: int) -> list[bytes]:
    return [f'{{"{prefix}": {i}}}'.encode() for i in range(n)]


def iterator(kinesis, shard_id: str, kind: str = "TRIM_HORIZON", **kw) -> str:
    return kinesis.get_shard_iterator(StreamName=STREAM, ShardId=shard_id, ShardIteratorType=kind, **kw)[
        "ShardIterator"
    ]


def read_all(kinesis, shard_id: str, limit: int = 10_000) -> tuple[list[dict], list[dict]]:
    """Reads a shard from TRIM_HORIZON until its end (closed) or tip (open).
    Returns (records, responses)."""
    it = iterator(kinesis, shard_id)
    records: list[dict] = []
    responses: list[dict] = []
    while True:
        resp = kinesis.get_records(ShardIterator=it, Limit=limit)
        responses.append(resp)
        records.extend(resp["Records"])
        it = resp.get("NextShardIterator")
        if it is None or not resp["Records"]:
            return records, responses


def list_shards(kinesis, **kw) -> dict[str, dict]:
    return {s["ShardId"]: s for s in kinesis.list_shards(StreamName=STREAM, **kw)["Shards"]}


def hash_range(shard: dict) -> tuple[int, int]:
    r = shard["HashKeyRange"]
    return int(r["StartingHashKey"]), int(r["EndingHashKey"])


def error_of(excinfo) -> tuple[str, int]:
    resp = excinfo.value.response
    return resp["Error"]["Code"], resp["ResponseMetadata"]["HTTPStatusCode"]


# -- split -------------------------------------------------------------------


def test_split_parent_keeps_records_children_get_new_ones_and_parent_ends_with_child_shards(moto, kinesis):
    moto.create_stream(STREAM, shards=1)
    before = lines("before", 20)
    put_before = moto.put_lines(STREAM, before)
    assert {r["ShardId"] for r in put_before} == {SHARD0}

    assert moto.split(STREAM, SHARD0) == [SHARD1, SHARD2]

    after = lines("after", 40)
    keys = [f"key-{i}" for i in range(40)]
    put_after = moto.put_lines(STREAM, after, partition_key=lambda i, _: keys[i])
    expected_shard = [SHARD1 if hash_key(k) < MIDDLE else SHARD2 for k in keys]
    assert [r["ShardId"] for r in put_after] == expected_shard
    assert SHARD1 in expected_shard and SHARD2 in expected_shard  # both children used

    shards = list_shards(kinesis)
    assert sorted(shards) == [SHARD0, SHARD1, SHARD2]
    parent = shards[SHARD0]
    assert "EndingSequenceNumber" in parent["SequenceNumberRange"]
    assert "ParentShardId" not in parent
    assert hash_range(parent) == (0, HASH_KEY_MAX)
    for child, rng in ((SHARD1, (0, MIDDLE - 1)), (SHARD2, (MIDDLE, HASH_KEY_MAX))):
        assert shards[child]["ParentShardId"] == SHARD0
        assert "AdjacentParentShardId" not in shards[child]
        assert "EndingSequenceNumber" not in shards[child]["SequenceNumberRange"]
        assert hash_range(shards[child]) == rng
        assert int(shards[child]["SequenceNumberRange"]["StartingSequenceNumber"]) > int(
            parent["SequenceNumberRange"]["EndingSequenceNumber"]
        )

    # The parent: exactly the records put before the split, then its end.
    records, responses = read_all(kinesis, SHARD0)
    assert [r["Data"] for r in records] == before
    assert [r["SequenceNumber"] for r in records] == [r["SequenceNumber"] for r in put_before]
    last = responses[-1]
    assert "NextShardIterator" not in last
    assert last["ChildShards"] == [
        {
            "ShardId": SHARD1,
            "ParentShards": [SHARD0],
            "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": str(MIDDLE - 1)},
        },
        {
            "ShardId": SHARD2,
            "ParentShards": [SHARD0],
            "HashKeyRange": {"StartingHashKey": str(MIDDLE), "EndingHashKey": str(HASH_KEY_MAX)},
        },
    ]
    assert all("ChildShards" not in r for r in responses[:-1])
    ending = int(parent["SequenceNumberRange"]["EndingSequenceNumber"])
    assert all(int(r["SequenceNumber"]) < ending for r in records)

    # The children: only records put after the split, each where its key hashes.
    for child in (SHARD1, SHARD2):
        records, responses = read_all(kinesis, child)
        want = [after[i] for i in range(40) if expected_shard[i] == child]
        assert [r["Data"] for r in records] == want
        assert all("ChildShards" not in r for r in responses)
        assert responses[-1]["NextShardIterator"]  # open shard: never ends
        seqs = [int(r["SequenceNumber"]) for r in records]
        assert seqs == sorted(set(seqs))

    summary = kinesis.describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]
    assert summary["OpenShardCount"] == 2
    assert summary["StreamStatus"] == "ACTIVE"


def test_closed_shard_read_in_pages_ends_with_the_response_that_returns_its_last_records(moto, kinesis):
    moto.create_stream(STREAM, shards=1)
    moto.put_lines(STREAM, lines("x", 4), partition_key="p")
    moto.split(STREAM, SHARD0)

    it = iterator(kinesis, SHARD0)
    first = kinesis.get_records(ShardIterator=it, Limit=2)
    assert [r["Data"] for r in first["Records"]] == lines("x", 4)[:2]
    assert first["NextShardIterator"] and "ChildShards" not in first
    second = kinesis.get_records(ShardIterator=first["NextShardIterator"], Limit=2)
    assert [r["Data"] for r in second["Records"]] == lines("x", 4)[2:]
    assert "NextShardIterator" not in second
    assert [c["ShardId"] for c in second["ChildShards"]] == [SHARD1, SHARD2]

    # An iterator already at the end (LATEST, or AFTER the last record) ends at once.
    for it in (
        iterator(kinesis, SHARD0, "LATEST"),
        iterator(kinesis, SHARD0, "AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=second["Records"][-1]["SequenceNumber"]),
    ):
        resp = kinesis.get_records(ShardIterator=it)
        assert resp["Records"] == []
        assert "NextShardIterator" not in resp
        assert [c["ShardId"] for c in resp["ChildShards"]] == [SHARD1, SHARD2]


def test_empty_closed_shard_ends_on_first_get_records(moto, kinesis):
    moto.create_stream(STREAM, shards=1)
    moto.split(STREAM, SHARD0)
    resp = kinesis.get_records(ShardIterator=iterator(kinesis, SHARD0))
    assert resp["Records"] == []
    assert "NextShardIterator" not in resp
    assert len(resp["ChildShards"]) == 2


# -- merge -------------------------------------------------------------------


def test_merge_parents_keep_records_child_gets_new_ones_with_both_parents(moto, kinesis):
    moto.create_stream(STREAM, shards=2)
    keys = [f"key-{i}" for i in range(30)]
    before = lines("before", 30)
    put_before = moto.put_lines(STREAM, before, partition_key=lambda i, _: keys[i])
    before_shard = [SHARD0 if hash_key(k) < MIDDLE else SHARD1 for k in keys]
    assert [r["ShardId"] for r in put_before] == before_shard
    assert set(before_shard) == {SHARD0, SHARD1}

    assert moto.merge(STREAM, SHARD0, SHARD1) == SHARD2

    after = lines("after", 30)
    put_after = moto.put_lines(STREAM, after, partition_key=lambda i, _: keys[i])
    assert {r["ShardId"] for r in put_after} == {SHARD2}

    shards = list_shards(kinesis)
    child = shards[SHARD2]
    assert child["ParentShardId"] == SHARD0
    assert child["AdjacentParentShardId"] == SHARD1
    assert hash_range(child) == (0, HASH_KEY_MAX)
    assert "EndingSequenceNumber" not in child["SequenceNumberRange"]
    expected_child = [
        {
            "ShardId": SHARD2,
            "ParentShards": [SHARD0, SHARD1],
            "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": str(HASH_KEY_MAX)},
        }
    ]
    for parent in (SHARD0, SHARD1):
        assert "EndingSequenceNumber" in shards[parent]["SequenceNumberRange"]
        records, responses = read_all(kinesis, parent, limit=7)
        assert [r["Data"] for r in records] == [before[i] for i in range(30) if before_shard[i] == parent]
        assert "NextShardIterator" not in responses[-1]
        assert responses[-1]["ChildShards"] == expected_child

    records, responses = read_all(kinesis, SHARD2)
    assert [r["Data"] for r in records] == after
    assert "ChildShards" not in responses[-1] and responses[-1]["NextShardIterator"]

    assert kinesis.describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]["OpenShardCount"] == 1


def test_merge_in_either_order_covers_the_union_and_rejects_non_adjacent(moto, kinesis):
    moto.create_stream(STREAM, shards=3)
    shards = list_shards(kinesis)
    with pytest.raises(ClientError) as e:
        kinesis.merge_shards(StreamName=STREAM, ShardToMerge=SHARD0, AdjacentShardToMerge=SHARD2)
    assert error_of(e) == ("InvalidArgumentException", 400)

    child = moto.merge(STREAM, SHARD2, SHARD1)  # the higher range first
    merged = list_shards(kinesis)[child]
    assert merged["ParentShardId"] == SHARD2 and merged["AdjacentParentShardId"] == SHARD1
    assert hash_range(merged) == (hash_range(shards[SHARD1])[0], HASH_KEY_MAX)

    with pytest.raises(ClientError) as e:  # a closed shard can't be merged again
        kinesis.merge_shards(StreamName=STREAM, ShardToMerge=SHARD0, AdjacentShardToMerge=SHARD1)
    assert error_of(e) == ("InvalidArgumentException", 400)


def test_explicit_hash_key_routes_inclusively_to_open_shards(moto, kinesis):
    moto.create_stream(STREAM, shards=1)
    low, high = moto.split(STREAM, SHARD0)
    for key, shard in ((0, low), (MIDDLE - 1, low), (MIDDLE, high), (HASH_KEY_MAX, high)):
        resp = kinesis.put_record(StreamName=STREAM, Data=b"x", PartitionKey="p", ExplicitHashKey=str(key))
        assert resp["ShardId"] == shard
    with pytest.raises(ClientError) as e:
        kinesis.put_record(StreamName=STREAM, Data=b"x", PartitionKey="p", ExplicitHashKey=str(HASH_KEY_MAX + 1))
    assert error_of(e) == ("InvalidArgumentException", 400)


# -- iterators ---------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "garbage!!",
        "bm90LWpzb24=",  # base64 of "not-json"
        base64.urlsafe_b64encode(b'[1,"events","shardId-000000000009","0",9e99]').decode(),  # unknown shard
    ],
)
def test_malformed_or_unknown_iterator_is_invalid_argument(moto, kinesis, bad):
    moto.create_stream(STREAM, shards=1)
    with pytest.raises(ClientError) as e:
        kinesis.get_records(ShardIterator=bad)
    assert error_of(e) == ("InvalidArgumentException", 400)
    assert [c.error for c in moto.calls("GetRecords")] == ["InvalidArgumentException"]


def test_iterator_for_deleted_stream_is_resource_not_found(moto, kinesis):
    moto.create_stream(STREAM, shards=1)
    it = iterator(kinesis, SHARD0)
    kinesis.delete_stream(StreamName=STREAM)
    with pytest.raises(ClientError) as e:
        kinesis.get_records(ShardIterator=it)
    assert error_of(e) == ("ResourceNotFoundException", 400)


def test_iterators_expire_after_iterator_ttl(moto, kinesis):
    moto.create_stream(STREAM, shards=1)
    # Younger than the TTL (300 s): valid.
    it = iterator(kinesis, SHARD0)
    fresh = kinesis.get_records(ShardIterator=it)["NextShardIterator"]
    issued = time.time()  # both were issued before (to the millisecond)
    # Older than the TTL: expired. A TTL is set only once they are issued:
    # on a busy machine a short one could pass between two calls.
    ttl = 0.3
    moto.iterator_ttl = ttl
    aged = issued + ttl + 0.002
    while time.time() <= aged:
        time.sleep(max(0.0, aged - time.time()))
    for old in (it, fresh):
        with pytest.raises(ClientError) as e:
            kinesis.get_records(ShardIterator=old)
        assert error_of(e) == ("ExpiredIteratorException", 400)
    moto.iterator_ttl = 300
    kinesis.get_records(ShardIterator=iterator(kinesis, SHARD0))


def test_sequence_numbers_are_long_opaque_and_checked_per_shard(moto, kinesis):
    moto.create_stream(STREAM, shards=2)
    put = moto.put_lines(STREAM, lines("x", 20), partition_key=lambda i, _: f"key-{i}")
    by_shard = {s: [p["SequenceNumber"] for p in put if p["ShardId"] == s] for s in (SHARD0, SHARD1)}
    assert by_shard[SHARD0] and by_shard[SHARD1]
    for seqs in by_shard.values():
        assert all(s.isdigit() and len(s) > 39 for s in seqs)  # wider than u128
        assert [int(s) for s in seqs] == sorted({int(s) for s in seqs})

    at = kinesis.get_records(
        ShardIterator=iterator(kinesis, SHARD0, "AT_SEQUENCE_NUMBER", StartingSequenceNumber=by_shard[SHARD0][1])
    )
    assert [r["SequenceNumber"] for r in at["Records"]] == by_shard[SHARD0][1:]
    after = kinesis.get_records(
        ShardIterator=iterator(kinesis, SHARD0, "AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=by_shard[SHARD0][1])
    )
    assert [r["SequenceNumber"] for r in after["Records"]] == by_shard[SHARD0][2:]

    for bad in (by_shard[SHARD1][0], "12ab"):  # another shard's number; not a number
        with pytest.raises(ClientError) as e:
            iterator(kinesis, SHARD0, "AT_SEQUENCE_NUMBER", StartingSequenceNumber=bad)
        assert error_of(e) == ("InvalidArgumentException", 400)


def test_iterator_from_stream_arn_works_without_stream_name(moto, kinesis):
    moto.create_stream(STREAM, shards=1)
    moto.put_lines(STREAM, [b"a"])
    arn = kinesis.describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]["StreamARN"]
    it = kinesis.get_shard_iterator(StreamARN=arn, ShardId=SHARD0, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    assert [r["Data"] for r in kinesis.get_records(ShardIterator=it)["Records"]] == [b"a"]


def test_get_records_limit_bounds(moto, kinesis):
    moto.create_stream(STREAM, shards=1)
    moto.put_lines(STREAM, lines("x", 3), partition_key="p")
    assert len(kinesis.get_records(ShardIterator=iterator(kinesis, SHARD0), Limit=1)["Records"]) == 1
    with pytest.raises(ClientError) as e:
        kinesis.get_records(ShardIterator=iterator(kinesis, SHARD0), Limit=10_001)
    assert error_of(e) == ("InvalidArgumentException", 400)


# -- ListShards --------------------------------------------------------------


def test_list_shards_filters_and_pages(moto, kinesis):
    moto.create_stream(STREAM, shards=1)
    moto.split(STREAM, SHARD0)
    assert sorted(list_shards(kinesis, ShardFilter={"Type": "AT_LATEST"})) == [SHARD1, SHARD2]
    assert sorted(list_shards(kinesis, ShardFilter={"Type": "AT_TRIM_HORIZON"})) == [SHARD0]
    assert sorted(list_shards(kinesis, ShardFilter={"Type": "FROM_TRIM_HORIZON"})) == [SHARD0, SHARD1, SHARD2]
    assert sorted(list_shards(kinesis, ShardFilter={"Type": "AFTER_SHARD_ID", "ShardId": SHARD0})) == [SHARD1, SHARD2]
    assert sorted(list_shards(kinesis, ExclusiveStartShardId=SHARD1)) == [SHARD2]

    page = kinesis.list_shards(StreamName=STREAM, MaxResults=2)
    assert [s["ShardId"] for s in page["Shards"]] == [SHARD0, SHARD1]
    with pytest.raises(ClientError) as e:
        kinesis.list_shards(StreamName=STREAM, NextToken=page["NextToken"])
    assert error_of(e) == ("InvalidArgumentException", 400)
    rest = kinesis.list_shards(NextToken=page["NextToken"])
    assert [s["ShardId"] for s in rest["Shards"]] == [SHARD2]
    assert "NextToken" not in rest

    assert [s["ShardId"] for s in moto.shards(STREAM, open_only=True)] == [SHARD1, SHARD2]


# -- faults and the call log -------------------------------------------------


@pytest.mark.parametrize("kind", aws.THROTTLE_KINDS)
def test_throttle_fails_n_get_records_on_that_shard_then_succeeds(moto, kinesis, kind):
    moto.create_stream(STREAM, shards=2)
    it0, it1 = iterator(kinesis, SHARD0), iterator(kinesis, SHARD1)
    moto.throttle(shard_id=SHARD0, times=2, kind=kind)

    kinesis.get_records(ShardIterator=it1)  # another shard: not throttled
    for _ in range(2):
        with pytest.raises(ClientError) as e:
            kinesis.get_records(ShardIterator=it0)
        assert error_of(e) == (kind, 400)
    assert moto.pending_faults() == 0
    kinesis.get_records(ShardIterator=it0)

    got = moto.calls("GetRecords")
    assert [(c.shard_id, c.status, c.error) for c in got] == [
        (SHARD1, 200, None),
        (SHARD0, 400, kind),
        (SHARD0, 400, kind),
        (SHARD0, 200, None),
    ]
    assert all(c.stream == STREAM for c in got)
    times = [c.time for c in got]
    assert times == sorted(times) and times[-1] <= time.monotonic()
    assert [c.operation for c in moto.calls(shard_id=SHARD0)] == ["GetShardIterator", "GetRecords", "GetRecords", "GetRecords"]


def test_throttle_any_shard_and_reset_faults(moto, kinesis):
    moto.create_stream(STREAM, shards=2)
    it0, it1 = iterator(kinesis, SHARD0), iterator(kinesis, SHARD1)
    moto.throttle(times=2)
    for it in (it1, it0):
        with pytest.raises(ClientError) as e:
            kinesis.get_records(ShardIterator=it)
        assert error_of(e) == ("ProvisionedThroughputExceededException", 400)
    kinesis.get_records(ShardIterator=it0)

    moto.throttle(times=5)
    moto.reset_faults()
    assert moto.pending_faults() == 0
    kinesis.get_records(ShardIterator=it0)

    with pytest.raises(ValueError):
        moto.throttle(kind="Nope")


def test_expire_iterators_fails_n_get_records_then_succeeds(moto, kinesis):
    moto.create_stream(STREAM, shards=1)
    moto.put_lines(STREAM, [b"a"])
    it = iterator(kinesis, SHARD0)
    moto.expire_iterators(times=3)
    for _ in range(3):
        with pytest.raises(ClientError) as e:
            kinesis.get_records(ShardIterator=it)
        assert error_of(e) == ("ExpiredIteratorException", 400)
    assert [r["Data"] for r in kinesis.get_records(ShardIterator=it)["Records"]] == [b"a"]
    assert [c.error for c in moto.calls("GetRecords")] == ["ExpiredIteratorException"] * 3 + [None]


def test_injected_error_has_the_aws_json_shape(moto, kinesis):
    """What the Rust SDK parses: HTTP 400, x-amzn-errortype, {"__type", "message"}."""
    moto.create_stream(STREAM, shards=1)
    it = iterator(kinesis, SHARD0)
    moto.throttle(shard_id=SHARD0, times=1)
    req = urllib.request.Request(
        moto.endpoint + "/",
        data=json.dumps({"ShardIterator": it}).encode(),
        headers={
            "X-Amz-Target": "Kinesis_20131202.GetRecords",
            "Content-Type": "application/x-amz-json-1.1",
            "Authorization": "AWS4-HMAC-SHA256 Credential=AKIAFLOETESTKEY00001/20260101/us-east-1/kinesis/"
            "aws4_request, SignedHeaders=host, Signature=0",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 400
    assert e.value.headers["x-amzn-errortype"] == "ProvisionedThroughputExceededException"
    body = json.loads(e.value.read())
    assert set(body) == {"__type", "message"}
    assert body["__type"] == "ProvisionedThroughputExceededException"
    assert SHARD0 in body["message"]


def test_fail_injects_any_operation(moto, kinesis):
    moto.create_stream(STREAM, shards=1)
    moto.fail("ListShards", "LimitExceededException", times=1)
    with pytest.raises(ClientError) as e:
        kinesis.list_shards(StreamName=STREAM)
    assert error_of(e) == ("LimitExceededException", 400)
    moto.fail("GetShardIterator", "InternalFailureException", status=500, shard_id=SHARD0)
    with pytest.raises(ClientError) as e:
        iterator(kinesis, SHARD0)
    assert error_of(e) == ("InternalFailureException", 500)
    assert list_shards(kinesis) and iterator(kinesis, SHARD0)


def test_call_log_measures_rate(moto, kinesis):
    moto.create_stream(STREAM, shards=1)
    it = iterator(kinesis, SHARD0)
    for _ in range(3):
        it = kinesis.get_records(ShardIterator=it)["NextShardIterator"]
    got = moto.calls("GetRecords", shard_id=SHARD0)
    assert len(got) == 3
    assert all(c.time <= c.answered for c in got)
    # A window as long as the calls took holds all three, however long that was.
    assert max_in_window(got, window=got[-1].time - got[0].time + 1e-3) == 3
    assert max_in_window(got, window=1e-9) == 1
    moto.clear_calls()
    assert moto.calls() == []


def test_paced_allows_for_calls_the_server_got_to_late():
    def call(arrived: float, answered: float) -> aws.Call:
        return aws.Call("kinesis", "GetRecords", arrived, SHARD0, STREAM, 200, None, answered)

    # 200 ms between arrivals, answered at once.
    assert aws.paced([call(0.0, 0.01), call(0.2, 0.21), call(0.4, 0.41)], 0.2)
    # 50 ms between arrivals: the first may have waited in the server (it
    # was sent 0.2 s before the second, unseen); a third as soon cannot be.
    assert aws.paced([call(0.5, 0.51), call(0.55, 0.56)], 0.2)
    assert not aws.paced([call(0.5, 0.51), call(0.55, 0.56), call(0.6, 0.61)], 0.2)
    # A client that calls again as soon as it has the answer.
    assert not aws.paced([call(0.0, 0.01), call(0.02, 0.03), call(0.04, 0.05)], 0.2)
    assert aws.paced([], 0.2) and aws.paced([call(0.0, 0.01)], 0.2)


# -- Glue --------------------------------------------------------------------


def test_glue_update_table_enforces_version_id(moto):
    glue = moto.client("glue")
    glue.create_database(DatabaseInput={"Name": "db"})

    def table_input(location: str) -> dict:
        return {
            "Name": "t",
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {"table_type": "ICEBERG", "metadata_location": location},
        }

    glue.create_table(DatabaseName="db", TableInput=table_input("s3://wh/t/metadata/00000.metadata.json"))
    v1 = glue.get_table(DatabaseName="db", Name="t")["Table"]["VersionId"]

    glue.update_table(DatabaseName="db", TableInput=table_input("s3://wh/t/metadata/00001.metadata.json"), VersionId=v1)
    table = glue.get_table(DatabaseName="db", Name="t")["Table"]
    v2 = table["VersionId"]
    assert v2 != v1
    assert table["Parameters"]["metadata_location"] == "s3://wh/t/metadata/00001.metadata.json"

    with pytest.raises(ClientError) as e:  # stale: v1 is no longer current
        glue.update_table(DatabaseName="db", TableInput=table_input("s3://wh/t/metadata/lost.json"), VersionId=v1)
    assert error_of(e) == ("ConcurrentModificationException", 400)
    table = glue.get_table(DatabaseName="db", Name="t")["Table"]
    assert table["VersionId"] == v2
    assert table["Parameters"]["metadata_location"] == "s3://wh/t/metadata/00001.metadata.json"

    glue.update_table(DatabaseName="db", TableInput=table_input("s3://wh/t/metadata/00002.metadata.json"), VersionId=v2)
    v3 = glue.get_table(DatabaseName="db", Name="t")["Table"]["VersionId"]
    assert v3 not in (v1, v2)

    glue.update_table(DatabaseName="db", TableInput=table_input("s3://wh/t/metadata/00003.metadata.json"))  # no VersionId
    assert glue.get_table(DatabaseName="db", Name="t")["Table"]["VersionId"] not in (v1, v2, v3)

    assert [(c.status, c.error) for c in moto.calls("UpdateTable")] == [
        (200, None),
        (400, "ConcurrentModificationException"),
        (200, None),
        (200, None),
    ]


def test_glue_concurrent_updates_with_one_version_id_exactly_one_wins(moto):
    glue = moto.client("glue")
    glue.create_database(DatabaseInput={"Name": "db"})
    glue.create_table(DatabaseName="db", TableInput={"Name": "t", "Parameters": {"metadata_location": "m0"}})
    version = glue.get_table(DatabaseName="db", Name="t")["Table"]["VersionId"]
    start = threading.Barrier(8)

    def commit(i: int) -> str:
        client = moto.client("glue", config=Config(retries={"total_max_attempts": 1}))
        start.wait()
        try:
            client.update_table(
                DatabaseName="db", TableInput={"Name": "t", "Parameters": {"metadata_location": f"m{i + 1}"}}, VersionId=version
            )
            return "ok"
        except ClientError as e:
            return e.response["Error"]["Code"]

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(commit, range(8)))
    assert sorted(outcomes) == ["ConcurrentModificationException"] * 7 + ["ok"]
    winner = outcomes.index("ok")
    assert glue.get_table(DatabaseName="db", Name="t")["Table"]["Parameters"]["metadata_location"] == f"m{winner + 1}"


# -- launcher ----------------------------------------------------------------


def test_env_points_aws_config_at_the_server(moto):
    env = moto.env()
    assert env["AWS_ENDPOINT_URL"] == moto.endpoint == f"http://127.0.0.1:{moto.port}"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["AWS_ACCESS_KEY_ID"] and env["AWS_SECRET_ACCESS_KEY"]
    assert env["AWS_EC2_METADATA_DISABLED"] == "true"
    assert all(isinstance(v, str) for v in env.values())


def test_one_server_per_process_and_fresh_state_on_start(moto, kinesis):
    moto.create_stream(STREAM, shards=1)
    with pytest.raises(RuntimeError):
        MotoServer().start()
    moto.stop()
    with MotoServer() as again:
        assert again.calls() == []
        assert again.client("kinesis").list_streams()["StreamNames"] == []


def test_put_lines_batches_by_count(moto, kinesis):
    moto.create_stream(STREAM, shards=1)
    put = moto.put_lines(STREAM, lines("x", 1201), partition_key="p")
    assert len(put) == 1201
    assert len(moto.calls("PutRecords")) == 3
    records, _ = read_all(kinesis, SHARD0)
    assert [r["Data"] for r in records] == lines("x", 1201)
