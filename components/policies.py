"""Read-policy documents and AWS's size limits, as pure functions: Vault ACL HCL and AWS IAM JSON.

No Pulumi import: the stores call these (inside `apply` where IAM needs an ARN), `verify` compares the
stored documents with them, the policy pack checks the limits, and the tests call them directly.

AWS access is attribute-based (docs/stacks.md, "Least privilege at any size"): a service's policy has a
constant size whatever the number of secrets. It allows the read actions on `<ns>/*` only where the
secret carries the tag `read-<service>` = `true`, and denies tagging, so a service cannot widen its own
access. The secrets' tags come from the manifest's readers.
"""

import json
from collections.abc import Iterable, Mapping
from typing import Any

from components import naming
from components.layout import Layout, PolicySpot

IAM_VERSION = "2012-10-17"
# What a service needs to read a secret: the value, and the metadata SDKs fetch first (rotation, versions).
SECRET_READ_ACTIONS = ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"]
TAG_ACTIONS = ["secretsmanager:TagResource", "secretsmanager:UntagResource"]
BATCH_READ = "secretsmanager:BatchGetSecretValue"
KMS_DECRYPT = "kms:Decrypt"
READ_SID, BATCH_SID, NO_TAGGING_SID, DECRYPT_SID = "ReadTaggedSecrets", "BatchRead", "NoTagChanges", "DecryptSecrets"

# AWS quotas (IAM and Secrets Manager user guides, "quotas"); each has a check below and a test at its edge.
IAM_MANAGED_POLICY_MAX_CHARS = 6144
"""A managed policy document, whitespace not counted."""
IAM_MAX_ATTACHED_POLICIES_PER_ROLE = 10
"""Managed policies attached to one role (the default quota)."""
SECRET_MAX_TAGS = 50
TAG_KEY_MAX_CHARS = 128
TAG_VALUE_MAX_CHARS = 256
SECRET_RESOURCE_POLICY_MAX_CHARS = 20480
"""Not used by this project (access is granted by identity policies), listed for the record."""
VAULT_POLICY_MAX_BYTES = 1024 * 1024
"""HashiCorp Vault's default `max_json_string_value_length` (1.16.25+, 1.18.14+, 1.19.9+, 1.20.3+, 1.21):
a policy's HCL travels as one JSON string. ~14,000 secret paths per service. OpenBao has no such limit
(its limits are 32 MiB per request and 1,000 JSON strings per body: the HCL is one string)."""


# --- Vault ------------------------------------------------------------------------------------------


def _hcl_block(path: str, capabilities: Iterable[str]) -> str:
    caps = ", ".join(f'"{c}"' for c in capabilities)
    return f'path "{path}" {{\n  capabilities = [{caps}]\n}}\n'


def vault_service_policy_hcl(namespace: str, read_paths: Iterable[str]) -> str:
    """`read` on each of the service's `<mount>/data/<ns>/<path>`, nothing else.

    `read` on `data/` grants neither list nor metadata, so the service cannot discover other secrets.
    """
    unique = sorted(set(read_paths))
    if not unique:
        raise ValueError("a service read policy needs at least one secret path")
    header = f"# Read-only: exactly these {len(unique)} secret(s) of namespace {namespace}.\n"
    return header + "".join(_hcl_block(p, ["read"]) for p in unique)


def vault_namespace_policy_hcl(mount: str, namespace: str) -> str:
    """`read` on every secret of the namespace, `read`+`list` on its metadata (operators and `verify`)."""
    return (
        f"# Read-only: every secret of namespace {namespace}, and listing it.\n"
        + _hcl_block(f"{mount}/data/{namespace}/*", ["read"])
        + _hcl_block(f"{mount}/metadata/{namespace}/*", ["read", "list"])
    )


def vault_policy_hcl(plan: Layout, policy: PolicySpot) -> str:
    """The HCL the program writes for one policy of the layout."""
    if policy.service is None:
        return vault_namespace_policy_hcl(plan.mount, plan.namespace)
    return vault_service_policy_hcl(plan.namespace, [plan.secret(k).read_path for k in policy.keys])


