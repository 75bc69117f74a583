#!/usr/bin/env bash
# The one test command: installs the Python test tools into .venv (once, in
# the background), builds Floe with clippy's lints, runs the Rust tests, the
# offline checks of infra/ (terraform fmt, checkov, structure tests), and
# the end-to-end tests that check the tables with PyIceberg, DuckDB and
# Spark. One build profile: the container image's
# release build compiles the same code and is not repeated here (CI time).
#
# Environment: FLOE_VENV (virtualenv path), CARGO_TARGET_DIR (cargo's usual),
# FLOE_TEST_WORKERS (pytest workers; default one per core, at most 4),
# PYTEST_ARGS (extra pytest arguments, e.g. "-k smoke").
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${FLOE_VENV:-$ROOT/.venv}"

step() { printf '\n== %s\n' "$*"; }

# The test tools install (network and disk, little CPU) while Floe builds
# (CPU): on a fresh machine each takes minutes.
LOGS="$(mktemp -d)"
# On a failure, the background installs stop with the script.
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$LOGS"' EXIT
step "test tools and infra virtualenvs, in the background (logs: $LOGS)"
bash scripts/test-tools.sh >"$LOGS/test-tools.log" 2>&1 &
TOOLS=$!
bash scripts/infra-check.sh --setup-only >"$LOGS/infra-setup.log" 2>&1 &
INFRA=$!
# wait_for PID LOG NAME: the background job's end; its log, and a failure, when it failed.
wait_for() {
    if ! wait "$1"; then
        cat "$2" >&2
        printf 'scripts/test.sh: %s failed (log above)\n' "$3" >&2
        exit 1
    fi
    cat "$2"
}

step "cargo build, every target, with clippy's lints (warnings are errors; no unwrap/expect outside tests)"
# One compile serves the lints, the binary and the tests: clippy-driver
# compiles Floe's own targets in place of rustc (what `cargo clippy` does, but
# building instead of only checking), so the dependencies are built once
# rather than checked for clippy and then built again. CLIPPY_ARGS is how
# `cargo clippy -- -D warnings` hands its arguments to the driver. Every
# cargo command below runs with the same two variables and so reuses this
# build; a later plain `cargo build` recompiles Floe's own crate only.
RUSTC_WORKSPACE_WRAPPER="$(command -v clippy-driver)" || {
    printf 'scripts/test.sh: clippy-driver not found (rustup component add clippy)\n' >&2
    exit 1
}
export RUSTC_WORKSPACE_WRAPPER
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
cargo build --locked --all-targets

step "schema files (floe schema check)"
# Every file and step of each chain; with git history, also that no schema
# file of the base revision (FLOE_SCHEMA_BASE, default the previous commit)
# was edited or removed: the chain is append-only.
BASE="${FLOE_SCHEMA_BASE:-HEAD~1}"
if git rev-parse --verify -q "$BASE^{commit}" >/dev/null 2>&1; then
    cargo run --locked --quiet -- schema check --since "$BASE"
else
    cargo run --locked --quiet -- schema check
fi

step "cargo test"
cargo test --locked

step "test tools (finishing)"
wait_for "$TOOLS" "$LOGS/test-tools.log" "scripts/test-tools.sh"
wait_for "$INFRA" "$LOGS/infra-setup.log" "scripts/infra-check.sh --setup-only"

TARGET_DIR="$(cargo metadata --format-version 1 --no-deps --locked \
    | "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
export FLOE_BIN="$TARGET_DIR/debug/floe"

step "infrastructure checks (scripts/infra-check.sh)"
FLOE_BIN="$FLOE_BIN" PYTEST_ARGS= bash scripts/infra-check.sh

# One pytest worker per core, at most four (each starts its own Spark).
WORKERS="${FLOE_TEST_WORKERS:-$(nproc)}"
(( WORKERS <= 4 )) || WORKERS=4
step "end-to-end tests (pytest, $WORKERS workers)"
# tests/infra runs above, in its own virtualenv. Each test has its own
# warehouse, moto server and ports, so tests run side by side; worksteal
# keeps both workers busy to the end despite a few minute-long tests.
# shellcheck disable=SC2086
"$VENV/bin/python" -m pytest tests -q --durations=15 --ignore=tests/infra \
    -n "$WORKERS" --dist worksteal ${PYTEST_ARGS:-}
