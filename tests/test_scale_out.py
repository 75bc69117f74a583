"""Several `floe run --stream` tasks sharing one stream through shard leases
in a DynamoDB table (all on moto, see support/aws.py), committing to one
local warehouse.

Every event put is distinct (no duplicates, no bad lines), so exactly once
means: the table holds one row per record put (PyIceberg and DuckDB agree),
and the snapshots' own counters add up to the records put with no
duplicate seen. The second part matters: a record committed twice by two
tasks would be dropped as an identical duplicate by the key index and leave
the row count right, but it shows in `floe.records-read` and
`floe.duplicates-dropped`.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass

import pytest

from support import aws, floe
from support.aws import MotoServer
from support.ops import LogReader, scrape, serving_address, value
from support.readers import (
    Warehouse, duckdb_query, glue_catalog, local_path, pyiceberg_rows,
)
from support.streams import STREAM, lines_of, put
from test_glue import assert_glue_holds, assert_glue_rejects_and_count

EVENTS = "analytics.events"
REJECTED = "analytics.events_rejected"
LEASES = "floe-leases"
SHARDS = 8
BUCKET = "lake"
GLUE_WAREHOUSE = f"s3://{BUCKET}/warehouse"

moto = pytest.fixture(aws.moto_fixture)


@dataclass
class Worker:
    """One `floe run` sharing the stream: its process, log and operations port."""

    name: str
    proc: subprocess.Popen
    log: LogReader
    addr: str

    def metrics(self):
        return scrape(self.addr)

    def leases_owned(self) -> int:
        return int(value(self.metrics(), "floe_leases_owned"))

    def lease_changes(self) -> dict[str, int]:
        m = self.metrics()
        return {k: int(value(m, "floe_lease_changes_total", kind=k)) for k in ("taken", "stolen", "released", "lost")}

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> tuple[str, str]:
        """Signals the process and waits for it: (stdout, stderr). Its
        stderr is the log reader's alone: every line comes from there."""
        self.proc.send_signal(sig)
        self.proc.wait(timeout=timeout)
        out = self.proc.stdout.read() if self.proc.stdout else b""
        return out.decode(), "\n".join(self.log.until_closed())


def start_worker(server: MotoServer, wh: Warehouse | None, name: str, lease_duration: str, **env: str) -> Worker:
    """A task sharing the stream, into the local warehouse `wh` (None: the
    Glue catalog and S3 on moto)."""
    store = ["--warehouse", str(wh.root)] if wh else ["--catalog", "glue", "--warehouse", GLUE_WAREHOUSE, "--s3-path-style"]
    proc = floe.start(
        "run", "--stream", STREAM, *store,
        "--lease-table", LEASES, "--worker-id", name, "--lease-duration", lease_duration,
        "--flush-interval", "1s", "--shutdown-deadline", "30s",
        "--metrics-addr", "127.0.0.1:0", "--log-format", "json",
        **server.env(), FLOE_LOG="info", **env,
    )
    log = LogReader(proc.stderr)
    return Worker(name, proc, log, serving_address(log, proc))


def shard_log(workers: list[Worker]) -> str:
    """Each worker's log lines about shards and leases, for a failure's message."""
    def about_shards(line: str) -> bool:
        return "shard" in line or "lease" in line

    return "\n".join(
        f"{w.name}: {line}" for w in workers for line in w.log.drain() if about_shards(line)
    )


def owners(server: MotoServer) -> Counter:
    """Shard leases per owner in the lease table (None: free)."""
    return Counter(i.get("owner") for i in server.lease_items(LEASES) if i["kind"] == "shard")


def spread_is(server: MotoServer, workers: list[Worker], allowed: set[int]) -> bool:
    """Every shard's lease is held by one of `workers`, each holding a count
    in `allowed`, and each worker's own gauge says the same."""
    return spread_is_of(server, workers, SHARDS, allowed)


