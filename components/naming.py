"""Every backend name the project creates or reads, in one place.

The runbook fixes them: `vault kv get secret/staging/alpaca/api_key_id` and
`aws secretsmanager get-secret-value --secret-id staging/alpaca/api_key_id`.
The stores, `verify`, the policy pack and the migration script all call these.
"""


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
