"""Wiring: the settings that make the deployment safe and observable are where
they must be, and every environment is one call of the same stack module with
its own values."""

from __future__ import annotations

import re

import pytest

from floe_code import emf_metrics, metadata_warn_bytes
from infra_hcl import (
    ENVS, ENVS_DIR, INFRA, MODULES, STACK, STACK_CALL, Scope, block, blocks, environment_values, literal, load,
    load_assignments, tf_files, unquote, written,
)

# What modules/floe_stack calls.
MODULE_SOURCES = {
    "stream": "../stream",
    "warehouse": "../warehouse",
    "lease_table": "../lease_table",
    "athena": "../athena",
    "floe_service": "../floe_service",
}
# What each environment folder holds (besides backend.hcl.example).
ENV_FILES = {"main.tf", "outputs.tf", "versions.tf"}
# The metrics Floe's EMF lines carry (namespace FLOE_EMF_NAMESPACE), read from
# the code that writes them: ("Name", "Unit", value), in commit_lines,
# commit_failed and stage_restarted. floe_code.emf_metrics() reads the same
# code call by call, with each metric's dimension names.
FLOE_EMF_METRICS = set(re.findall(
    r'\("([A-Z][A-Za-z]+)", "(?:Count|Seconds|Bytes)",',
    (INFRA.parent / "src" / "telemetry" / "emf.rs").read_text().split("#[cfg(test)]", 1)[0],
))
assert FLOE_EMF_METRICS == set(emf_metrics()), "a metric's unit is neither Count, Seconds nor Bytes"
# AWS Glue refuses a table whose metadata passes this many bytes.
GLUE_METADATA_LIMIT = 20_000_000
# What Floe writes into every snapshot's summary, read from the code too.
SUMMARY_KEYS = ("floe.records-read", "floe.rows-written", "floe.duplicates-dropped", "floe.rejected")
_SUMMARY_CODE = (INFRA.parent / "src" / "table" / "summary.rs").read_text()
assert all(f'"{key}"' in _SUMMARY_CODE for key in SUMMARY_KEYS), "a summary key changed in src/table/summary.rs"

warehouse = load(MODULES / "warehouse")
service = load(MODULES / "floe_service")


# --- The buckets ------------------------------------------------------------------


def test_every_bucket_gets_the_shared_protections():
    # buckets.tf protects every bucket of local.buckets: a bucket left out of it
    # would have none of the protections below.
    assert warehouse.locals["buckets"] == {name: f"${{aws_s3_bucket.{name}}}" for name in warehouse.resources["aws_s3_bucket"]}
    for kind in ("aws_s3_bucket_ownership_controls", "aws_s3_bucket_public_access_block", "aws_s3_bucket_versioning"):
        assert set(warehouse.resources[kind]) == {"this"}, kind
        body = warehouse.resource(kind, "this")
        assert (body["for_each"], body["bucket"]) == ("${local.buckets}", "${each.value.id}"), kind


def test_buckets_are_private_owner_enforced_and_versioned():
    access = warehouse.resource("aws_s3_bucket_public_access_block", "this")
    flags = ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets")
    assert {f: access.get(f) for f in flags} == dict.fromkeys(flags, True)

    ownership = block(warehouse.resource("aws_s3_bucket_ownership_controls", "this"), "rule")
    assert literal(ownership["object_ownership"]) == "BucketOwnerEnforced"

    versioning = block(warehouse.resource("aws_s3_bucket_versioning", "this"), "versioning_configuration")
    assert literal(versioning["status"]) == "Enabled"
    assert "never overwrites" in warehouse.text(), "say why versioning costs nothing"