# --- AWS ----------------------------------------------------------------------------------------------


def secret_arn_pattern(secret_arn: str, namespace: str) -> str:
    """Every secret named `<ns>/...` in the same partition, region and account as `secret_arn`.

    `arn:aws:secretsmanager:us-east-1:123456789012:secret:staging/a-AbCdEf` ->
    `arn:aws:secretsmanager:us-east-1:123456789012:secret:staging/*`.
    """
    parts = secret_arn.split(":", 6)
    if len(parts) != 7 or parts[2] != "secretsmanager" or parts[5] != "secret":
        raise ValueError("not a Secrets Manager secret ARN")
    return ":".join([*parts[:6], f"{namespace}/*"])


def _decrypt(kms_key_arn: str | None) -> list[dict[str, Any]]:
    if kms_key_arn is None:
        return []
    if kms_key_arn.strip() in ("", "*"):
        raise ValueError('a read policy never grants on Resource "*"')
    return [{"Sid": DECRYPT_SID, "Effect": "Allow", "Action": [KMS_DECRYPT], "Resource": [kms_key_arn]}]


def iam_read_policy(secret_arns: Iterable[str], kms_key_arn: str | None = None) -> dict[str, Any]:
    """Allow GetSecretValue/DescribeSecret on exactly `secret_arns` (+ kms:Decrypt on the key).

    The namespace policy (operators, `verify`) uses it with one `<ns>/*` pattern. Never `Resource: "*"`.
    """
    resources = sorted(set(secret_arns))
    if not resources:
        raise ValueError("a read policy needs at least one secret ARN")
    if "*" in resources:
        raise ValueError('a read policy never grants on Resource "*"')
    statement = {"Sid": "ReadSecrets", "Effect": "Allow", "Action": SECRET_READ_ACTIONS, "Resource": resources}
    return {"Version": IAM_VERSION, "Statement": [statement, *_decrypt(kms_key_arn)]}


def iam_service_read_policy(namespace_pattern: str, service: str, kms_key_arn: str | None = None) -> dict[str, Any]:
    """A service's read policy: the read actions on `<ns>/*` where the secret is tagged for it, batch reads
    (which AWS authorizes per secret against the first statement), no tagging.

    Constant size: 2,000 secrets cost what 2 do.
    """
    if not namespace_pattern.endswith("/*") or ":secret:" not in namespace_pattern:
        raise ValueError("expected a `...:secret:<ns>/*` pattern")
    read = {
        "Sid": READ_SID,
        "Effect": "Allow",
        "Action": SECRET_READ_ACTIONS,
        "Resource": namespace_pattern,
        "Condition": {"StringEquals": {f"aws:ResourceTag/{naming.read_tag(service)}": naming.READ_TAG_VALUE}},
    }
    # BatchGetSecretValue exists only on Resource "*" and grants nothing by itself: AWS authorizes every
    # secret of a batch against GetSecretValue (above). It lets `components run` read N secrets in N/20 calls.
    batch = {"Sid": BATCH_SID, "Effect": "Allow", "Action": BATCH_READ, "Resource": "*"}
    # A Deny only narrows: whatever else the role holds, it cannot add or remove the tag that grants access.
    no_tagging = {"Sid": NO_TAGGING_SID, "Effect": "Deny", "Action": TAG_ACTIONS, "Resource": "*"}
    return {"Version": IAM_VERSION, "Statement": [read, batch, no_tagging, *_decrypt(kms_key_arn)]}


def iam_json(document: Mapping[str, Any]) -> str:
    """The stable JSON string `aws.iam.Policy(policy=...)` takes."""
    return json.dumps(document, indent=2, sort_keys=True)


def secret_tags(namespace: str, env_key: str, readers: Iterable[str]) -> dict[str, str]:
    """A secret's tags: who manages it, and one `read-<service>` tag per reader (what grants access)."""
    tags = {naming.MANAGED_BY_TAG: naming.MANAGED_BY, naming.NAMESPACE_TAG: namespace, naming.ENV_KEY_TAG: env_key}
    tags.update({naming.read_tag(r): naming.READ_TAG_VALUE for r in readers})
    return tags


