"""The read-policy builders, without the Pulumi runtime: exact text, and IAM JSON that AWS accepts."""

import json

import parliament
import pytest

from components.policies import (
    iam_policy_size,
    iam_read_policy,
    iam_read_policy_json,
    secret_arn_pattern,
    vault_namespace_policy_hcl,
    vault_service_policy_hcl,
)

ARN_A = "arn:aws:secretsmanager:us-east-1:123456789012:secret:staging/alpaca/api_key_id-AbCdEf"
ARN_B = "arn:aws:secretsmanager:us-east-1:123456789012:secret:staging/database/password-XyZ123"
KMS = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def parliament_findings(document: str) -> list[str]:
    return [f"{f.issue}: {f.detail}" for f in parliament.analyze_policy_string(document).findings]


def test_vault_service_policy_reads_exactly_the_given_paths() -> None:
    hcl = vault_service_policy_hcl("secret", "staging", ["redis/password", "database/password", "redis/password"])
    assert hcl == (
        "# Read-only: exactly these 2 secret(s) of namespace staging.\n"
        'path "secret/data/staging/database/password" {\n  capabilities = ["read"]\n}\n'
        'path "secret/data/staging/redis/password" {\n  capabilities = ["read"]\n}\n'
    )


def test_vault_service_policy_uses_the_mount() -> None:
    hcl = vault_service_policy_hcl("kv/apps", "prod", ["alpaca/api_key_id"])
    assert 'path "kv/apps/data/prod/alpaca/api_key_id"' in hcl
    assert "secret/" not in hcl


def test_vault_service_policy_refuses_no_paths() -> None:
    with pytest.raises(ValueError, match="at least one"):
        vault_service_policy_hcl("secret", "staging", [])


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