@pytest.mark.parametrize("bucket", ["warehouse", "logs"])
def test_bucket_policy_denies_requests_without_tls(bucket):
    tls_only = warehouse.data["aws_iam_policy_document"]["tls_only"]
    assert tls_only["for_each"] == "${local.buckets}"
    deny_tls = [
        s for s in blocks(tls_only, "statement")
        if literal(s.get("effect", '"Allow"')) == "Deny"
        and literal(s["actions"]) == ["s3:*"]
        and [(literal(c["test"]), literal(c["variable"]), literal(c["values"])) for c in blocks(s, "condition")]
        == [("Bool", "aws:SecureTransport", ["false"])]
    ]
    assert len(deny_tls) == 1, "no statement denying requests without TLS"
    assert written(deny_tls[0]["resources"]) == ["${each.value.arn}", "${each.value.arn}/*"]

    # The bucket's policy is that document for this bucket, or a document
    # that starts from it.
    tls_json = f'${{data.aws_iam_policy_document.tls_only["{bucket}"].json}}'
    policy = warehouse.resource("aws_s3_bucket_policy", bucket)
    assert policy["bucket"] == f"${{aws_s3_bucket.{bucket}.id}}"
    if policy["policy"] != tls_json:
        name = re.fullmatch(r"\$\{data\.aws_iam_policy_document\.(\w+)\.json\}", policy["policy"])[1]
        assert warehouse.data["aws_iam_policy_document"][name].get("source_policy_documents") == [tls_json], name


def test_warehouse_bucket_is_encrypted_with_its_key_and_logged():
    rule = block(warehouse.resource("aws_s3_bucket_server_side_encryption_configuration", "warehouse"), "rule")
    default = block(rule, "apply_server_side_encryption_by_default")
    assert literal(default["sse_algorithm"]) == "aws:kms"
    assert default["kms_master_key_id"] == "${module.key.arn}"
    assert rule["bucket_key_enabled"] is True

    logging = warehouse.resource("aws_s3_bucket_logging", "warehouse")
    assert logging["target_bucket"] == "${aws_s3_bucket.logs.id}"


def test_incomplete_uploads_are_aborted_within_a_week():
    rules = blocks(warehouse.resource("aws_s3_bucket_lifecycle_configuration", "warehouse"), "rule")
    aborting = [r for r in rules if "abort_incomplete_multipart_upload" in r]
    assert len(aborting) == 1
    assert aborting[0]["filter"] == [{}], "the abort rule must cover the whole bucket"
    days = Scope(MODULES / "warehouse", {"name": '"floe-test"'}).evaluate(
        block(aborting[0], "abort_incomplete_multipart_upload")["days_after_initiation"]
    )
    assert 1 <= days <= 7
    assert any("noncurrent_version_expiration" in r for r in rules)


# --- Stream, lease table, Glue ---------------------------------------------------


def test_stream_is_encrypted_with_a_rotating_customer_managed_key():
    stream = load(MODULES / "stream").resource("aws_kinesis_stream", "this")
    assert literal(stream["encryption_type"]) == "KMS"
    assert stream["kms_key_id"] == "${module.key.arn}"
    key = load(MODULES / "kms_key").resource("aws_kms_key", "this")
    assert key["enable_key_rotation"] is True


def test_lease_table_has_the_key_floe_writes_and_reaches_the_tasks():
    table = load(MODULES / "lease_table").resource("aws_dynamodb_table", "leases")
    assert literal(table["billing_mode"]) == "PAY_PER_REQUEST"
    assert literal(table["hash_key"]) == "lease_key"
    assert [(literal(a["name"]), literal(a["type"])) for a in blocks(table, "attribute")] == [("lease_key", "S")]
    assert block(table, "point_in_time_recovery")["enabled"] is True
    sse = block(table, "server_side_encryption")
    assert sse["enabled"] is True and sse["kms_key_arn"] == "${var.kms_key_arn}"
    assert table["deletion_protection_enabled"] == "${var.deletion_protection}"
    assert Scope.stack("prod").var("deletion_protection") is True
    # FLOE_LEASE_TABLE names the stack's table; the task role may use it.
    stack = load(STACK).modules["floe_service"]
    assert stack["lease_table_name"] == "${module.lease_table.name}"
    assert stack["lease_table_arn"] == "${module.lease_table.arn}"