def spread_is_of(server: MotoServer, workers: list[Worker], shards: int, allowed: set[int]) -> bool:
    for w in workers:
        floe.exited(w.proc)
    held = owners(server)
    if sum(held[w.name] for w in workers) != shards:
        return False
    if any(held[w.name] not in allowed for w in workers):
        return False
    return all(w.leases_owned() == held[w.name] for w in workers)


def snapshots(wh: Warehouse) -> list[dict]:
    """The events table's snapshots, from its current metadata file."""
    with open(local_path(wh.metadata_location(EVENTS))) as f:
        return json.load(f).get("snapshots", [])


def committed(wh: Warehouse, counter: str = "floe.records-read") -> int:
    """A Floe summary counter added up over every snapshot."""
    if not wh.catalog_db.exists():
        return 0
    try:
        return sum(int(s["summary"].get(counter, 0)) for s in snapshots(wh))
    except (KeyError, LookupError, FileNotFoundError):
        return 0


def wait_committed(wh: Warehouse, n: int, workers: list[Worker], timeout: float = floe.TIMEOUT) -> None:
    def done() -> bool:
        for w in workers:
            floe.exited(w.proc)
        return committed(wh) >= n

    floe.wait_for(done, timeout, lambda: f"{n} records committed (now {committed(wh)})", interval=0.2)


def assert_exactly_once(wh: Warehouse, lines: list[bytes]) -> None:
    uuids = {json.loads(l)["event_uuid"] for l in lines}
    assert len(uuids) == len(lines), "the test's records must be distinct events"
    rows = pyiceberg_rows(wh, EVENTS)
    assert len(rows) == len(lines)
    assert {r["event_uuid"] for r in rows} == uuids
    # Every record has one row at one source position.
    assert len({(r["_source_id"], r["_source_position"]) for r in rows}) == len(lines)
    count = duckdb_query(wh, EVENTS, "SELECT count(*) AS n, count(DISTINCT event_uuid) AS k FROM t")
    assert count == [{"n": len(lines), "k": len(lines)}]
    # Each record was committed once: no commit counted one twice.
    assert committed(wh) == len(lines)
    assert committed(wh, "floe.duplicates-dropped") == 0
    assert committed(wh, "floe.rows-written") == len(lines)


def events(tmp_path, n: int, seed: int) -> list[bytes]:
    return lines_of(floe.generate(tmp_path / f"e{seed}.jsonl", n, seed=seed, dup_rate=0, changed_dup_rate=0, bad_rate=0))


