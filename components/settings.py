"""The stack's config, read and validated in one place (DESIGN.md "Stack config").

`load_settings()` turns `pulumi.Config` into a frozen `Settings`; `load_values()` finds each manifest
secret's value (`values` config, else `envFile`) and wraps it in `pulumi.Output.secret` where it is read.
Every problem is a `ConfigError` naming config keys and env keys, never a value. Components never read
config: the program passes them these plain, typed values.
"""

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict, cast

import pulumi

from components import manifest as manifest_mod
from components.envfile import read_env
from components.errors import InputError
from components.manifest import SERVICE_PATTERN, Manifest, path_problem
from components.naming import NAME_PATTERN

PROJECT = "secrets-migration"
BACKENDS = ("vault", "aws")
NAMESPACE_PATTERN = NAME_PATTERN
# AWS role names: https://docs.aws.amazon.com/IAM/latest/APIReference/API_Role.html
ROLE_NAME_PATTERN = re.compile(r"[\w+=,.@-]{1,64}")
KMS_KEY_ARN_PATTERN = re.compile(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+")
PROD_NAMESPACE = "prod"
SET_VALUE_HINT = "pulumi config set --secret --path 'values.KEY'"

Backend = Literal["vault", "aws"]


class ConfigError(InputError, pulumi.RunError):  # type: ignore[misc]  # pulumi is untyped to mypy
    """Bad stack config. A `RunError`, so `pulumi up` prints the one-line message without a traceback."""


@dataclass(frozen=True)
class Settings:
    """Everything the program needs from the stack's config, validated. Holds no secret value."""

    stack: str
    backend: Backend
    namespace: str
    manifest_path: Path
    env_file: Path | None
    protect: bool
    vault_mount: str
    vault_manage_mount: bool
    aws_kms_key_id: str | None
    aws_recovery_window_in_days: int
    aws_service_roles: dict[str, str]

    @property
    def is_prod(self) -> bool:
        return self.namespace == PROD_NAMESPACE


class StoredSecret(TypedDict):
    """One manifest secret as the stores take it."""

    path: str
    """Relative to the namespace: `alpaca/api_key_id`."""
    readers: list[str]
    """Services allowed to read it."""
    value: pulumi.Output[str]
    """Its value, already secret."""


def _key(name: str) -> str:
    return f"{PROJECT}:{name}"


def _get_bool(config: pulumi.Config, name: str, default: bool) -> bool:
    raw: str | None = config.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() not in ("true", "false"):
        raise ConfigError(f"{_key(name)}: must be true or false")
    return raw.lower() == "true"


def _get_object(config: pulumi.Config, name: str) -> dict[str, Any]:
    """A map-valued key; unset, empty and `{}` (the Pulumi.yaml default) are all the empty map."""
    raw = config.get(name)
    if raw is None or raw.strip() == "":
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise ConfigError(f"{_key(name)}: must be a map (set it with --path '{name}.KEY')") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{_key(name)}: must be a map (set it with --path '{name}.KEY')")
    return data


def load_settings() -> Settings:
    """Read and validate the stack's config; raise ConfigError naming the key on the first problem."""
    config = pulumi.Config(PROJECT)
    stack = pulumi.get_stack()

    backend = config.get("backend")
    if not backend:
        raise ConfigError(f"{_key('backend')}: required; set it with `pulumi config set backend vault|aws`")
    if backend not in BACKENDS:
        raise ConfigError(f"{_key('backend')}: unknown backend; expected one of: {', '.join(BACKENDS)}")

    namespace = config.get("namespace") or stack
    if not NAMESPACE_PATTERN.fullmatch(namespace):
        raise ConfigError(f"{_key('namespace')}: must match [a-z0-9][a-z0-9-]*")
    if namespace != stack and not _get_bool(config, "allowNamespaceOverride", False):
        raise ConfigError(
            f"{_key('namespace')}: differs from the stack name {stack!r}; "
            f"set {_key('allowNamespaceOverride')} to true if that is intended"
        )

    protect_raw = (config.get("protect") or "auto").lower()
    if protect_raw not in ("auto", "true", "false"):
        raise ConfigError(f"{_key('protect')}: must be true, false or auto")
    protect = namespace == PROD_NAMESPACE if protect_raw == "auto" else protect_raw == "true"

    vault_mount = config.get("vaultMount") or "secret"
    problem = path_problem(vault_mount)
    if problem:
        raise ConfigError(f"{_key('vaultMount')}: {problem.replace('path', 'mount', 1)}")

    window_raw = config.get("awsRecoveryWindowInDays") or "30"
    try:
        window = int(window_raw)
    except ValueError:
        raise ConfigError(f"{_key('awsRecoveryWindowInDays')}: must be a whole number of days") from None
    if not (window == 0 or 7 <= window <= 30):
        raise ConfigError(f"{_key('awsRecoveryWindowInDays')}: must be 0 or between 7 and 30")
    if window == 0 and namespace == PROD_NAMESPACE:
        raise ConfigError(f"{_key('awsRecoveryWindowInDays')}: 0 (delete without recovery) is not allowed in prod")

    kms_key = config.get("awsKmsKeyId") or None
    if kms_key is not None and not KMS_KEY_ARN_PATTERN.fullmatch(kms_key):
        # The read policies must name the key itself for kms:Decrypt; an alias or bare id cannot be.
        raise ConfigError(f"{_key('awsKmsKeyId')}: must be a key ARN (arn:aws:kms:<region>:<account>:key/<id>)")

    roles = _get_object(config, "awsServiceRoles")
    for service, role in roles.items():
        if not SERVICE_PATTERN.fullmatch(service):
            raise ConfigError(f"{_key('awsServiceRoles')}: service name must match [a-z0-9][a-z0-9-]*")
        if not isinstance(role, str) or not ROLE_NAME_PATTERN.fullmatch(role):
            raise ConfigError(f"{_key('awsServiceRoles')}.{service}: must be an IAM role name")

    env_file = config.get("envFile") or None
    return Settings(
        stack=stack,
        backend=cast(Backend, backend),
        namespace=namespace,
        manifest_path=Path(config.get("manifest") or manifest_mod.DEFAULT_MANIFEST),
        env_file=Path(env_file) if env_file else None,
        protect=protect,
        vault_mount=vault_mount,
        vault_manage_mount=_get_bool(config, "vaultManageMount", False),
        aws_kms_key_id=kms_key,
        aws_recovery_window_in_days=window,
        aws_service_roles={str(k): str(v) for k, v in roles.items()},
    )


def load_manifest(settings: Settings) -> Manifest:
    """The manifest the stack names, checked against the rest of the config."""
    try:
        manifest = manifest_mod.load(settings.manifest_path)
    except InputError as e:
        raise ConfigError(str(e)) from None
    strangers = sorted(set(settings.aws_service_roles) - set(manifest.services))
    if strangers:
        raise ConfigError(f"{_key('awsServiceRoles')}: services not in the manifest: {', '.join(strangers)}")
    return manifest


def _values_config() -> Mapping[str, object]:
    """The `values` map, refused when it is stored in plain text."""
    values = _get_object(pulumi.Config(PROJECT), "values")
    if values and not bool(pulumi.runtime.is_config_secret(_key("values"))):
        raise ConfigError(
            f"{_key('values')}: is stored in plain text; remove it and set each value with `{SET_VALUE_HINT}`"
        )
    return values


def load_values(settings: Settings, manifest: Manifest) -> dict[str, pulumi.Output[str]]:
    """Each manifest secret's value, secret from here on: `values` config wins over `envFile`."""
    configured = _values_config()
    unknown = sorted(set(configured) - set(manifest.secrets))
    if unknown:
        raise ConfigError(f"{_key('values')}: keys not in the manifest's secrets: {', '.join(unknown)}")
    not_text = sorted(k for k, v in configured.items() if not isinstance(v, str))
    if not_text:
        raise ConfigError(f"{_key('values')}: values must be strings: {', '.join(not_text)}")

    from_file: dict[str, str] = {}
    if settings.env_file is not None:
        try:
            from_file = {k: e.value for k, e in read_env(settings.env_file).items()}
        except InputError as e:
            raise ConfigError(str(e)) from None

    values: dict[str, pulumi.Output[str]] = {}
    missing: list[str] = []
    for key in sorted(manifest.secrets):
        raw = configured.get(key, from_file.get(key))
        if not isinstance(raw, str) or raw == "":
            missing.append(key)
            continue
        values[key] = pulumi.Output.secret(raw)
    if missing:
        env_file = f", or add it to {settings.env_file}" if settings.env_file else ""
        raise ConfigError(
            f"no value for manifest secrets: {', '.join(missing)} "
            f"(set each with `{SET_VALUE_HINT}`{env_file}; an empty value counts as missing)"
        )
    return values


def stored_secrets(manifest: Manifest, values: Mapping[str, pulumi.Output[str]]) -> dict[str, StoredSecret]:
    """Manifest secrets joined with their values, keyed by env key (the stable logical name)."""
    return {
        key: StoredSecret(path=s.path, readers=list(s.readers), value=values[key])
        for key, s in sorted(manifest.secrets.items())
    }