def test_glue_database_defaults_to_analytics():
    assert literal(warehouse.variables["glue_database_name"]["default"]) == "analytics"
    assert literal(warehouse.variables["warehouse_prefix"]["default"]) == "warehouse"


# --- The service ------------------------------------------------------------------


def test_service_rolls_back_and_deploys_without_a_pause():
    ecs = service.resource("aws_ecs_service", "floe")
    assert block(ecs, "deployment_circuit_breaker") == {"enable": True, "rollback": True}
    # New tasks start next to the old ones; leases hand the shards over.
    assert ecs["deployment_minimum_healthy_percent"] == 100
    assert ecs["deployment_maximum_percent"] == 200
    assert literal(ecs["launch_type"]) == "FARGATE"
    assert ecs["enable_execute_command"] is False
    assert literal(ecs["propagate_tags"]) == "SERVICE"
    network = block(ecs, "network_configuration")
    assert network["assign_public_ip"] is False
    assert network["security_groups"] == ["${aws_security_group.floe.id}"]
    for env in ENVS:
        scope = Scope.stack(env).module("floe_service")
        # Tasks share the shards through leases: more tasks than shards sit idle.
        shards = Scope.stack(env).module("stream").var("shard_count")
        assert 1 <= scope.var("max_capacity") <= shards, env
        assert scope.var("min_capacity") <= scope.var("max_capacity"), env


def test_task_definition_runs_floe_safely():
    task = service.resource("aws_ecs_task_definition", "floe")
    assert written(task["requires_compatibilities"]) == ["FARGATE"]
    assert task["container_definitions"] == "${jsonencode([local.floe_container])}"
    assert task["task_role_arn"] != task["execution_role_arn"]

    container = service.locals["floe_container"]
    assert literal(container["name"]) == "floe"
    assert literal(container["command"]) == ["run"]
    assert literal(container["user"]) not in ("", "0", "root") and not literal(container["user"]).startswith(("0:", "root:"))
    assert container["readonlyRootFilesystem"] is True
    assert container["stopTimeout"] == "${local.stop_timeout_seconds}"
    assert service.locals["stop_timeout_seconds"] == 120
    assert literal(container["healthCheck"]) == {
        "command": ["CMD", "/usr/local/bin/floe", "health"],
        "interval": 30, "timeout": 5, "retries": 3, "startPeriod": 60,
    }
    assert container["portMappings"] == [{"containerPort": "${local.metrics_port}", "protocol": '"tcp"'}]
    assert service.locals["metrics_port"] == 9464
    logs = container["logConfiguration"]
    assert literal(logs["logDriver"]) == "awslogs"
    assert logs["options"]["awslogs-group"] == "${aws_cloudwatch_log_group.floe.name}"
    assert literal(logs["options"]["mode"]) == "non-blocking"
    assert "max-buffer-size" in logs["options"]


def test_maintenance_runs_floe_maintain_on_a_schedule_in_the_tasks_network():
    schedule = service.resource("aws_scheduler_schedule", "maintenance")
    assert schedule["schedule_expression"] == "${var.maintenance_schedule}"
    target = block(schedule, "target")
    assert (target["arn"], target["role_arn"]) == ("${aws_ecs_cluster.this.arn}", "${aws_iam_role.scheduler.arn}")
    # The service's task definition, its container, with `floe maintain` as the command.
    assert target["input"] == (
        '${jsonencode({containerOverrides = [{name = local.floe_container.name, command = ["maintain"]}]})}'
    )
    ecs = block(target, "ecs_parameters")
    assert ecs["task_definition_arn"] == "${aws_ecs_task_definition.floe.arn}"
    assert literal(ecs["launch_type"]) == "FARGATE" and ecs["task_count"] == 1
    network = block(ecs, "network_configuration")
    assert network == {
        "subnets": "${var.subnet_ids}",
        "security_groups": ["${aws_security_group.floe.id}"],
        "assign_public_ip": False,
    }
    # `floe maintain` finds the tables from the same environment as `floe run`.
    environment = service.locals["floe_environment"]
    for name in ("FLOE_WAREHOUSE", "FLOE_CATALOG", "FLOE_TABLE", "FLOE_REJECTED_TABLE"):
        assert name in environment, name
    assert literal(service.variables["maintenance_schedule"]["default"]) == "rate(1 hour)"


