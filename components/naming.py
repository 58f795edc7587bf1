"""Every name the project gives to something in a backend or in Pulumi's state, in one place.

The runbook fixes the secrets' names: `vault kv get secret/staging/alpaca/api_key_id` and
`aws secretsmanager get-secret-value --secret-id staging/alpaca/api_key_id`. The stores, `verify`,
`run`, the gate, the policy pack and the migration take every name from here (through
`components.layout` where a manifest is involved).

The names are injective: no two (namespace, service) pairs, and no service and the namespace itself,
ever get the same backend name. That holds because a namespace is letters and digits only (so the
first `-` of a name always ends the namespace) and because the few words that name the namespace's
own resources are reserved as service names. `parse_policy_name` inverts the mapping (the policy pack
uses it); tests/test_naming.py checks both properties over generated names.
"""

import re

NAMESPACE_PATTERN = re.compile(r"[a-z0-9]{1,32}")
NAMESPACE_RULE = "1-32 lower-case letters and digits (no '-': it separates the namespace in policy names)"
SERVICE_PATTERN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
SERVICE_MAX = 64
SERVICE_RULE = f"lower-case letters, digits and single inner '-', at most {SERVICE_MAX} characters"
RESERVED_SERVICES = frozenset({"secrets", "namespace"})
"""`secrets` would take the namespace policy's backend name, `namespace` its logical name."""

DEFAULT_MOUNT = "secret"
"""The KV v2 mount a dev server already has, and the runbook's."""
DEFAULT_APPROLE_MOUNT = "approle"

STORE = "secrets"
"""Logical name of the store component; every child's logical name starts with it."""

# Pulumi type tokens of what the stores register.
VAULT_MOUNT = "vault:index/mount:Mount"
VAULT_SECRET = "vault:kv/secretV2:SecretV2"
VAULT_POLICY = "vault:index/policy:Policy"
VAULT_AUTH_BACKEND = "vault:index/authBackend:AuthBackend"
VAULT_APPROLE = "vault:appRole/authBackendRole:AuthBackendRole"
AWS_SECRET = "aws:secretsmanager/secret:Secret"
AWS_SECRET_VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
IAM_POLICY = "aws:iam/policy:Policy"
IAM_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
VAULT_STORE_TYPE = "secrets-migration:index:VaultSecretStore"
AWS_STORE_TYPE = "secrets-migration:index:AwsSecretStore"

MANAGED_BY_TAG = "managed-by"
MANAGED_BY = "pulumi/secrets-migration"
NAMESPACE_TAG = "namespace"
ENV_KEY_TAG = "env-key"
READ_TAG_PREFIX = "read-"
READ_TAG_VALUE = "true"


def name_problem(kind: str, value: str) -> str | None:
    """Why `value` cannot be a namespace or service name, or None. Names the rule, echoes the name."""
    if kind == "namespace":
        return None if NAMESPACE_PATTERN.fullmatch(value) else f"namespace {value!r}: must be {NAMESPACE_RULE}"
    if not SERVICE_PATTERN.fullmatch(value) or len(value) > SERVICE_MAX:
        return f"service {value!r}: must be {SERVICE_RULE}"
    if value in RESERVED_SERVICES:
        return f"service {value!r}: reserved (it names the namespace's own policy); choose another name"
    return None


# --- secrets ------------------------------------------------------------------------------------------


def secret_name(namespace: str, path: str) -> str:
    """Vault KV v2 secret name (under the mount) and AWS Secrets Manager secret name: `<ns>/<path>`."""
    return f"{namespace}/{path}"


def vault_kv_path(mount: str, namespace: str, path: str) -> str:
    """The path as `vault kv get` takes it: `secret/staging/alpaca/api_key_id`."""
    return f"{mount}/{secret_name(namespace, path)}"


def vault_data_path(mount: str, namespace: str, path: str) -> str:
    """The API path a Vault KV v2 read goes to (what ACL policies name)."""
    return f"{mount}/data/{namespace}/{path}"


def vault_metadata_path(mount: str, namespace: str, path: str) -> str:
    """The KV v2 metadata path (versions, listing, delete of every version)."""
    return f"{mount}/metadata/{namespace}/{path}"


def secret_logical_name(path: str) -> str:
    """A secret's resources are named after its path: `secrets/alpaca/api_key_id`.

    The path is the secret's identity in the backend, so renaming its env key changes nothing in
    the state, and a new path is a new resource (created first), never a replacement at one name.
    """
    return f"{STORE}/{path}"


