#!/usr/bin/env bash
# The offline checks of the Terraform in infra/ (no AWS account, no provider
# download, so no `terraform validate` or `plan`):
#   1. virtualenvs with the pinned tools (once; again when a requirements
#      file changes);
#   2. terraform fmt -check (skipped, saying so, when terraform is not on PATH);
#   3. checkov's security rules, failing on any failed check;
#   4. the structure tests in tests/infra (pytest), which run the Floe binary's
#      `floe run --check-config` against the container environment.
#
# Environment:
#   FLOE_INFRA_VENV  folder of the two virtualenvs (default <repo>/.venv-infra):
#                    checkov/ and pytest/ - checkov's HCL parser and python-hcl2
#                    both install a package named hcl2, so they cannot share one.
#   FLOE_BIN         the Floe binary (default <repo>/target/debug/floe).
#   PYTEST_ARGS      extra pytest arguments, e.g. "-k iam".
#
# `--setup-only` stops after step 1 (scripts/test.sh runs it in the
# background while Floe builds).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENVS="${FLOE_INFRA_VENV:-$ROOT/.venv-infra}"

step() { printf '\n== %s\n' "$*"; }
log() { printf 'infra-check: %s\n' "$*"; }
die() { printf 'infra-check: error: %s\n' "$*" >&2; exit 1; }

# ensure_venv DIR REQUIREMENTS: a virtualenv at DIR with REQUIREMENTS
# installed. A half-made one (interrupted run) is rebuilt; pip runs only when
# the requirements (or the venv's Python) changed since the last successful
# install: the stamp is written after pip succeeds.
ensure_venv() {
    local venv="$1" requirements="$2"
    if ! { [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c 'import sys' 2>/dev/null; }; then
        if [[ -e "$venv" ]]; then
            # Only ever delete something that is recognisably a virtualenv.
            [[ -f "$venv/pyvenv.cfg" ]] || die "$venv exists and is not a virtualenv"
            log "removing broken virtualenv $venv"
            rm -rf "$venv"
        fi
        log "creating virtualenv $venv"
        mkdir -p "$(dirname "$venv")"
        python3 -m venv "$venv" || die "python3 -m venv failed (Debian: apt-get install -y python3-venv)"
    fi
    local stamp="$venv/.floe-requirements.sha256" want
    want="$({ cat "$requirements"; "$venv/bin/python" -VV; } | sha256sum | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        log "${requirements#"$ROOT"/} up to date in $venv"
        return
    fi
    log "installing ${requirements#"$ROOT"/} into $venv"
    "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$requirements"
    printf '%s\n' "$want" >"$stamp.tmp"
    mv "$stamp.tmp" "$stamp"
}

step "virtualenvs ($VENVS)"
ensure_venv "$VENVS/checkov" "$ROOT/tests/infra/requirements-checkov.txt"
ensure_venv "$VENVS/pytest" "$ROOT/tests/infra/requirements.txt"
if [[ "${1:-}" == "--setup-only" ]]; then
    exit 0
fi

step "terraform fmt -check -recursive infra"
if command -v terraform >/dev/null 2>&1; then
    # No CLI configuration is needed to format (and without one terraform warns).
    TF_CLI_CONFIG_FILE=/dev/null terraform fmt -check -recursive -diff infra || die "terraform fmt found unformatted files (above); run: terraform fmt -recursive infra"
    log "formatted"
else
    log "SKIPPED terraform fmt -check: terraform is not on PATH (checkov and the structure tests still run)"
fi

step "checkov (terraform, infra/)"
# --skip-download: no policy or guideline downloads (offline); a skipped check
# needs a `#checkov:skip=CKV_...:reason` comment in the resource it concerns.
# checkov exits non-zero on any failed check.
"$VENVS/checkov/bin/checkov" --directory infra --framework terraform \
    --download-external-modules false --skip-download --quiet --compact \
    || die "checkov found failed checks (above)"

step "structure tests (pytest tests/infra)"
export FLOE_BIN="${FLOE_BIN:-$ROOT/target/debug/floe}"
[[ -x "$FLOE_BIN" ]] || die "no Floe binary at $FLOE_BIN: build it (cargo build --locked --bins) or set FLOE_BIN"
log "Floe binary: $FLOE_BIN"
# --confcutdir keeps pytest from loading tests/conftest.py, whose end-to-end
# fixtures need the other virtualenv; -p no:cacheprovider writes no cache.
# shellcheck disable=SC2086
"$VENVS/pytest/bin/python" -m pytest tests/infra -q --confcutdir=tests/infra -p no:cacheprovider ${PYTEST_ARGS:-}
