"""A Kinesis endpoint that replays pre-built `GetRecords` pages from memory.

For measuring Floe's own cost per streamed event: the real SDK client talks
HTTP (awsJson1_1) to it as to Kinesis, but every answer is built before the
run starts, so serving one costs the benchmark a socket write, not a
server's bookkeeping (moto spends far more CPU per record than Floe does).

It answers the three calls Floe's stream source makes: `ListShards`,
`GetShardIterator` (TRIM_HORIZON and AFTER_SEQUENCE_NUMBER) and `GetRecords`.
Each shard holds its records in pages of at most --page records; after the
last page a shard answers no records and `MillisBehindLatest: 0`, which is
how a caught-up open shard looks, so `floe run --drain` ends there.

The pages live in a child process (`python3 kinesis_replay.py FILE`), so
the benchmark's own process stays small: a child it forks would otherwise
report the benchmark's memory as its own peak RSS.

Used by scripts/bench_kinesis.py (`--source replay`). Only the standard
library is used.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_SEQ_BASE = 10**55  # 56-digit sequence numbers, as Kinesis hands out.


def _seq(i: int) -> str:
    return str(_SEQ_BASE + i)


class Pages:
    """A stream of `shards` shards holding `lines` (one record each, placed
    by a hash of the line's index so every shard gets its share), as the
    bodies of its GetRecords answers."""

    def __init__(self, lines: list[bytes], shards: int = 4, page: int = 10_000):
        per_shard: list[list[bytes]] = [[] for _ in range(shards)]
        for i, line in enumerate(lines):
            digest = hashlib.md5(str(i).encode()).digest()
            per_shard[digest[0] % shards].append(line)
        self.shard_ids = [f"shardId-{n:012d}" for n in range(shards)]
        # pages[shard][k]: the body of the k-th GetRecords answer, ready to send.
        self.pages: list[list[bytes]] = []
        for records in per_shard:
            bodies = []
            for start in range(0, len(records), page):
                chunk = records[start : start + page]
                left = len(records) - start - len(chunk)
                body = {
                    "Records": [
                        {
                            "SequenceNumber": _seq(start + j),
                            "ApproximateArrivalTimestamp": 1.7e9,
                            "Data": base64.b64encode(data).decode(),
                            "PartitionKey": "k",
                        }
                        for j, data in enumerate(chunk)
                    ],
                    "NextShardIterator": None,  # filled per request
                    "MillisBehindLatest": 1000 if left else 0,
                }
                bodies.append(json.dumps(body).encode())
            self.pages.append(bodies)
        self.records = [len(r) for r in per_shard]
        self.page = page

    # An iterator is "<shard index>:<page index>".
    def _answer(self, target: str, request: dict) -> bytes:
        if target == "ListShards":
            return json.dumps({
                "Shards": [
                    {
                        "ShardId": sid,
                        "HashKeyRange": {
                            "StartingHashKey": str(n * (2**128 // len(self.shard_ids))),
                            "EndingHashKey": str((n + 1) * (2**128 // len(self.shard_ids)) - 1),
                        },
                        "SequenceNumberRange": {"StartingSequenceNumber": _seq(0)},
                    }
                    for n, sid in enumerate(self.shard_ids)
                ]
            }).encode()
        if target == "GetShardIterator":
            shard = self.shard_ids.index(request["ShardId"])
            page = 0
            if request["ShardIteratorType"] == "AFTER_SEQUENCE_NUMBER":
                page = (int(request["StartingSequenceNumber"]) - _SEQ_BASE + 1) // self.page
            return json.dumps({"ShardIterator": f"{shard}:{page}"}).encode()
        if target == "GetRecords":
            shard, page = map(int, request["ShardIterator"].split(":"))
            pages = self.pages[shard]
            if page >= len(pages):
                return json.dumps({
                    "Records": [], "NextShardIterator": f"{shard}:{page}", "MillisBehindLatest": 0,
                }).encode()
            # The page's body ends in `"NextShardIterator": null, ...}`: swap in the next iterator.
            return pages[page].replace(b'"NextShardIterator": null', f'"NextShardIterator": "{shard}:{page + 1}"'.encode(), 1)
        raise ValueError(f"the replay endpoint does not answer {target}")


def serve(pages: Pages) -> None:
    """Answers on 127.0.0.1 until killed; prints the port once listening."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length", "0"))
            request = json.loads(self.rfile.read(length) or b"{}")
            target = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
            try:
                body, status = pages._answer(target, request), 200
            except (ValueError, KeyError) as e:
                body = json.dumps({"__type": "InvalidArgumentException", "message": str(e)}).encode()
                status = 400
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


class Replay:
    """The replay endpoint for the lines of `path` (one record each), in a
    child process. Use as a context manager; `env()` points the SDK at it."""

    def __init__(self, path, shards: int = 4, page: int = 10_000):
        self.args = [sys.executable, __file__, str(path), "--shards", str(shards), "--page", str(page)]
        self.port: int | None = None
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> "Replay":
        self._proc = subprocess.Popen(self.args, stdout=subprocess.PIPE)
        assert self._proc.stdout
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the replay endpoint did not start (exit code {self._proc.wait()})")
        self.port = int(line)
        return self

    def __exit__(self, *exc) -> None:
        if self._proc:
            self._proc.kill()
            self._proc.wait()

    def env(self) -> dict[str, str]:
        """Environment for `floe run --stream NAME`: the SDK's Kinesis client
        talks to this endpoint; nothing else is pointed anywhere."""
        assert self.port, "Replay not started"
        return {
            "AWS_ENDPOINT_URL_KINESIS": f"http://127.0.0.1:{self.port}",
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "replay",
            "AWS_SECRET_ACCESS_KEY": "replay",
            "AWS_EC2_METADATA_DISABLED": "true",
        }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Serve the lines of FILE as a Kinesis stream.")
    parser.add_argument("file")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--page", type=int, default=10_000)
    args = parser.parse_args()
    with open(args.file, "rb") as f:
        records = [line for line in f.read().splitlines() if line.strip()]
    serve(Pages(records, args.shards, args.page))
