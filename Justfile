# Floe's toolbox. CI runs `.ci/run`, which runs `scripts/test.sh` (= `just test`).

# List the recipes.
default:
    @just --list

# Generate sample events, ingest them into ./floe-demo and print what landed.
demo dir="floe-demo":
    cargo run --release --locked -- demo {{dir}}

# Every test: Rust unit and integration tests, then the end-to-end tests
# against PyIceberg, DuckDB and Spark (installs them into .venv first).
test:
    bash scripts/test.sh

# Build the container image (needs a Docker engine; its build step is
# `cargo build --release --locked`, the same code the tests build in debug).
image tag="dev":
    docker build -t floe:{{tag}} .

# Offline checks of infra/: terraform fmt, checkov, structure tests.
infra-check:
    cargo build --locked --bins
    bash scripts/infra-check.sh

# Format the code.
fmt:
    cargo fmt

# Formatting and clippy, warnings as errors.
lint:
    cargo fmt --check
    cargo clippy --all-targets --locked -- -D warnings

# Type-check quickly while iterating.
check:
    cargo check --all-targets

# Ingest 1M generated events (5 runs; medians of events/s, CPU-s per 1M, peak RSS
# against its 512 MiB target, dedup overhead, a month-old backfill against recent
# events), then the stream path against files from a replayed Kinesis stream
# (Floe's own CPU-s per 1M, stream/file ratio; needs `just test` once for .venv).
bench *args:
    cargo build --release --locked
    python3 scripts/bench.py {{args}}
    .venv/bin/python scripts/bench_kinesis.py --source replay --intervals ""

# Floe against DuckDB and PyIceberg on the same 1M events, rows checked equal
# (medians of wall, CPU-s per 1M, peak RSS, output bytes; needs `just test` once for .venv).
bench-peers *args:
    cargo build --release --locked
    .venv/bin/python scripts/bench_peers.py {{args}}

# Kinesis against files: Floe's own CPU from a replayed stream, then on moto into
# Glue/S3 (events/s, commit latency p50/p99), then freshness at a steady 1k
# events/s per flush interval (needs `just test` once for .venv).
bench-kinesis *args:
    cargo build --release --locked
    .venv/bin/python scripts/bench_kinesis.py {{args}}

# Small files at 1k events/hour (a day of one-minute flushes), before and after
# `floe maintain`, with the maintenance runs' wall and CPU seconds.
bench-maintenance *args:
    cargo build --release --locked
    python3 scripts/bench_maintenance.py {{args}}

# 1, 2, 3 tasks sharing an 8-shard stream on moto through shard leases: wall,
# CPU-s per 1M events, commits and conflict rate (needs `just test` once for .venv).
bench-scale-out *args:
    cargo build --release --locked
    .venv/bin/python scripts/bench_scale_out.py {{args}}

# A soak: thousands of commits from one long `floe run`, with `floe maintain`
# between checkpoints (--maintain): manifests, metadata bytes, planning time, RSS.
soak *args:
    cargo build --release --locked
    .venv/bin/python scripts/soak.py {{args}}

# Describe the demo table.
inspect dir="floe-demo":
    cargo run --release --locked -- inspect --warehouse {{dir}}/warehouse