def settled_workers(
    moto: MotoServer, tmp_path, wh: Warehouse, n: int, seed: int, count: int, lease: str, spread: set[int], timeout: float
) -> tuple[list[bytes], tuple[list[bytes], list[bytes], list[bytes]], list[Worker]]:
    """An 8-shard stream, a lease table and `n` distinct events in thirds;
    the first third put, `count` tasks started, each holding a number of
    shards in `spread`, and the first third committed. Returns the events,
    the thirds and the tasks (all stopped if they do not settle)."""
    moto.create_stream(STREAM, shards=SHARDS)
    moto.create_lease_table(LEASES)
    lines = events(tmp_path, n, seed=seed)
    thirds = (lines[: n // 3], lines[n // 3 : 2 * n // 3], lines[2 * n // 3 :])
    put(moto, thirds[0])
    workers = [start_worker(moto, wh, f"w{i}", lease) for i in range(count)]
    try:
        floe.wait_for(
            lambda: spread_is(moto, workers, spread), timeout,
            lambda: f"{SHARDS} shards over {count} workers: {owners(moto)}",
        )
        wait_committed(wh, len(thirds[0]), workers)
    except BaseException:
        stop_all(workers)
        raise
    return lines, thirds, workers


def log_fields(lines: list[str]) -> list[dict]:
    """The fields of the JSON log lines among `lines`."""
    return [json.loads(line)["fields"] for line in lines if line.startswith("{")]


def leases_of(server: MotoServer, name: str) -> dict[str, int]:
    """The shard leases `name` holds in the lease table: shard id -> counter."""
    return {
        i["shard_id"]: i["counter"]
        for i in server.lease_items(LEASES)
        if i["kind"] == "shard" and i.get("owner") == name
    }


def heartbeats(server: MotoServer) -> dict[str, int]:
    """The heartbeat items in the lease table: worker id -> counter."""
    return {i["worker_id"]: i["counter"] for i in server.lease_items(LEASES) if i["kind"] == "worker"}


def kill_after_a_renewal(server: MotoServer, worker: Worker) -> float:
    """Kills `worker` (SIGKILL) as soon as the test sees it renew one of its
    leases. Returns a time before that renewal was written: the start of
    the last look that still showed the old counter. The worker's last
    renewal is no older, so no lease of its can expire to anyone before
    that time plus a lease duration, however slowly the machine ran."""
    last_look = time.monotonic()
    seen = leases_of(server, worker.name)
    assert seen, f"{worker.name} holds no lease: {owners(server)}"

    def renewed() -> bool:
        nonlocal last_look, seen
        floe.exited(worker.proc)
        look = time.monotonic()
        now = leases_of(server, worker.name)
        if any(now.get(shard, counter) != counter for shard, counter in seen.items()):
            return True
        last_look, seen = look, now
        return False

    floe.wait_for(renewed, 60, f"a renewal of {worker.name}'s leases", interval=0.01)
    worker.proc.kill()
    worker.proc.wait()
    return last_look


def stop_all(workers: list[Worker]) -> None:
    """Kills every task still running (a frozen one is let go first)."""
    for w in workers:
        if w.proc.poll() is None:
            w.proc.send_signal(signal.SIGCONT)
            w.proc.kill()
            w.proc.wait()


def test_three_tasks_share_the_shards_and_a_killed_ones_move_after_expiry(moto, tmp_path, tmp_warehouse):
    lines, (first, second, third), workers = settled_workers(
        moto, tmp_path, tmp_warehouse, 9_000, seed=71, count=3, lease="2s", spread={2, 3}, timeout=60
    )
    try:
        # More records, then a task dies without a word: what it read and
        # did not commit is read again by whoever takes its shards.
        put(moto, second)
        victim, survivors = workers[0], workers[1:]
        victims = set(leases_of(moto, victim.name))
        renewed_after = kill_after_a_renewal(moto, victim)
        # Dead, it beats no more: its heartbeat counter is final.
        last_beat = heartbeats(moto)[victim.name]
        # Its leases move only once expired: a lease duration (2 s) after its
        # last renewal at the earliest. How much later depends on how busy
        # the machine is; the waits only bound it.
        first_taken: list[float] = []

        def one_taken() -> bool:
            for w in survivors:
                floe.exited(w.proc)
            held = leases_of(moto, victim.name)
            if set(held) != victims:
                first_taken.append(time.monotonic())
            return bool(first_taken)

        floe.wait_for(one_taken, 60, lambda: f"a survivor to take a lease of {victim.name}: {owners(moto)}", interval=0.05)
        # Seen after the take, so no earlier than it: a sound lower bound.
        print(f"a lease of the killed task taken {first_taken[0] - renewed_after:.2f} s after its last renewal")
        assert first_taken[0] - renewed_after >= 2, "taken before it expired"
        floe.wait_for(lambda: spread_is(moto, survivors, {4}), 60, lambda: f"the survivors to hold 8: {owners(moto)}")
        changes = [w.lease_changes() for w in survivors]
        assert sum(c["taken"] - c["released"] for c in changes) == SHARDS, changes
        assert all(c["stolen"] == 0 and c["lost"] == 0 for c in changes), changes

        put(moto, third)
        wait_committed(tmp_warehouse, len(lines), survivors)
        for w in survivors:
            out, err = w.stop()
            assert w.proc.returncode == 0, err
    finally:
        stop_all(workers)
    assert_exactly_once(tmp_warehouse, lines)
    # The survivors released their leases and removed their heartbeats on the
    # way out. The victim's heartbeat stands still; a survivor reaps it once
    # it stood still for ten lease durations, which a slow run passes before
    # this line and a fast one does not: absent, or exactly as it died.
    assert owners(moto)[None] == SHARDS
    left = heartbeats(moto)
    assert set(left) <= {victim.name}, left
    assert left.get(victim.name, last_beat) == last_beat, "a dead worker's heartbeat moved"


def test_a_task_that_stops_hands_its_shards_over_without_waiting_for_expiry(moto, tmp_path, tmp_warehouse):
    # Long leases: a takeover by expiry would take at least 12 s.
    lines, (first, second, third), workers = settled_workers(
        moto, tmp_path, tmp_warehouse, 6_000, seed=72, count=2, lease="12s", spread={4}, timeout=90
    )
    stay, leave = workers
    try:
        put(moto, second)
        leaving = set(leases_of(moto, leave.name))
        assert len(leaving) == 4
        mark = len(stay.log.drain())
        out, err = leave.stop(signal.SIGTERM)
        assert leave.proc.returncode == 0, err
        assert "released every lease after the final commit" in err
        # Its leases are free (or already taken), its heartbeat is gone.
        assert owners(moto)[leave.name] == 0
        assert all(i.get("worker_id") != leave.name for i in moto.lease_items(LEASES))

        floe.wait_for(lambda: spread_is(moto, [stay], {SHARDS}), 60, lambda: f"one worker to hold 8: {owners(moto)}")
        # Taken as free leases, not as expired ones: nobody waited for the
        # 12 s expiry (how many seconds the take needed is the machine's).
        gains = sorted(
            (f["shard_id"], f["message"])
            for f in log_fields(stay.log.drain()[mark:])
            if f.get("worker_id") == stay.name and f.get("shard_id") in leaving
        )
        assert gains == sorted((shard, "took a free lease") for shard in leaving)
        changes = stay.lease_changes()
        assert changes["taken"] - changes["released"] == SHARDS, changes
        assert changes["stolen"] == 0 and changes["lost"] == 0, changes

        put(moto, third)
        wait_committed(tmp_warehouse, len(lines), [stay])
        out, err = stay.stop()
        assert stay.proc.returncode == 0, err
    finally:
        stop_all(workers)
    assert_exactly_once(tmp_warehouse, lines)
    assert owners(moto) == Counter({None: SHARDS})
    assert [i for i in moto.lease_items(LEASES) if i["kind"] == "worker"] == []


def test_a_joining_task_gets_its_share_by_hand_off(moto, tmp_path, tmp_warehouse):
    moto.create_stream(STREAM, shards=SHARDS)
    moto.create_lease_table(LEASES)
    lines = events(tmp_path, 6_000, seed=73)
    first, second = lines[:3_000], lines[3_000:]
    put(moto, first)
    workers = [start_worker(moto, tmp_warehouse, "w0", "3s")]
    try:
        floe.wait_for(lambda: spread_is(moto, workers, {SHARDS}), 60, lambda: f"one worker to hold 8: {owners(moto)}")
        # Records in flight while the second task joins.
        put(moto, second[:1_500])
        workers.append(start_worker(moto, tmp_warehouse, "w1", "3s"))
        put(moto, second[1_500:])
        floe.wait_for(lambda: spread_is(moto, workers, {4}), 60, lambda: f"8 shards over 2 workers: {owners(moto)}")
        old, new = workers
        # Handed over, not stolen nor lost to expiry.
        assert old.lease_changes() == {"taken": SHARDS, "stolen": 0, "released": 4, "lost": 0}
        assert new.lease_changes() == {"taken": 4, "stolen": 0, "released": 0, "lost": 0}
        wait_committed(tmp_warehouse, len(lines), workers)
        for w in workers:
            out, err = w.stop()
            assert w.proc.returncode == 0, err
    finally:
        stop_all(workers)
    assert_exactly_once(tmp_warehouse, lines)


def test_a_paused_task_whose_shards_moved_commits_none_of_them(moto, tmp_path, tmp_warehouse):
    lines, (first, second, third), workers = settled_workers(
        moto, tmp_path, tmp_warehouse, 6_000, seed=74, count=2, lease="2s", spread={4}, timeout=60
    )
    frozen, other = workers
    try:
        # A long pause (a stuck host): its leases expire and move while it
        # holds records it read but may not have committed yet.
        read_before = int(value(frozen.metrics(), "floe_records_read_total"))
        put(moto, second)
        floe.wait_for(
            lambda: int(value(frozen.metrics(), "floe_records_read_total")) > read_before, 60,
            "the paused task to read some of the new records",
        )
        frozen.proc.send_signal(signal.SIGSTOP)
        floe.wait_for(lambda: owners(moto)[other.name] == SHARDS, 60, lambda: f"the other task to take every shard: {owners(moto)}")
        wait_committed(tmp_warehouse, len(first) + len(second), [other])
        frozen.proc.send_signal(signal.SIGCONT)
        # Awake, it finds it holds nothing and gets its share back by hand-off.
        floe.wait_for(lambda: spread_is(moto, workers, {4}), 60, lambda: f"8 shards over 2 workers again: {owners(moto)}")
        # It lost the 4 it held; the other task lost none to it.
        assert frozen.lease_changes()["lost"] == 4
        changes = [w.lease_changes() for w in workers]
        assert all(c["stolen"] == 0 for c in changes), changes
        assert changes[1]["lost"] == 0, changes
        put(moto, third)
        wait_committed(tmp_warehouse, len(lines), workers)
        for w in workers:
            out, err = w.stop()
            assert w.proc.returncode == 0, err
    finally:
        stop_all(workers)
    assert_exactly_once(tmp_warehouse, lines)


def test_a_commit_racing_the_new_owner_of_its_shards_is_refused_and_read_again(moto, tmp_path, tmp_warehouse):
    moto.create_stream(STREAM, shards=SHARDS)
    moto.create_lease_table(LEASES)
    lines = events(tmp_path, 4_000, seed=75)
    first, second = lines[:2_000], lines[2_000:]
    # w0 freezes in its first commit, its metadata file written and the
    # catalog not yet swapped: past every check a task makes before a commit.
    racer = start_worker(moto, tmp_warehouse, "w0", "2s", FLOE_FAILPOINT="after-metadata-file:stop")
    other = start_worker(moto, tmp_warehouse, "w1", "2s")
    workers = [racer, other]
    try:
        floe.wait_for(lambda: spread_is(moto, workers, {4}), 60, lambda: f"8 shards over 2 workers: {owners(moto)}")
        put(moto, first)
        floe.wait_stopped(racer.proc)
        # Meanwhile its leases expire, and the other task reads and commits
        # its shards from the table's checkpoint (where the frozen commit
        # started too).
        floe.wait_for(lambda: owners(moto)[other.name] == SHARDS, 60, lambda: f"the other task to take every shard: {owners(moto)}")
        wait_committed(tmp_warehouse, len(first), [other])
        racer.proc.send_signal(signal.SIGCONT)
        racer.log.wait_for(
            lambda l: "another task committed a shard this commit held" in l["fields"].get("message", ""),
            racer.proc,
            "the frozen commit to be refused",
        )
        floe.wait_for(lambda: spread_is(moto, workers, {4}), 60, lambda: f"8 shards over 2 workers again: {owners(moto)}")
        put(moto, second)
        wait_committed(tmp_warehouse, len(lines), workers)
        for w in workers:
            out, err = w.stop()
            assert w.proc.returncode == 0, err
    finally:
        stop_all(workers)
    assert_exactly_once(tmp_warehouse, lines)


def glue_committed(server: MotoServer, counter: str = "floe.records-read") -> int:
    """A Floe summary counter added up over the Glue table's snapshots."""
    try:
        table = glue_catalog(server).load_table(EVENTS)
    except Exception:  # not created yet
        return 0
    return sum(int(s.summary.get(counter) or 0) for s in table.metadata.snapshots)


def test_two_tasks_on_a_resharded_stream_into_glue_read_parents_before_children(moto, tmp_path):
    """Versions of a key follow it from a parent shard into its children:
    one shard split and two merged with records on both sides, before two
    tasks start. A child read before the table shows its parents ended
    (whichever task holds them) would let an older version win. Glue and S3,
    as in AWS."""
    moto.client("s3").create_bucket(Bucket=BUCKET)
    moto.create_stream(STREAM, shards=4)
    moto.create_lease_table(LEASES)
    lines = lines_of(floe.generate(tmp_path / "e.jsonl", 16_000, seed=76, dup_rate=0.02, changed_dup_rate=0.05))
    before, after = lines[:8_000], lines[8_000:]
    put(moto, before)
    shards = [s["ShardId"] for s in moto.shards(STREAM)]
    children = moto.split(STREAM, shards[0])
    merged = moto.merge(STREAM, shards[2], shards[3])
    put(moto, after)
    # The parents are slow to read (throttled): a child that did not wait
    # for them would be committed first.
    for parent in (shards[0], shards[2], shards[3]):
        moto.throttle(shard_id=parent, times=5)
    workers = [start_worker(moto, None, f"w{i}", "2s") for i in range(2)]

    def committed_all(n: int):
        def done() -> bool:
            for w in workers:
                floe.exited(w.proc)
            return glue_committed(moto) >= n

        # About a minute on an idle machine: the bound is for a stuck run.
        floe.wait_for(done, 600, lambda: f"{n} records committed (now {glue_committed(moto)})", interval=0.3)

    try:
        committed_all(len(lines))
        # The parents' leases are gone with their ends; the children's spread.
        floe.wait_for(
            lambda: {i["shard_id"] for i in moto.lease_items(LEASES) if i["kind"] == "shard"} == {*children, merged, shards[1]},
            60,
            lambda: f"leases of the open shards only: {moto.lease_items(LEASES)}\n{shard_log(workers)}",
        )
        floe.wait_for(lambda: spread_is_of(moto, workers, 4, {2}), 60, lambda: f"4 open shards over 2 workers: {owners(moto)}")
        for w in workers:
            out, err = w.stop()
            assert w.proc.returncode == 0, err
    finally:
        stop_all(workers)

    assert_glue_rejects_and_count(moto, assert_glue_holds(moto, lines))
    # Every record committed once, across both tasks and all the shards.
    assert glue_committed(moto) == len(lines)
    assert moto.pending_faults() == 0


def test_a_missing_lease_table_is_a_clear_error(moto, tmp_warehouse):
    moto.create_stream(STREAM, shards=1)
    out = floe.run(
        "run", "--stream", STREAM, "--warehouse", str(tmp_warehouse.root), "--lease-table", "nope",
        check=False, **moto.env(),
    )
    assert out.returncode == 1, out.stderr
    assert "lease table nope: Scan failed" in out.stderr
    assert "ResourceNotFoundException" in out.stderr


def test_lease_settings_are_checked(tmp_warehouse):
    out = floe.run(
        "run", "--input", "x.jsonl", "--warehouse", str(tmp_warehouse.root), "--worker-id", "w 1",
        "--lease-duration", "1ms", check=False,
    )
    assert out.returncode == 2
    assert "worker_id: only applies with a lease table (--lease-table)" in out.stderr
    assert "lease_duration: only applies with a lease table (--lease-table)" in out.stderr
    out = floe.run(
        "run", "--stream", STREAM, "--warehouse", str(tmp_warehouse.root), "--lease-table", "x",
        "--worker-id", "w 1", "--lease-duration", "1ms", "--drain", check=False,
    )
    assert out.returncode == 2
    for problem in [
        "lease_table: `x` is not a DynamoDB table name",
        "worker_id: `w 1` must be 1 to 128 characters without spaces",
        "lease_duration: must be at least 1s",
        "drain: cannot be combined with lease_table",
    ]:
        assert problem in out.stderr, out.stderr
    printed = floe.run(
        "run", "--stream", STREAM, "--warehouse", str(tmp_warehouse.root), "--lease-table", LEASES,
        "--check-config",
    ).stdout
    assert "FLOE_LEASE_TABLE=floe-leases\n" in printed
    assert "FLOE_LEASE_DURATION=10s\n" in printed
    assert "FLOE_WORKER_ID=\n" in printed
