"""The read-policy builders and AWS's limits, without the Pulumi runtime: exact text, IAM JSON that AWS
accepts, and each limit checked at its edge."""

import json

import parliament
import pytest

from components import policies
from components.layout import layout
from components.manifest import Manifest, Secret
from components.policies import (
    aws_limit_problems,
    iam_json,
    iam_policy_size,
    iam_read_policy,
    iam_service_read_policy,
    secret_arn_pattern,
    secret_tags,
    vault_namespace_policy_hcl,
    vault_policy_hcl,
    vault_service_policy_hcl,
)

ARN_A = "arn:aws:secretsmanager:us-east-1:123456789012:secret:staging/alpaca/api_key_id-AbCdEf"
ARN_B = "arn:aws:secretsmanager:us-east-1:123456789012:secret:staging/database/password-XyZ123"
KMS = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def parliament_findings(document: str) -> list[str]:
    return [f"{f.issue}: {f.detail}" for f in parliament.analyze_policy_string(document).findings]


def iam_read_policy_json(arns: list[str], kms: str | None = None) -> str:
    return iam_json(iam_read_policy(arns, kms))


def test_vault_service_policy_reads_exactly_the_given_paths() -> None:
    paths = ["secret/data/staging/redis/password", "secret/data/staging/database/password"]
    hcl = vault_service_policy_hcl("staging", [*paths, paths[0]])
    assert hcl == (
        "# Read-only: exactly these 2 secret(s) of namespace staging.\n"
        'path "secret/data/staging/database/password" {\n  capabilities = ["read"]\n}\n'
        'path "secret/data/staging/redis/password" {\n  capabilities = ["read"]\n}\n'
    )


def test_vault_policies_of_a_layout_use_its_mount_and_read_paths() -> None:
    manifest = Manifest(("api",), {"API_TOKEN": Secret("API_TOKEN", "api/token", ("api",))})
    plan = layout(manifest, "vault", "prod", "kv/apps")
    service, namespace = plan.policies
    assert vault_policy_hcl(plan, service) == vault_service_policy_hcl("prod", ["kv/apps/data/prod/api/token"])
    assert vault_policy_hcl(plan, namespace) == vault_namespace_policy_hcl("kv/apps", "prod")
    assert "secret/" not in vault_policy_hcl(plan, service) + vault_policy_hcl(plan, namespace)


def test_vault_service_policy_refuses_no_paths() -> None:
    with pytest.raises(ValueError, match="at least one"):
        vault_service_policy_hcl("staging", [])


def test_vault_namespace_policy_reads_data_and_lists_metadata_of_its_namespace_only() -> None:
    assert vault_namespace_policy_hcl("secret", "staging") == (
        "# Read-only: every secret of namespace staging, and listing it.\n"
        'path "secret/data/staging/*" {\n  capabilities = ["read"]\n}\n'
        'path "secret/metadata/staging/*" {\n  capabilities = ["read", "list"]\n}\n'
    )


def test_iam_read_policy_names_exactly_the_arns() -> None:
    assert iam_read_policy([ARN_B, ARN_A, ARN_A]) == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadSecrets",
                "Effect": "Allow",
                "Action": ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"],
                "Resource": [ARN_A, ARN_B],
            }
        ],
    }


def test_iam_read_policy_with_kms_key_adds_decrypt_on_that_key_only() -> None:
    statements = iam_read_policy([ARN_A], KMS)["Statement"]
    assert statements[1] == {"Sid": "DecryptSecrets", "Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": [KMS]}


