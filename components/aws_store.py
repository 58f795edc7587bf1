"""`AwsSecretStore`: a namespace's secrets in AWS Secrets Manager and the IAM policies that read them.

Each secret is named `<ns>/<path>`, as the runbook's
`aws secretsmanager create-secret --name staging/alpaca/api_key_id --secret-string ...`, and tagged
`read-<service>` for each of its readers; each service's policy reads the namespace's secrets that
carry its tag (constant size: components.policies). What is registered is `components.layout`'s layout.
"""

from collections.abc import Mapping
from typing import TypedDict

import pulumi
import pulumi_aws as aws

from components import naming
from components.layout import Layout
from components.policies import iam_json, iam_read_policy, iam_service_read_policy, secret_arn_pattern, secret_tags


class AwsSecretStoreArgs(TypedDict):
    layout: Layout
    """Where every secret and policy goes (components.layout)."""
    values: Mapping[str, pulumi.Output[str]]
    """Env key -> (secret) value."""
    kms_key_id: str | None
    """Customer-managed KMS key ARN for the secrets; None: the AWS managed key."""
    recovery_window_in_days: int
    """Days a deleted secret stays recoverable (0 or 7-30)."""
    service_roles: Mapping[str, str]
    """Service -> IAM role name its read policy is attached to."""


class AwsSecretStore(pulumi.ComponentResource):  # type: ignore[misc]  # pulumi is untyped to mypy
    secret_paths: pulumi.Output[dict[str, str]]
    """Env key -> secret name: `staging/alpaca/api_key_id`."""
    policies: pulumi.Output[dict[str, str]]
    """Service -> ARN of its read policy."""
    namespace_policy: pulumi.Output[str]
    """ARN of the namespace-wide read policy."""

    def __init__(self, name: str, args: AwsSecretStoreArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(naming.AWS_STORE_TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        plan, kms_key_id = args["layout"], args["kms_key_id"]
        ns = plan.namespace

        stored: dict[str, aws.secretsmanager.Secret] = {}
        for spot in plan.secrets:
            secret = aws.secretsmanager.Secret(
                spot.logical_name,
                name=spot.name,
                description=naming.secret_description(ns, spot.key),
                kms_key_id=kms_key_id,
                recovery_window_in_days=args["recovery_window_in_days"],
                # Tags are updated in place (TagResource/UntagResource): changing readers never replaces.
                tags=secret_tags(ns, spot.key, spot.readers),
                opts=pulumi.ResourceOptions.merge(
                    child,
                    pulumi.ResourceOptions(aliases=[pulumi.Alias(name=naming.legacy_secret_logical_name(spot.key))]),
                ),
            )
            aws.secretsmanager.SecretVersion(
                spot.logical_name,
                secret_id=secret.id,
                secret_string=pulumi.Output.secret(args["values"][spot.key]),
                opts=pulumi.ResourceOptions.merge(
                    child,
                    pulumi.ResourceOptions(
                        aliases=[pulumi.Alias(name=naming.legacy_version_logical_name(spot.key))],
                        # `secret_string` is ForceNew: every rotation replaces the version. That only adds
                        # a version (the old one loses its AWSPREVIOUS label on delete; the secret stays),
                        # so the version is never protected, even on a protected stack.
                        protect=False,
                    ),
                ),
            )
            stored[spot.key] = secret

        policies: dict[str, pulumi.Output[str]] = {}
        self.namespace_policy = pulumi.Output.from_input("")
        # The resource pattern needs the account and region, which only an ARN tells; any secret's will do.
        first_arn = next(iter(stored.values())).arn if stored else None
        for policy_spot in plan.policies:
            assert first_arn is not None  # the layout has AWS policies only when there are secrets
            service = policy_spot.service
            if service is None:
                document = first_arn.apply(
                    lambda arn: iam_json(iam_read_policy([secret_arn_pattern(arn, ns)], kms_key_id))
                )
                description = naming.iam_namespace_policy_description(ns)
            else:
                document = first_arn.apply(
                    lambda arn, s=service: iam_json(iam_service_read_policy(secret_arn_pattern(arn, ns), s, kms_key_id))
                )
                description = naming.iam_service_policy_description(ns, service)
            policy = aws.iam.Policy(
                policy_spot.logical_name,
                name=policy_spot.name,
                description=description,
                policy=document,
                # A service's policy is updated after the secrets it reads: their tags are what it grants on.
                opts=pulumi.ResourceOptions.merge(
                    child, pulumi.ResourceOptions(depends_on=[stored[k] for k in policy_spot.keys] if service else None)
                ),
            )
            if service is None:
                self.namespace_policy = policy.arn
                continue
            policies[service] = policy.arn
            role = args["service_roles"].get(service)
            if role:
                aws.iam.RolePolicyAttachment(
                    naming.attachment_logical_name(service, role), role=role, policy_arn=policy.arn, opts=child
                )

        self.secret_paths = pulumi.Output.from_input({s.key: s.location for s in plan.secrets})
        self.policies = pulumi.Output.from_input(policies)
        self.register_outputs(
            {
                "secret_paths": self.secret_paths,
                "policies": self.policies,
                "namespace_policy": self.namespace_policy,
            }
        )