# --- AWS limits -----------------------------------------------------------------------------------------


def iam_policy_size(document: str) -> int:
    """The size IAM checks against its limit: characters other than whitespace."""
    return sum(1 for c in document if not c.isspace())


def policy_size_problem(name: str, document: str) -> str | None:
    size = iam_policy_size(document)
    if size > IAM_MANAGED_POLICY_MAX_CHARS:
        return f"{name}: the policy document has {size} characters; IAM allows {IAM_MANAGED_POLICY_MAX_CHARS}"
    return None


def tags_problem(secret: str, tags: Mapping[str, str]) -> str | None:
    if len(tags) > SECRET_MAX_TAGS:
        readers = sum(1 for k in tags if naming.service_of_read_tag(k))
        return (
            f"{secret}: needs {len(tags)} tags ({readers} readers); Secrets Manager allows {SECRET_MAX_TAGS} per "
            f"secret, so at most {SECRET_MAX_TAGS - (len(tags) - readers)} services can read one secret"
        )
    for tag_key, value in tags.items():
        if len(tag_key) > TAG_KEY_MAX_CHARS:
            return f"{secret}: tag key {tag_key[:40]}... is over {TAG_KEY_MAX_CHARS} characters"
        if len(value) > TAG_VALUE_MAX_CHARS:
            return f"{secret}: the value of tag {tag_key} is over {TAG_VALUE_MAX_CHARS} characters"
    return None


def attachments_problem(role: str, policies: int) -> str | None:
    if policies > IAM_MAX_ATTACHED_POLICIES_PER_ROLE:
        return (
            f"role {role}: {policies} read policies would be attached; IAM allows "
            f"{IAM_MAX_ATTACHED_POLICIES_PER_ROLE} managed policies per role by default"
        )
    return None


def vault_limit_problems(plan: Layout) -> list[str]:
    """Vault policies Vault's default JSON limits would refuse, one line each."""
    problems = []
    for policy in plan.policies:
        size = len(vault_policy_hcl(plan, policy).encode("utf-8"))
        if size > VAULT_POLICY_MAX_BYTES:
            problems.append(
                f"{policy.name}: the policy is {size} bytes; Vault's default max_json_string_value_length is "
                f"{VAULT_POLICY_MAX_BYTES} (raise it on the listener, or split the service)"
            )
    return problems


# The longest ARN prefix a real account can produce (partition aws-iso-b, a long region), so the size
# check before deploying is never smaller than the document AWS will see.
_WORST_CASE_ARN = "arn:aws-iso-b:secretsmanager:us-isob-east-1:123456789012:secret:x-AbCdEf"
_WORST_CASE_KMS = "arn:aws-iso-b:kms:us-isob-east-1:123456789012:key/12345678-1234-1234-1234-123456789012"


def aws_limit_problems(plan: Layout, service_roles: Mapping[str, str], kms_key_arn: str | None) -> list[str]:
    """Everything in this stack that AWS would refuse, one line each, before anything is created."""
    problems: list[str] = []
    for secret in plan.secrets:
        problem = tags_problem(secret.name, secret_tags(plan.namespace, secret.key, secret.readers))
        if problem:
            problems.append(problem)
    pattern = secret_arn_pattern(_WORST_CASE_ARN, plan.namespace)
    kms = _WORST_CASE_KMS if kms_key_arn else None
    for policy in plan.policies:
        document = (
            iam_read_policy([pattern], kms)
            if policy.service is None
            else iam_service_read_policy(pattern, policy.service, kms)
        )
        problem = policy_size_problem(policy.name, iam_json(document))
        if problem:
            problems.append(problem)
    per_role: dict[str, int] = {}
    for service, role in service_roles.items():
        if plan.policy_of(service) is not None:
            per_role[role] = per_role.get(role, 0) + 1
    problems.extend(p for role, n in sorted(per_role.items()) if (p := attachments_problem(role, n)))
    return problems