def legacy_secret_logical_name(env_key: str) -> str:
    """The name a secret had before names followed paths (kept as an alias: no churn on upgrade)."""
    return f"{STORE}-{env_key}"


def legacy_version_logical_name(env_key: str) -> str:
    return f"{STORE}-{env_key}-version"


def path_of_logical_name(name: str) -> str | None:
    """`secrets/alpaca/api_key_id` -> `alpaca/api_key_id`; None for any other name."""
    prefix = f"{STORE}/"
    return name[len(prefix) :] if name.startswith(prefix) and len(name) > len(prefix) else None


# --- policies, roles, tags ----------------------------------------------------------------------------

_VAULT_SUFFIX = "-read"
_AWS_SUFFIX = "-secrets-read"
_NAMESPACE_WORD = "secrets"


def vault_service_policy(namespace: str, service: str) -> str:
    return f"{namespace}-{service}{_VAULT_SUFFIX}"


def vault_namespace_policy(namespace: str) -> str:
    return f"{namespace}-{_NAMESPACE_WORD}{_VAULT_SUFFIX}"


def aws_service_policy(namespace: str, service: str) -> str:
    return f"{namespace}-{service}{_AWS_SUFFIX}"


def aws_namespace_policy(namespace: str) -> str:
    return f"{namespace}{_AWS_SUFFIX}"


def service_policy(backend: str, namespace: str, service: str) -> str:
    return (vault_service_policy if backend == "vault" else aws_service_policy)(namespace, service)


def namespace_policy(backend: str, namespace: str) -> str:
    return (vault_namespace_policy if backend == "vault" else aws_namespace_policy)(namespace)


def parse_policy_name(backend: str, name: str) -> tuple[str, str | None] | None:
    """(namespace, service) of a policy name this project writes, service None for the namespace
    policy; None when the name is not one of ours. The inverse of the functions above."""
    namespace, sep, rest = name.partition("-")
    if not sep or name_problem("namespace", namespace):
        return None
    if backend == "vault":
        if rest == f"{_NAMESPACE_WORD}{_VAULT_SUFFIX}":
            return namespace, None
        service = rest.removesuffix(_VAULT_SUFFIX)
    else:
        if rest == _AWS_SUFFIX.lstrip("-"):
            return namespace, None
        service = rest.removesuffix(_AWS_SUFFIX)
    if service == rest or name_problem("service", service):
        return None
    return namespace, service


def approle_role(namespace: str, service: str) -> str:
    """The AppRole a service logs in with: `staging-signal-service`."""
    return f"{namespace}-{service}"


def parse_approle_role(name: str) -> tuple[str, str] | None:
    namespace, sep, service = name.partition("-")
    if not sep or name_problem("namespace", namespace) or name_problem("service", service):
        return None
    return namespace, service


def read_tag(service: str) -> str:
    """The tag on an AWS secret that lets `service` read it (attribute-based access)."""
    return f"{READ_TAG_PREFIX}{service}"


def service_of_read_tag(tag: str) -> str | None:
    if not tag.startswith(READ_TAG_PREFIX):
        return None
    service = tag[len(READ_TAG_PREFIX) :]
    return None if name_problem("service", service) else service


# Descriptions are functions of the same inputs as the name: IAM treats `description` as immutable
# (a change replaces the policy, and create-before-delete under a fixed name fails with
# EntityAlreadyExists), so a description must never change while the name stays.
def iam_service_policy_description(namespace: str, service: str) -> str:
    return f"Read {service}'s secrets in {namespace} (secrets-migration)"


def iam_namespace_policy_description(namespace: str) -> str:
    return f"Read every secret in {namespace} (secrets-migration)"


def secret_description(namespace: str, env_key: str) -> str:
    """Updatable in place on AWS (UpdateSecret): it may follow the env key."""
    return f"{env_key} for {namespace} (secrets-migration)"


def mount_description(namespace: str) -> str:
    return f"KV v2 for secrets-migration ({namespace})"


# --- logical names of the other children ------------------------------------------------------------


def mount_logical_name() -> str:
    return f"{STORE}-mount"


def approle_mount_logical_name() -> str:
    return f"{STORE}-approle"


def policy_logical_name(service: str | None) -> str:
    """`secrets-<service>-read`, or `secrets-namespace-read` (hence `namespace` is reserved)."""
    return f"{STORE}-{service or 'namespace'}-read"


def approle_logical_name(service: str) -> str:
    return f"{STORE}-{service}-approle"


def attachment_logical_name(service: str, role: str) -> str:
    return f"{STORE}-{service}-attach-{role}"