def test_cluster_has_container_insights():
    cluster = service.resource("aws_ecs_cluster", "this")
    assert [(literal(s["name"]), literal(s["value"])) for s in blocks(cluster, "setting")] == [("containerInsights", "enabled")]


def test_log_group_is_encrypted_with_a_key_cloudwatch_logs_may_use():
    group = service.resource("aws_cloudwatch_log_group", "floe")
    assert group["kms_key_id"] == "${module.logs_key.arn}"
    assert group["retention_in_days"] == "${var.log_retention_days}"
    policy = service.data["aws_iam_policy_document"]["logs_key_policy"]
    principals = [written(p["identifiers"]) for s in blocks(policy, "statement") for p in blocks(s, "principals")]
    assert principals == [["logs.${local.region}.amazonaws.com"]]


def test_security_group_opens_only_https_out_and_metrics_in():
    egress = service.resource("aws_vpc_security_group_egress_rule", "https")
    assert (egress["from_port"], egress["to_port"], literal(egress["ip_protocol"])) == (443, 443, "tcp")
    ingress = service.resource("aws_vpc_security_group_ingress_rule", "metrics")
    assert ingress["for_each"] == "${toset(var.metrics_ingress_cidrs)}"
    assert (ingress["from_port"], ingress["to_port"]) == ("${local.metrics_port}",) * 2
    assert set(service.resources["aws_vpc_security_group_ingress_rule"]) == {"metrics"}
    assert set(service.resources["aws_vpc_security_group_egress_rule"]) == {"https"}


def test_autoscaling_follows_the_iterator_age():
    policy = service.resource("aws_appautoscaling_policy", "iterator_age")
    metric = block(block(policy, "target_tracking_scaling_policy_configuration"), "customized_metric_specification")
    assert (literal(metric["namespace"]), literal(metric["metric_name"])) == ("AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds")
    assert [(literal(d["name"]), d["value"]) for d in blocks(metric, "dimensions")] == [("StreamName", "${var.stream_name}")]


# --- Alarms -----------------------------------------------------------------------


def alarm(name: str) -> dict:
    return service.resource("aws_cloudwatch_metric_alarm", name)


def test_the_five_alarms_exist():
    assert set(service.resources["aws_cloudwatch_metric_alarm"]) == {
        "iterator_age", "freshness", "rejected_rate", "commit_failures", "metadata_bytes",
    }
    # Every alarm notifies the topic, when there is one, of trouble and of recovery.
    for name, a in service.resources["aws_cloudwatch_metric_alarm"].items():
        assert (a["alarm_actions"], a["ok_actions"]) == ("${local.alarm_actions}",) * 2, name
        assert len(written(a["alarm_description"])) > 40, f"{name}: say what fired and what to do"


def test_iterator_age_alarm():
    a = alarm("iterator_age")
    assert (literal(a["namespace"]), literal(a["metric_name"]), literal(a["statistic"])) == (
        "AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds", "Maximum",
    )
    assert a["dimensions"] == {"StreamName": "${var.stream_name}"}


def test_freshness_alarm_fires_when_nothing_is_committed():
    a = alarm("freshness")
    assert (a["namespace"], literal(a["metric_name"]), literal(a["statistic"])) == (
        "${var.metrics_namespace}", "FreshnessSeconds", "Maximum",
    )
    assert a["dimensions"] == {"Table": "${local.events_table}"}
    assert literal(a["treat_missing_data"]) == "breaching"


