"""Read-policy documents, as pure functions: Vault ACL HCL and AWS IAM JSON.

No Pulumi import: the stores call these inside `apply` (IAM needs the secrets' ARNs), the tests call
them directly, and every name comes from `components.naming`.
"""

import json
from collections.abc import Iterable
from typing import Any

from components.naming import vault_data_path

IAM_VERSION = "2012-10-17"
# What a service needs to read a secret: the value, and the metadata SDKs fetch first (rotation, versions).
SECRET_READ_ACTIONS = ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"]
KMS_DECRYPT = "kms:Decrypt"
# IAM counts a managed policy's size without whitespace; above this `CreatePolicy` fails.
IAM_MANAGED_POLICY_MAX_CHARS = 6144


def _hcl_block(path: str, capabilities: Iterable[str]) -> str:
    caps = ", ".join(f'"{c}"' for c in capabilities)
    return f'path "{path}" {{\n  capabilities = [{caps}]\n}}\n'


def vault_service_policy_hcl(mount: str, namespace: str, paths: Iterable[str]) -> str:
    """`read` on `<mount>/data/<ns>/<path>` for each of the service's secret paths, nothing else.

    `read` on `data/` grants neither list nor metadata, so the service cannot discover other secrets.
    """
    unique = sorted(set(paths))
    if not unique:
        raise ValueError("a service read policy needs at least one secret path")
    header = f"# Read-only: exactly these {len(unique)} secret(s) of namespace {namespace}.\n"
    return header + "".join(_hcl_block(vault_data_path(mount, namespace, p), ["read"]) for p in unique)


def vault_namespace_policy_hcl(mount: str, namespace: str) -> str:
    """`read` on every secret of the namespace, `read`+`list` on its metadata (operators and `verify`)."""
    return (
        f"# Read-only: every secret of namespace {namespace}, and listing it.\n"
        + _hcl_block(f"{mount}/data/{namespace}/*", ["read"])
        + _hcl_block(f"{mount}/metadata/{namespace}/*", ["read", "list"])
    )


def secret_arn_pattern(secret_arn: str, namespace: str) -> str:
    """Every secret named `<ns>/...` in the same account and region as `secret_arn`.

    `arn:aws:secretsmanager:us-east-1:123456789012:secret:staging/a-AbCdEf` ->
    `arn:aws:secretsmanager:us-east-1:123456789012:secret:staging/*`.
    """
    parts = secret_arn.split(":", 6)
    if len(parts) != 7 or parts[2] != "secretsmanager" or parts[5] != "secret":
        raise ValueError("not a Secrets Manager secret ARN")
    return ":".join([*parts[:6], f"{namespace}/*"])


def iam_read_policy(secret_arns: Iterable[str], kms_key_arn: str | None = None) -> dict[str, Any]:
    """Allow GetSecretValue/DescribeSecret on exactly `secret_arns` (+ kms:Decrypt on the key).

    Never `Resource: "*"`: an empty list or a bare `*` is refused rather than widened.
    """
    resources = sorted(set(secret_arns))
    if not resources:
        raise ValueError("a read policy needs at least one secret ARN")
    if "*" in resources or (kms_key_arn is not None and kms_key_arn.strip() in ("", "*")):
        raise ValueError('a read policy never grants on Resource "*"')
    statements: list[dict[str, Any]] = [
        {"Sid": "ReadSecrets", "Effect": "Allow", "Action": SECRET_READ_ACTIONS, "Resource": resources}
    ]
    if kms_key_arn is not None:
        statements.append(
            {"Sid": "DecryptSecrets", "Effect": "Allow", "Action": [KMS_DECRYPT], "Resource": [kms_key_arn]}
        )
    return {"Version": IAM_VERSION, "Statement": statements}


def iam_read_policy_json(secret_arns: Iterable[str], kms_key_arn: str | None = None) -> str:
    """`iam_read_policy` as the stable JSON string `aws.iam.Policy(policy=...)` takes."""
    return json.dumps(iam_read_policy(secret_arns, kms_key_arn), indent=2, sort_keys=True)


def iam_policy_size(document: str) -> int:
    """The size IAM checks against its limit: characters other than whitespace."""
    return sum(1 for c in document if not c.isspace())
