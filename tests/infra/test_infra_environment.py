"""The container's FLOE_* environment against the Floe binary.

`local.floe_environment` in infra/modules/floe_service is resolved for each
environment (module defaults, what modules/floe_stack passes, the values
envs/<env>/main.tf gives floe_stack) and handed, as the only environment, to
`floe run --check-config`, which validates it without any I/O and prints every
run setting. FLOE_BIN names the binary (scripts/infra-check.sh sets it).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from infra_hcl import ENVS, INFRA, MODULES, REPO, STACK, Scope, environment_values, literal, load

# Floe settings that must not be passed on Fargate, and why.
NOT_ON_FARGATE = {
    "FLOE_INPUT": "input files or stdin: for backfills, not a service reading a stream",
    "FLOE_DRAIN": "stops once the stream is read to its tip: for backfills, not a service",
    "FLOE_CONFIG": "a TOML file; on Fargate the environment is the configuration",
    "FLOE_S3_ENDPOINT": "for S3-compatible stores only; on AWS the SDK finds S3",
    "FLOE_S3_PATH_STYLE": "for S3-compatible stores only",
    "FLOE_CATALOG_NAME": "the catalog's name inside catalog.db: the SQLite catalog only",
    "FLOE_SCHEMA_DIR": "the schema files are built into the image",
    "FLOE_PROGRESS": "a terminal display, off by itself when stderr is not a terminal",
    "FLOE_WORKER_ID": "each task generates a unique one; one fixed id would make every task one worker",
}
# FLOE_CONFIG is read into the other settings, so --check-config does not print it.
NOT_PRINTED = {"FLOE_CONFIG"}
# Variables Floe reads that are not run settings, and why the map may hold them.
ALSO_ALLOWED = {"FLOE_LOG": "the log level filter (e.g. info), read by the logger"}


def floe_bin() -> Path:
    path = Path(os.environ.get("FLOE_BIN") or REPO / "target" / "debug" / "floe")
    if not path.is_file():
        pytest.fail(f"no Floe binary at {path}: build it or set FLOE_BIN")
    return path


def check_config(environment: dict[str, str]) -> subprocess.CompletedProcess:
    """`floe run --check-config` with `environment` as its only environment
    (as `env -i PATH=... floe run --check-config`)."""
    return subprocess.run(
        [str(floe_bin()), "run", "--check-config"],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **environment},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=INFRA,
    )


def printed(proc: subprocess.CompletedProcess) -> dict[str, str]:
    """The `FLOE_NAME=value` lines of a successful --check-config."""
    assert proc.returncode == 0, f"--check-config exited {proc.returncode}:\n{proc.stderr}"
    lines = proc.stdout.splitlines()
    assert lines == sorted(lines), "--check-config output is not sorted by name"
    settings = dict(line.split("=", 1) for line in lines)
    assert all(re.fullmatch(r"FLOE_[A-Z0-9_]+", name) for name in settings), lines
    return settings


def service(env: str) -> Scope:
    return Scope.stack(env).module("floe_service")


def floe_environment(env: str) -> dict[str, str]:
    """The resolved map; every value must be a string (jsonencode would send
    a number as a JSON number, which ECS refuses as an environment value)."""
    resolved = service(env).local("floe_environment")
    not_strings = {k: v for k, v in resolved.items() if not isinstance(v, str)}
    assert not not_strings, f"{env}: values that are not strings (wrap them in tostring()): {not_strings}"
    return resolved


def value(env: str, name: str):
    """A stack input as envs/<env>/main.tf writes it, else the stack's default:
    read from the files, independently of the evaluator that resolves the map."""
    values = environment_values(env)
    return values[name] if name in values else literal(load(STACK).variables[name]["default"])


def seconds(duration: str) -> float:
    """A humantime duration as Floe prints or reads it: 90s, 1m 30s, 2min."""
    units = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "days": 86400}
    parts = re.findall(r"(\d+)\s*([a-z]+)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration.replace(" ", ""), duration
    return sum(int(n) * units[u] for n, u in parts)


def test_map_holds_every_setting_that_applies_on_fargate():
    settings = set(printed(check_config(floe_environment("dev"))))
    keys = set(floe_environment("dev"))

    unknown = keys - settings - set(ALSO_ALLOWED)
    not_for_fargate = keys & set(NOT_ON_FARGATE)
    missing = settings - set(NOT_ON_FARGATE) - keys
    assert not unknown, f"keys that are not Floe settings: {sorted(unknown)}"
    assert not not_for_fargate, f"keys that do not apply on Fargate: {sorted(not_for_fargate)}"
    assert not missing, f"Floe settings missing from floe_environment: {sorted(missing)}"
    # The list above goes stale loudly when Floe drops or renames a setting.
    stale = set(NOT_ON_FARGATE) - NOT_PRINTED - settings
    assert not stale, f"NOT_ON_FARGATE names settings Floe no longer has: {sorted(stale)}"


def test_every_environment_passes_the_same_settings():
    names = {env: sorted(floe_environment(env)) for env in ENVS}
    assert all(n == names["dev"] for n in names.values()), names


@pytest.mark.parametrize("env", ENVS)
def test_floe_accepts_the_environment(env):
    environment = floe_environment(env)
    settings = printed(check_config(environment))

    assert settings["FLOE_CATALOG"] == "glue"
    assert settings["FLOE_WAREHOUSE"].startswith("s3://"), settings["FLOE_WAREHOUSE"]
    assert settings["FLOE_WAREHOUSE"].endswith("/" + value(env, "warehouse_prefix"))
    assert settings["FLOE_STREAM"] == f"floe-{env}-events"
    assert settings["FLOE_CONSUMER_NAME"] == value(env, "consumer_name")
    assert settings["FLOE_START_POSITION"] == value(env, "start_position")
    assert settings["FLOE_TABLE"] == f"{value(env, 'glue_database_name')}.events"
    assert settings["FLOE_REJECTED_TABLE"] == f"{value(env, 'glue_database_name')}.events_rejected"
    assert settings["FLOE_METRICS_ADDR"] == "0.0.0.0:9464"
    assert settings["FLOE_EMF_NAMESPACE"] == "Floe"
    assert settings["FLOE_LOG_FORMAT"] == "json"
    # One decode thread per vCPU of the task.
    assert settings["FLOE_DECODE_THREADS"] == str(value(env, "task_cpu") // 1024)
    # The scheduled `floe maintain` expires snapshots (the stack keeps it
    # on), so the service does not; the two share the retention.
    assert settings["FLOE_EXPIRE_EVERY"] == "off"
    assert settings["FLOE_EXPIRE_OLDER_THAN"] == "5days"
    assert settings["FLOE_EVENT_TYPE_LIMIT"] == "100"
    # Settings the map leaves out keep Floe's defaults.
    assert settings["FLOE_INPUT"] == "" and settings["FLOE_DRAIN"] == "false"
    assert settings["FLOE_S3_ENDPOINT"] == "" and settings["FLOE_SCHEMA_DIR"] == ""
    # The tasks share the shards through the stack's lease table.
    assert settings["FLOE_LEASE_TABLE"] == f"floe-{env}-leases"
    assert settings["FLOE_LEASE_DURATION"] == "10s"
    assert settings["FLOE_WORKER_ID"] == ""


@pytest.mark.parametrize("env", ENVS)
def test_shutdown_deadline_is_below_the_stop_timeout(env):
    scope = service(env)
    stop_timeout = scope.evaluate(scope.config.locals["floe_container"]["stopTimeout"])
    settings = printed(check_config(floe_environment(env)))
    deadline = seconds(settings["FLOE_SHUTDOWN_DEADLINE"])
    assert deadline < stop_timeout, (settings["FLOE_SHUTDOWN_DEADLINE"], stop_timeout)
    assert stop_timeout <= 120, "120 s is Fargate's maximum stopTimeout"


def test_check_config_rejects_a_setting_that_does_not_exist():
    environment = floe_environment("dev") | {"FLOE_NOT_A_SETTING": "1"}
    proc = check_config(environment)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "invalid configuration:" in proc.stderr
    assert re.search(r"^  - FLOE_NOT_A_SETTING is not a Floe setting", proc.stderr, re.M), proc.stderr


def test_check_config_requires_the_warehouse():
    environment = {k: v for k, v in floe_environment("dev").items() if k != "FLOE_WAREHOUSE"}
    proc = check_config(environment)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert re.search(r"^  - warehouse", proc.stderr, re.M), proc.stderr


def test_the_container_environment_is_the_map():
    container = load(MODULES / "floe_service").locals["floe_container"]
    assert container["environment"] == (
        "${[for name, value in local.floe_environment : {name = name, value = value}]}"
    )