def test_rejected_rate_alarm_divides_rejected_by_read():
    a = alarm("rejected_rate")
    queries = {literal(q["id"]): q for q in blocks(a, "metric_query")}
    (returned,) = [q for q in queries.values() if q.get("return_data") is True]
    assert literal(returned["expression"]) == "100 * rejected / read"
    for qid, metric_name in (("rejected", "Rejected"), ("read", "RecordsRead")):
        metric = block(queries[qid], "metric")
        assert (metric["namespace"], literal(metric["metric_name"]), literal(metric["stat"])) == (
            "${var.metrics_namespace}", metric_name, "Sum",
        )
        assert metric["dimensions"] == {"Table": "${local.events_table}"}
    assert a["threshold"] == "${var.rejected_percent_alarm}"


def test_metadata_size_alarm_watches_floes_gauge():
    a = alarm("metadata_bytes")
    assert (a["namespace"], literal(a["metric_name"]), literal(a["statistic"])) == (
        "${var.metrics_namespace}", "MetadataBytes", "Maximum",
    )
    assert a["dimensions"] == {"Table": "${local.events_table}"}
    assert a["threshold"] == "${var.metadata_bytes_alarm}"
    # Floe warns at the threshold itself (>=), and no commit is no news.
    assert literal(a["comparison_operator"]) == "GreaterThanOrEqualToThreshold"
    assert literal(a["treat_missing_data"]) == "notBreaching"
    assert "floe maintain" in a["alarm_description"]


@pytest.mark.parametrize("env", ENVS)
def test_metadata_size_alarm_fires_well_before_glues_limit(env):
    # The variable flows envs/<env> -> floe_stack -> floe_service, as the other thresholds.
    assert load(STACK).modules["floe_service"]["metadata_bytes_alarm"] == "${var.metadata_bytes_alarm}"
    assert environment_values(env)["metadata_bytes_alarm"] == Scope.stack(env).var("metadata_bytes_alarm")
    scope = Scope.stack(env).module("floe_service")
    threshold = scope.evaluate(alarm("metadata_bytes")["threshold"])
    assert threshold == environment_values(env)["metadata_bytes_alarm"]
    # "Well before": at most Floe's warning (10 MiB), about half of Glue's limit.
    assert 0 < threshold <= metadata_warn_bytes() < GLUE_METADATA_LIMIT, threshold
    # The module refuses a threshold at or past Glue's limit.
    for folder in (MODULES / "floe_service", STACK):
        assert load(folder).variables["metadata_bytes_alarm"]["default"] == metadata_warn_bytes(), folder
    (validation,) = blocks(service.variables["metadata_bytes_alarm"], "validation")
    assert f"var.metadata_bytes_alarm < {GLUE_METADATA_LIMIT}" in validation["condition"]


def test_commit_failures_alarm():
    a = alarm("commit_failures")
    assert (a["namespace"], literal(a["metric_name"]), literal(a["statistic"])) == (
        "${var.metrics_namespace}", "CommitFailures", "Sum",
    )
    assert a["threshold"] == 0 and literal(a["comparison_operator"]) == "GreaterThanThreshold"
    assert a["evaluation_periods"] == "${var.commit_failure_alarm_periods}"


