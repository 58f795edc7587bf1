"""`AwsSecretStore`: a namespace's secrets in AWS Secrets Manager and the IAM policies that read them.

Each secret is named `<ns>/<path>`, as the runbook's
`aws secretsmanager create-secret --name staging/alpaca/api_key_id --secret-string ...`.
"""

from collections.abc import Mapping, Sequence
from typing import TypedDict

import pulumi
import pulumi_aws as aws

from components.naming import aws_namespace_policy, aws_service_policy, secret_name
from components.policies import (
    IAM_MANAGED_POLICY_MAX_CHARS,
    iam_policy_size,
    iam_read_policy_json,
    secret_arn_pattern,
)
from components.settings import StoredSecret

MANAGED_BY = "pulumi/secrets-migration"


class AwsSecretStoreArgs(TypedDict):
    namespace: str
    """Prefix of every secret name: `staging`."""
    services: Sequence[str]
    """Services that get a read policy, in manifest order."""
    secrets: Mapping[str, StoredSecret]
    """Env key -> path, readers and (secret) value."""
    kms_key_id: str | None
    """Customer-managed KMS key ARN for the secrets; None: the AWS managed key."""
    recovery_window_in_days: int
    """Days a deleted secret stays recoverable (0 or 7-30)."""
    service_roles: Mapping[str, str]
    """Service -> IAM role name its read policy is attached to."""


def _policy_document(policy_name: str, arns: list[str], kms_key_id: str | None) -> str:
    document = iam_read_policy_json(arns, kms_key_id)
    if iam_policy_size(document) > IAM_MANAGED_POLICY_MAX_CHARS:
        pulumi.log.warn(
            f"{policy_name}: the policy document is over IAM's {IAM_MANAGED_POLICY_MAX_CHARS}-character "
            "limit for managed policies; split the service's secrets or shorten their paths"
        )
    return document


class AwsSecretStore(pulumi.ComponentResource):  # type: ignore[misc]  # pulumi is untyped to mypy
    secret_paths: pulumi.Output[dict[str, str]]
    """Env key -> secret name: `staging/alpaca/api_key_id`."""
    policies: pulumi.Output[dict[str, str]]
    """Service -> ARN of its read policy."""
    namespace_policy: pulumi.Output[str]
    """ARN of the namespace-wide read policy."""

    def __init__(self, name: str, args: AwsSecretStoreArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("secrets-migration:index:AwsSecretStore", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ns, kms_key_id = args["namespace"], args["kms_key_id"]

        arns: dict[str, pulumi.Output[str]] = {}
        for key, secret in args["secrets"].items():
            stored = aws.secretsmanager.Secret(
                f"{name}-{key}",
                name=secret_name(ns, secret["path"]),
                description=f"{key} for {ns} (secrets-migration)",
                kms_key_id=kms_key_id,
                recovery_window_in_days=args["recovery_window_in_days"],
                tags={"managed-by": MANAGED_BY, "namespace": ns, "env-key": key},
                # No delete_before_replace: `name` is the only ForceNew input we set, so a replacement
                # always has a new name and create-before-delete cannot collide. Deleting first would
                # leave services without the secret and, with a recovery window, still find the old
                # name reserved.
                opts=child,
            )
            aws.secretsmanager.SecretVersion(
                f"{name}-{key}-version",
                secret_id=stored.id,
                secret_string=pulumi.Output.secret(secret["value"]),
                opts=child,
            )
            arns[key] = stored.arn

        policies: dict[str, pulumi.Output[str]] = {}
        for service in args["services"]:
            keys = [k for k, s in args["secrets"].items() if service in s["readers"]]
            if not keys:  # IAM refuses a policy without a resource; a service that reads nothing gets none.
                continue
            policy_name = aws_service_policy(ns, service)
            policy = aws.iam.Policy(
                f"{name}-{service}-read",
                name=policy_name,
                description=f"Read {service}'s secrets in {ns} (secrets-migration)",
                policy=pulumi.Output.all(*[arns[k] for k in keys]).apply(
                    lambda resolved, n=policy_name: _policy_document(n, list(resolved), kms_key_id)
                ),
                opts=child,
            )
            policies[service] = policy.arn
            role = args["service_roles"].get(service)
            if role:
                aws.iam.RolePolicyAttachment(
                    f"{name}-{service}-attach-{role}", role=role, policy_arn=policy.arn, opts=child
                )

        if arns:
            # One name-prefix pattern rather than every ARN: stays within IAM's size limit at any count.
            first_arn = next(iter(arns.values()))
            namespace_policy = aws.iam.Policy(
                f"{name}-namespace-read",
                name=aws_namespace_policy(ns),
                description=f"Read every secret in {ns} (secrets-migration)",
                policy=first_arn.apply(lambda arn: iam_read_policy_json([secret_arn_pattern(arn, ns)], kms_key_id)),
                opts=child,
            )
            self.namespace_policy = namespace_policy.arn
        else:
            self.namespace_policy = pulumi.Output.from_input("")

        self.secret_paths = pulumi.Output.from_input(
            {key: secret_name(ns, s["path"]) for key, s in args["secrets"].items()}
        )
        self.policies = pulumi.Output.from_input(policies)
        self.register_outputs(
            {
                "secret_paths": self.secret_paths,
                "policies": self.policies,
                "namespace_policy": self.namespace_policy,
            }
        )