PATTERN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:staging/*"


def test_service_policy_reads_only_secrets_tagged_for_it_and_denies_tagging() -> None:
    document = iam_service_read_policy(PATTERN, "signal-service", KMS)
    read, batch, no_tagging, decrypt = document["Statement"]
    assert read["Resource"] == PATTERN
    assert read["Condition"] == {"StringEquals": {"aws:ResourceTag/read-signal-service": "true"}}
    assert batch == {
        "Sid": "BatchRead",
        "Effect": "Allow",
        "Action": "secretsmanager:BatchGetSecretValue",
        "Resource": "*",
    }
    assert no_tagging["Effect"] == "Deny"
    assert no_tagging["Action"] == ["secretsmanager:TagResource", "secretsmanager:UntagResource"]
    assert decrypt["Resource"] == [KMS]
    assert parliament_findings(iam_json(document)) == []


@pytest.mark.parametrize("pattern", ["*", "arn:aws:secretsmanager:us-east-1:1:secret:staging/a-AbC", "staging/*"])
def test_service_policy_refuses_anything_but_a_namespace_pattern(pattern: str) -> None:
    with pytest.raises(ValueError):
        iam_service_read_policy(pattern, "api")


def test_secret_tags_name_each_reader() -> None:
    assert secret_tags("staging", "DB_PASSWORD", ["api", "worker"]) == {
        "managed-by": "pulumi/secrets-migration",
        "namespace": "staging",
        "env-key": "DB_PASSWORD",
        "read-api": "true",
        "read-worker": "true",
    }


# --- AWS limits, each at its edge -----------------------------------------------------------------------


def test_policy_size_limit_edge() -> None:
    at_limit = '"' + "x" * (policies.IAM_MANAGED_POLICY_MAX_CHARS - 2) + '"'
    assert policies.policy_size_problem("p", at_limit) is None
    assert policies.policy_size_problem("p", at_limit + " \n\t") is None  # whitespace is not counted
    problem = policies.policy_size_problem("p", at_limit + "x")
    assert problem == "p: the policy document has 6145 characters; IAM allows 6144"


def test_tag_count_limit_edge() -> None:
    fixed = 3  # managed-by, namespace, env-key
    most = [f"svc-{i}" for i in range(policies.SECRET_MAX_TAGS - fixed)]
    assert policies.tags_problem("s", secret_tags("ns", "K", most)) is None
    problem = policies.tags_problem("s", secret_tags("ns", "K", [*most, "one-more"]))
    assert problem == (
        "s: needs 51 tags (48 readers); Secrets Manager allows 50 per secret, "
        "so at most 47 services can read one secret"
    )


def test_tag_value_and_key_length_edges() -> None:
    assert policies.tags_problem("s", {"env-key": "K" * 256}) is None
    assert policies.tags_problem("s", {"env-key": "K" * 257}) == "s: the value of tag env-key is over 256 characters"
    assert policies.tags_problem("s", {"k" * 128: "v"}) is None
    assert "is over 128 characters" in (policies.tags_problem("s", {"k" * 129: "v"}) or "")


def test_attachment_limit_edge() -> None:
    assert policies.attachments_problem("role", 10) is None
    assert policies.attachments_problem("role", 11) == (
        "role role: 11 read policies would be attached; IAM allows 10 managed policies per role by default"
    )


def test_resource_policy_limit_is_recorded_though_unused() -> None:
    assert policies.SECRET_RESOURCE_POLICY_MAX_CHARS == 20480


def test_aws_limit_problems_name_the_secret_or_role() -> None:
    services = tuple(f"svc-{i:02d}" for i in range(50))
    manifest = Manifest(
        services,
        {
            "WIDE_TOKEN": Secret("WIDE_TOKEN", "wide/token", services[:48]),
            "OK_TOKEN": Secret("OK_TOKEN", "ok/token", services[:47]),
        },
    )
    plan = layout(manifest, "aws", "staging")
    roles = {s: "shared-role" for s in services[:11]}
    assert aws_limit_problems(plan, roles, KMS) == [
        "staging/wide/token: needs 51 tags (48 readers); Secrets Manager allows 50 per secret, "
        "so at most 47 services can read one secret",
        "role shared-role: 11 read policies would be attached; IAM allows 10 managed policies per role by default",
    ]
    assert aws_limit_problems(plan, {s: f"{s}-role" for s in services}, None) == aws_limit_problems(plan, {}, None)


@pytest.mark.parametrize(
    ("label", "arns", "kms"),
    [("no-arns", [], None), ("star-arn", ["*"], None), ("star-kms", [ARN_A], "*")],
)
def test_iam_read_policy_never_widens_to_star(label: str, arns: list[str], kms: str | None) -> None:
    with pytest.raises(ValueError):
        iam_read_policy(arns, kms)


@pytest.mark.parametrize(
    ("label", "arns", "kms"),
    [
        ("one-secret", [ARN_A], None),
        ("two-secrets", [ARN_A, ARN_B], None),
        ("with-kms", [ARN_A, ARN_B], KMS),
        ("namespace-pattern", [secret_arn_pattern(ARN_A, "staging")], KMS),
    ],
)
def test_iam_json_is_valid_for_aws(label: str, arns: list[str], kms: str | None) -> None:
    document = iam_read_policy_json(arns, kms)
    assert json.loads(document) == iam_read_policy(arns, kms)
    assert parliament_findings(document) == []
    assert '"*"' not in document


def test_parliament_would_catch_a_misspelled_action() -> None:
    # Guards the check above: parliament is really looking at actions.
    bad = iam_read_policy_json([ARN_A]).replace("GetSecretValue", "GetSecretValu")
    assert any(f.startswith("UNKNOWN_ACTION") for f in parliament_findings(bad))


def test_iam_json_is_stable() -> None:
    assert iam_read_policy_json([ARN_B, ARN_A]) == iam_read_policy_json([ARN_A, ARN_B])


def test_secret_arn_pattern_keeps_account_and_region() -> None:
    assert secret_arn_pattern(ARN_A, "staging") == "arn:aws:secretsmanager:us-east-1:123456789012:secret:staging/*"


@pytest.mark.parametrize(
    "label_arn",
    ["arn:aws:iam::123456789012:policy/x", "not-an-arn", "arn:aws:secretsmanager:us-east-1:1:other:x"],
)
def test_secret_arn_pattern_refuses_other_arns(label_arn: str) -> None:
    with pytest.raises(ValueError):
        secret_arn_pattern(label_arn, "staging")


def test_iam_policy_size_ignores_whitespace() -> None:
    assert iam_policy_size('{\n  "a": [1, 2]\n}') == len('{"a":[1,2]}')


def test_vault_policy_size_limit_edge() -> None:
    """A service reading ~14,000 secrets would pass Vault's default 1 MiB JSON string limit."""
    few = Manifest(("api",), {f"K{i}": Secret(f"K{i}", f"g/k{i:05d}", ("api",)) for i in range(100)})
    assert policies.vault_limit_problems(layout(few, "vault", "prod")) == []
    many = Manifest(("api",), {f"K{i}": Secret(f"K{i}", f"g/k{i:05d}", ("api",)) for i in range(20000)})
    problems = policies.vault_limit_problems(layout(many, "vault", "prod"))
    assert len(problems) == 1 and problems[0].startswith("prod-api-read: the policy is ")