@pytest.mark.parametrize("env", ENVS)
def test_alarms_watch_what_floe_sends(env):
    scope = Scope.stack(env).module("floe_service")
    environment = scope.local("floe_environment")
    # The alarms' namespace and Table dimension are Floe's own.
    assert scope.var("metrics_namespace") == environment["FLOE_EMF_NAMESPACE"] == "Floe"
    assert scope.local("events_table") == environment["FLOE_TABLE"]
    watched = {
        (literal(m["metric_name"]), tuple(sorted(m["dimensions"])))
        for body in service.resources["aws_cloudwatch_metric_alarm"].values()
        for m in [body, *(block(q, "metric") for q in blocks(body, "metric_query") if "metric" in q)]
        if "metric_name" in m and m.get("namespace") == "${var.metrics_namespace}"
    }
    names = {name for name, _ in watched}
    assert names and names <= FLOE_EMF_METRICS, names - FLOE_EMF_METRICS
    # With the dimension names Floe sends each one with.
    emf = emf_metrics()
    assert all(dims in emf[name] for name, dims in watched), {w for w in watched if w[1] not in emf[w[0]]}


# --- Athena -----------------------------------------------------------------------


def test_athena_workgroup_enforces_encrypted_results_and_a_scan_limit():
    athena = load(MODULES / "athena")
    configuration = block(athena.resource("aws_athena_workgroup", "this"), "configuration")
    assert configuration["enforce_workgroup_configuration"] is True
    assert configuration["bytes_scanned_cutoff_per_query"] == "${var.bytes_scanned_cutoff_per_query}"
    assert literal(block(configuration, "engine_version")["selected_engine_version"]) == "Athena engine version 3"
    encryption = block(block(configuration, "result_configuration"), "encryption_configuration")
    assert literal(encryption["encryption_option"]) == "SSE_KMS"
    for env in ENVS:
        location = Scope.stack(env).module("athena").var("results_location")
        assert re.fullmatch(r"s3://floe-%s-\d{12}-[a-z0-9-]+/athena-results/" % env, location), location


def named_queries(env: str = "dev") -> dict[str, str]:
    scope = Scope.stack(env).module("athena")
    return {name: scope.evaluate(body["query"]) for name, body in scope.config.resources["aws_athena_named_query"].items()}


def test_the_three_saved_queries_exist():
    athena = load(MODULES / "athena")
    queries = athena.resources["aws_athena_named_query"]
    assert set(queries) == {"events_by_day_and_type", "duplicate_audit", "data_quality_over_time"}
    assert all(q["workgroup"] == "${aws_athena_workgroup.this.id}" for q in queries.values())


def test_saved_queries_read_floe_tables():
    queries = {k: " ".join(v.split()) for k, v in named_queries("dev").items()}

    by_day = queries["events_by_day_and_type"]
    assert 'FROM "analytics_dev"."events"' in by_day
    assert "GROUP BY date(created_datetime), event_type" in by_day
    assert "INTERVAL '30' DAY" in by_day

    duplicates = queries["duplicate_audit"]
    assert 'FROM "analytics_dev"."events"' in duplicates
    assert "GROUP BY event_uuid HAVING count(*) > 1" in duplicates

    quality = queries["data_quality_over_time"]
    assert 'FROM "analytics_dev"."events$snapshots"' in quality
    for key in SUMMARY_KEYS:
        assert f"'{key}'" in quality, key
    assert "rejected_percent" in quality
    assert quality.rstrip().endswith("ORDER BY committed_at")


# --- The stack and the environments ------------------------------------------------


def test_the_stack_calls_every_module():
    assert {name: literal(call["source"]) for name, call in load(STACK).modules.items()} == MODULE_SOURCES


def test_dev_and_prod_exist():
    assert {"dev", "prod"} <= set(ENVS), ENVS


