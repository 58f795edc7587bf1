"""Every backend name the project creates or reads, in one place.

The runbook fixes them: `vault kv get secret/staging/alpaca/api_key_id` and
`aws secretsmanager get-secret-value --secret-id staging/alpaca/api_key_id`.
The stores, `verify`, the gate, the policy pack and the migration script all take them from here.
"""

import re

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]*")
"""Services and namespaces: both become parts of paths and policy names."""

STORE = "secrets"
"""Logical name of the store component. A secret's resources are `secrets-<ENV_KEY>` (and, on AWS,
`secrets-<ENV_KEY>-version`): stable when its path changes, and how the gate maps a URN to an env key."""

# Pulumi type tokens of what the stores register.
VAULT_MOUNT = "vault:index/mount:Mount"
VAULT_SECRET = "vault:kv/secretV2:SecretV2"
VAULT_POLICY = "vault:index/policy:Policy"
AWS_SECRET = "aws:secretsmanager/secret:Secret"
AWS_SECRET_VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
IAM_POLICY = "aws:iam/policy:Policy"
IAM_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"


def secret_name(namespace: str, path: str) -> str:
    """Vault KV v2 secret name (under the mount) and AWS Secrets Manager secret name: `<ns>/<path>`."""
    return f"{namespace}/{path}"


def vault_data_path(mount: str, namespace: str, path: str) -> str:
    """The API path a Vault KV v2 read goes to (what ACL policies name)."""
    return f"{mount}/data/{namespace}/{path}"


def vault_service_policy(namespace: str, service: str) -> str:
    return f"{namespace}-{service}-read"


def vault_namespace_policy(namespace: str) -> str:
    return f"{namespace}-secrets-read"


def aws_service_policy(namespace: str, service: str) -> str:
    return f"{namespace}-{service}-secrets-read"


def aws_namespace_policy(namespace: str) -> str:
    return f"{namespace}-secrets-read"
