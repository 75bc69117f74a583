"""IAM: every policy in infra/ is an `aws_iam_policy_document`, and every
statement that allows something names the resources it allows it on."""

from __future__ import annotations

import re

from infra_hcl import MODULES, Config, all_folders, blocks, literal, load, written

# Actions that support no resource-level permissions: IAM accepts only "*"
# as their resource. Each with the reason it is granted.
NO_RESOURCE_LEVEL = {
    "ecr:GetAuthorizationToken": "ECS logs in to the registry before pulling Floe's image (execution role)",
}

# The task role's statements: exactly these actions, on these resources.
TASK_ROLE = {
    "ReadTheStream": (
        {"kinesis:ListShards", "kinesis:GetShardIterator", "kinesis:GetRecords"},
        ["${var.stream_arn}"],
    ),
    "DecryptTheStream": ({"kms:Decrypt"}, ["${var.stream_kms_key_arn}"]),
    "CatalogTablesOfTheDatabase": (
        {"glue:GetDatabase", "glue:GetTable", "glue:CreateTable", "glue:UpdateTable"},
        ["${local.glue_catalog_arn}", "${local.glue_database_arn}", "${local.glue_tables_arn}"],
    ),
    "WarehouseObjects": (
        {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"},
        ['"${var.warehouse_bucket_arn}/${var.warehouse_prefix}/*"'],
    ),
    "ListTheWarehousePrefix": ({"s3:ListBucket"}, ["${var.warehouse_bucket_arn}"]),
    "WarehouseKey": ({"kms:GenerateDataKey", "kms:Decrypt"}, ["${var.warehouse_kms_key_arn}"]),
    # What Floe's lease keeper calls: a scan, then conditional writes.
    "LeaseTable": (
        {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Scan"},
        ["${var.lease_table_arn}"],
    ),
    "LeaseTableKeyThroughDynamoDb": (
        {"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"},
        ["${var.lease_table_kms_key_arn}"],
    ),
}

BROAD_MANAGED_POLICIES = re.compile(r"AdministratorAccess|PowerUserAccess|IAMFullAccess|FullAccess")


def documents() -> list[tuple[Config, str, dict]]:
    """(folder's config, document name, document body) for every policy document."""
    return [
        (config, name, body)
        for config in map(load, all_folders())
        for name, body in config.data.get("aws_iam_policy_document", {}).items()
    ]


def key_policies(config: Config) -> set[str]:
    """Documents of a folder that are KMS key policies: an aws_kms_key's policy,
    or statements handed to the kms_key module. There "*" means the key itself."""
    used = " ".join(str(body.get("policy", "")) for body in config.resources.get("aws_kms_key", {}).values())
    used += " ".join(str(call) for call in config.modules.values() if str(call.get("source", "")).endswith('/kms_key"'))
    return set(re.findall(r"data\.aws_iam_policy_document\.(\w+)\.json", used))


def too_broad(resource: str) -> bool:
    """"*", or an ARN with a wildcard where a partition, service, region,
    account or the whole resource part could be named."""
    if resource == "*":
        return True
    parts = resource.split(":", 5)
    if parts[0] != "arn":
        return False  # an expression such as ${var.stream_arn}
    return len(parts) < 6 or any(p == "*" for p in parts[1:5]) or parts[5] in ("*", "/*")


def test_every_statement_names_its_resources():
    problems = []
    for config, name, document in documents():
        where = f"{config.folder.relative_to(MODULES.parent)}: data.aws_iam_policy_document.{name}"
        key_policy = name in key_policies(config)
        for statement in blocks(document, "statement"):
            sid = literal(statement.get("sid", '"(no sid)"'))
            actions = set(literal(statement.get("actions", [])))
            if "not_actions" in statement or "not_resources" in statement:
                problems.append(f"{where} {sid}: not_actions/not_resources")
            if "resources" not in statement:
                # Only a trust policy has no resources.
                if not actions or not all(a.startswith("sts:AssumeRole") for a in actions):
                    problems.append(f"{where} {sid}: no resources")
                continue
            resources = written(statement["resources"])
            if isinstance(resources, str):
                resources = [resources]  # one expression giving a list
            broad = [r for r in resources if too_broad(r)]
            if broad and not key_policy and not actions <= set(NO_RESOURCE_LEVEL):
                problems.append(f"{where} {sid}: {sorted(actions)} on {broad}")
    assert not problems, "statements on unnamed resources:\n" + "\n".join(problems)


def test_no_allow_statement_grants_a_whole_service():
    # A Deny may cover a whole service: the buckets deny every S3 action
    # without TLS, and naming fewer actions would leave gaps.
    problems = []
    for config, name, document in documents():
        for statement in blocks(document, "statement"):
            if literal(statement.get("effect", '"Allow"')) != "Allow":
                continue
            for action in literal(statement.get("actions", [])):
                if action == "*" or action.endswith(":*"):
                    problems.append(f"{config.folder.name}/{name}: {action}")
    assert not problems, problems


def test_only_policy_documents_become_policies():
    # Inline JSON would escape the checks above; broad managed policies too.
    problems = []
    for config in map(load, all_folders()):
        for kind in ("aws_iam_role_policy", "aws_iam_policy"):
            for name, body in config.resources.get(kind, {}).items():
                if not re.fullmatch(r"\$\{data\.aws_iam_policy_document\.\w+\.json\}", body["policy"]):
                    problems.append(f"{kind}.{name}: policy is not a policy document: {body['policy']}")
        for name, body in config.resources.get("aws_iam_role_policy_attachment", {}).items():
            if BROAD_MANAGED_POLICIES.search(body["policy_arn"]):
                problems.append(f"aws_iam_role_policy_attachment.{name}: {body['policy_arn']}")
        for name, body in config.resources.get("aws_iam_role", {}).items():
            if "managed_policy_arns" in body or "inline_policy" in body:
                problems.append(f"aws_iam_role.{name}: managed_policy_arns/inline_policy")
    assert not problems, problems


def test_task_role_grants_exactly_what_floe_needs():
    document = load(MODULES / "floe_service").data["aws_iam_policy_document"]["task"]
    found = {
        literal(s["sid"]): (set(literal(s["actions"])), s["resources"])
        for s in blocks(document, "statement")
    }
    assert set(found) == set(TASK_ROLE), (sorted(found), sorted(TASK_ROLE))
    for sid, (actions, resources) in TASK_ROLE.items():
        assert found[sid][0] == actions, f"{sid}: extra {found[sid][0] - actions}, missing {actions - found[sid][0]}"
        assert found[sid][1] == resources, f"{sid}: {found[sid][1]}"
    every_action = set().union(*(a for a, _ in found.values()))
    # Floe's database exists; its metrics travel as EMF log lines.
    assert not every_action & {"glue:CreateDatabase", "cloudwatch:PutMetricData"}


def test_listing_is_limited_to_the_warehouse_prefix():
    document = load(MODULES / "floe_service").data["aws_iam_policy_document"]["task"]
    (listing,) = [s for s in blocks(document, "statement") if literal(s["sid"]) == "ListTheWarehousePrefix"]
    (condition,) = blocks(listing, "condition")
    assert literal(condition["variable"]) == "s3:prefix"
    assert literal(condition["test"]) == "StringLike"
    assert condition["values"] == ['"${var.warehouse_prefix}/*"']


def test_execution_role_pulls_one_repository_and_writes_one_log_group():
    document = load(MODULES / "floe_service").data["aws_iam_policy_document"]["execution"]
    found = {literal(s["sid"]): (set(literal(s["actions"])), s["resources"]) for s in blocks(document, "statement")}
    assert found == {
        "EcrLogin": ({"ecr:GetAuthorizationToken"}, ['"*"']),
        "PullTheImage": (
            {"ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"},
            ["${var.image_repository_arn}"],
        ),
        "WriteTheLogGroup": (
            {"logs:CreateLogStream", "logs:PutLogEvents"},
            ['"${aws_cloudwatch_log_group.floe.arn}:log-stream:*"'],
        ),
    }