@pytest.mark.parametrize("env", ENVS)
def test_environment_calls_the_stack_and_keeps_state_in_s3(env):
    config = load(ENVS_DIR / env)
    assert {name: literal(call["source"]) for name, call in config.modules.items()} == {
        STACK_CALL: "../../modules/floe_stack",
    }

    (terraform,) = [t for t in config.terraform if "backend" in t]
    backends = {unquote(k): v for b in blocks(terraform, "backend") for k, v in b.items()}
    assert set(backends) == {"s3"}
    assert backends["s3"]["use_lockfile"] is True
    # Bucket, key and region come from backend.hcl, never from the code.
    assert not {"bucket", "key", "region"} & set(backends["s3"])
    example = load_assignments(ENVS_DIR / env / "backend.hcl.example")
    assert set(example) == {"bucket", "key", "region"}
    assert literal(example["key"]) == f"floe/{env}/terraform.tfstate"

    # use_lockfile needs Terraform 1.10.
    (required_version,) = [t["required_version"] for t in config.terraform if "required_version" in t]
    minor = re.fullmatch(r">= 1\.(\d+)(?:\.\d+)?", literal(required_version))
    assert minor and int(minor[1]) >= 10, required_version
    (providers,) = [block(t, "required_providers") for t in config.terraform if "required_providers" in t]
    aws = providers["aws"]
    assert literal(aws["source"]) == "hashicorp/aws"
    assert re.fullmatch(r"~> [56]\.\d+", literal(aws["version"])), aws["version"]

    assert set(config.providers) == {"aws"}
    provider = config.providers["aws"]
    assert re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", literal(provider["region"])), provider["region"]
    # The Environment tag and the names (floe-<environment>-...) say the same.
    assert literal(block(provider, "default_tags")["tags"]) == {"Project": "floe", "Environment": env}
    assert environment_values(env)["environment"] == env
    assert Scope.stack(env).var("environment") == env


@pytest.mark.parametrize("env", ENVS)
def test_environment_holds_values_and_no_code(env):
    folder = ENVS_DIR / env
    config = load(folder)
    assert {p.name for p in folder.glob("*.tf")} == ENV_FILES
    assert (folder / "backend.hcl.example").is_file()
    # A second place for values would hide some of them from a reader of main.tf.
    assert not list(folder.glob("*.tfvars")) and not list(folder.glob("*.tfvars.json"))
    # Anything but the provider, the backend and the stack call belongs in the stack.
    declared = {
        "resources": config.resources, "data": config.data, "variables": config.variables, "locals": config.locals,
    }
    assert not any(declared.values()), {kind: list(found) for kind, found in declared.items() if found}
    # One output, the stack's outputs as an object: a new one needs no edit here.
    assert {name: body["value"] for name, body in config.outputs.items()} == {STACK_CALL: f"${{module.{STACK_CALL}}}"}

    # environment_values() refuses an expression: the values are written down.
    values = environment_values(env)
    inputs = load(STACK).variables
    assert set(values) <= set(inputs), f"not inputs of floe_stack: {sorted(set(values) - set(inputs))}"
    required = {name for name, body in inputs.items() if "default" not in body}
    assert required <= set(values), f"required inputs not set: {sorted(required - set(values))}"


def test_environments_set_the_same_inputs():
    # So that `diff envs/dev/main.tf envs/prod/main.tf` shows every difference
    # as a value, never as an input one of them leaves to the default.
    names = {env: set(environment_values(env)) for env in ENVS}
    every = set().union(*names.values())
    left_out = {env: sorted(every - set_) for env, set_ in names.items() if every - set_}
    assert not left_out, f"inputs some environments leave to the default: {left_out}"


# --- checkov skips ------------------------------------------------------------------


def test_every_checkov_skip_sits_in_a_block_and_says_why():
    # scripts/infra-check.sh skips nothing on the command line: a skip is a
    # comment inside the resource it concerns, with a reason worth reading.
    skips = []
    for path in tf_files():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "checkov:skip" in line:
                where = f"{path.relative_to(INFRA)}:{number}"
                match = re.fullmatch(r"  #checkov:skip=(CKV2?_AWS_\d+):(.+)", line)
                assert match, f"{where}: write `  #checkov:skip=CKV_AWS_n:reason` inside the block: {line.strip()}"
                assert len(match[2].split()) >= 8, f"{where}: give a real reason: {match[2]}"
                skips.append(match[1])
    assert skips, "no skips found: is the pattern still right?"
