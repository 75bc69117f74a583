#!/usr/bin/env bash
# Installs what the Python test harness (tests/) needs, on a fresh Debian
# machine that has only python3 (with venv), java and javac 17:
#   1. a virtualenv with tests/requirements.txt (PyIceberg, DuckDB, pyspark, pytest);
#   2. the SQLite JDBC driver jar Spark's Iceberg JDBC catalog loads (Debian package);
#   3. .tools/iceberg-shaded-jackson.jar, the shaded Jackson classes that the
#      iceberg-spark-runtime jar references but does not ship.
#
# Idempotent and safe to re-run after an interruption: each step checks its
# result, writes to a temporary name and moves it into place when complete.
#
# Environment: FLOE_VENV overrides the virtualenv path (default: <repo>/.venv).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FLOE_VENV:-$ROOT/.venv}"
REQUIREMENTS="$ROOT/tests/requirements.txt"
TOOLS="$ROOT/.tools"
SHADED_JAR="$TOOLS/iceberg-shaded-jackson.jar"
SQLITE_JAR=/usr/share/java/sqlite-jdbc.jar

log() { printf 'test-tools: %s\n' "$*"; }
die() { printf 'test-tools: error: %s\n' "$*" >&2; exit 1; }

# A venv whose python runs is usable; a half-made one (interrupted run) is rebuilt.
ensure_venv() {
    if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
        return
    fi
    if [[ -e "$VENV" ]]; then
        # Only ever delete something that is recognisably a virtualenv.
        [[ -f "$VENV/pyvenv.cfg" ]] || die "$VENV exists and is not a virtualenv"
        log "removing broken virtualenv $VENV"
        rm -rf "$VENV"
    fi
    log "creating virtualenv $VENV"
    python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install -y python3-venv)"
}

# pip runs only when the requirements (or the venv's Python) changed since the
# last successful install: the stamp is written after pip succeeds.
ensure_requirements() {
    local stamp="$VENV/.floe-requirements.sha256" want
    want="$({ cat "$REQUIREMENTS"; "$VENV/bin/python" -VV; } | sha256sum | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        log "python packages up to date"
        return
    fi
    log "installing tests/requirements.txt into $VENV"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$REQUIREMENTS"
    printf '%s\n' "$want" >"$stamp.tmp"
    mv "$stamp.tmp" "$stamp"
}

ensure_sqlite_jdbc() {
    if [[ -f "$SQLITE_JAR" ]]; then
        log "sqlite-jdbc present ($SQLITE_JAR)"
        return
    fi
    [[ "$(id -u)" == 0 ]] || die "$SQLITE_JAR missing: run as root or apt-get install libxerial-sqlite-jdbc-java"
    log "installing libxerial-sqlite-jdbc-java"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libxerial-sqlite-jdbc-java >/dev/null
    [[ -f "$SQLITE_JAR" ]] || die "libxerial-sqlite-jdbc-java did not provide $SQLITE_JAR"
}

# Relocates pyspark's own Jackson jars with the ASM copy pyspark ships
# (scripts/ShadeJackson.java), so nothing extra is downloaded.
ensure_shaded_jackson() {
    if [[ -s "$SHADED_JAR" ]]; then
        log "shaded jackson present ($SHADED_JAR)"
        return
    fi
    command -v javac >/dev/null || die "javac not found (Debian: apt-get install -y openjdk-17-jdk-headless)"
    local jars
    jars="$("$VENV/bin/python" -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')"
    # Exact 2.x patterns: pyspark also ships the unrelated jackson-core-asl 1.9.
    local inputs=()
    for name in jackson-annotations jackson-core jackson-databind jackson-datatype-jsr310; do
        local found=("$jars/$name"-2.*.jar)
        [[ -f "${found[0]}" ]] || die "no $name-2.*.jar in $jars"
        inputs+=("${found[0]}")
    done
    local asm=("$jars"/xbean-asm9-shaded-*.jar)
    [[ -f "${asm[0]}" ]] || die "no xbean-asm9-shaded jar in $jars"
    log "building $SHADED_JAR"
    mkdir -p "$TOOLS"
    BUILD_DIR="$(mktemp -d)"
    trap 'rm -rf "$BUILD_DIR"' EXIT
    javac -nowarn -cp "${asm[0]}" -d "$BUILD_DIR" "$ROOT/scripts/ShadeJackson.java"
    java -cp "$BUILD_DIR:${asm[0]}" ShadeJackson "$SHADED_JAR" "${inputs[@]}" | sed 's/^/test-tools: /'
}

main() {
    local start=$SECONDS
    ensure_venv
    ensure_requirements
    ensure_sqlite_jdbc
    ensure_shaded_jackson
    log "ready in $((SECONDS - start)) s: $VENV/bin/python -m pytest tests/"
}

main "$@"
