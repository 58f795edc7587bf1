"""The stack's config, read and validated in one place (DESIGN.md "Stack config"). Config only: no value
of a secret passes through here (`components.values` resolves those).

`parse_settings(raw, stack)` is pure: it turns the stack's config (short keys, as strings, the way the
CLI hands them to a program) into a frozen `Settings`, or raises `ConfigError` naming the config key,
never a value. `load_settings()` feeds it from `pulumi.Config` inside a program; `stack_file_config()`
feeds it from `Pulumi.yaml` + `Pulumi.<stack>.yaml` for the commands that run outside one (the
migration, the demo), so both read the same defaults.
"""

import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml

from components import manifest as manifest_mod
from components import naming
from components.errors import InputError
from components.layout import Backend, Layout, layout
from components.manifest import Manifest, path_problem

PROJECT = "secrets-migration"
BACKENDS = ("vault", "aws")
# AWS role names: https://docs.aws.amazon.com/IAM/latest/APIReference/API_Role.html
ROLE_NAME_PATTERN = re.compile(r"[\w+=,.@-]{1,64}")
KMS_KEY_ARN_PATTERN = re.compile(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+")
PROD_NAMESPACE = "prod"
SET_VALUE_HINT = "pulumi config set --secret --path 'values.KEY'"
VALUES_KEY = "values"
"""Secret map KEY -> value, one secret leaf per key, set by hand (components.values reads it)."""
BULK_KEY = "migratedValues"
"""One secret JSON map KEY -> value, written by the migration in a single CLI call."""
DEFAULT_TOKEN_TTL = 600
DEFAULT_TOKEN_MAX_TTL = 1800


class ConfigError(InputError):
    """Bad stack config. The program turns it into a `pulumi.RunError`: one line, no traceback."""


def key(name: str) -> str:
    """The full config key: `secrets-migration:<name>`."""
    return f"{PROJECT}:{name}"


@dataclass(frozen=True)
class AppRoleOptions:
    """The per-service AppRole login (Vault): role names and policies come from the layout."""

    mount: str = naming.DEFAULT_APPROLE_MOUNT
    manage_mount: bool = False
    token_ttl: int = DEFAULT_TOKEN_TTL
    token_max_ttl: int = DEFAULT_TOKEN_MAX_TTL
    secret_id_ttl: int = 0
    """0: a secret_id does not expire by time."""
    token_bound_cidrs: tuple[str, ...] = ()
    secret_id_bound_cidrs: tuple[str, ...] = ()


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
    vault_approle: AppRoleOptions | None
    """None when `vaultAppRole` is off (or the backend is AWS)."""
    aws_kms_key_id: str | None
    aws_recovery_window_in_days: int
    aws_service_roles: dict[str, str] = field(default_factory=dict)
    aws_check_recovery_window: bool = True
    """Ask AWS, before anything is created, whether a manifest secret is scheduled for deletion."""

    @property
    def is_prod(self) -> bool:
        return self.namespace == PROD_NAMESPACE


class _Reader:
    """Typed access to the raw config strings, each problem a ConfigError naming the key."""

    def __init__(self, raw: Mapping[str, str | None]) -> None:
        self.raw = raw

    def text(self, name: str, default: str = "") -> str:
        value = self.raw.get(name)
        return default if value is None or value == "" else value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.text(name).lower()
        if value == "":
            return default
        if value not in ("true", "false"):
            raise ConfigError(f"{key(name)}: must be true or false")
        return value == "true"

    def integer(self, name: str, default: int, problem: Callable[[int], str | None]) -> int:
        value = self.text(name)
        if value == "":
            return default
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(f"{key(name)}: must be a whole number") from None
        message = problem(number)
        if message:
            raise ConfigError(f"{key(name)}: {message}")
        return number

    def json(self, name: str, kind: type, hint: str) -> Any:
        """A map- or list-valued key; unset, empty, `{}` and `[]` (the Pulumi.yaml defaults) are empty."""
        value = self.text(name).strip()
        if value == "":
            return kind()
        try:
            data = json.loads(value)
        except ValueError:
            data = None
        if not isinstance(data, kind):
            raise ConfigError(f"{key(name)}: must be a {kind.__name__ if kind is list else 'map'} ({hint})")
        return data


def _cidrs(reader: _Reader, name: str) -> tuple[str, ...]:
    items = reader.json(name, list, f"set it with --path '{name}[0]' CIDR")
    for index, item in enumerate(items):
        try:
            ipaddress.ip_network(str(item), strict=False)
        except ValueError:
            raise ConfigError(f"{key(name)}[{index}]: not a CIDR block (e.g. 10.0.0.0/16)") from None
    return tuple(str(i) for i in items)


def _approle(reader: _Reader, backend: str) -> AppRoleOptions | None:
    if backend != "vault" or not reader.boolean("vaultAppRole", True):
        return None
    mount = reader.text("vaultAppRoleMount", naming.DEFAULT_APPROLE_MOUNT)
    problem = path_problem(mount)
    if problem:
        raise ConfigError(f"{key('vaultAppRoleMount')}: {problem.replace('path', 'mount', 1)}")

    def positive(n: int) -> str | None:
        return None if n > 0 else "must be a positive number of seconds"

    def not_negative(n: int) -> str | None:
        return None if n >= 0 else "must be 0 (no expiry) or a positive number of seconds"

    token_ttl = reader.integer("vaultAppRoleTokenTtl", DEFAULT_TOKEN_TTL, positive)
    token_max_ttl = reader.integer("vaultAppRoleTokenMaxTtl", DEFAULT_TOKEN_MAX_TTL, positive)
    if token_max_ttl < token_ttl:
        raise ConfigError(f"{key('vaultAppRoleTokenMaxTtl')}: must not be shorter than vaultAppRoleTokenTtl")
    return AppRoleOptions(
        mount=mount,
        manage_mount=reader.boolean("vaultManageAppRoleMount", False),
        token_ttl=token_ttl,
        token_max_ttl=token_max_ttl,
        secret_id_ttl=reader.integer("vaultAppRoleSecretIdTtl", 0, not_negative),
        token_bound_cidrs=_cidrs(reader, "vaultAppRoleTokenBoundCidrs"),
        secret_id_bound_cidrs=_cidrs(reader, "vaultAppRoleSecretIdBoundCidrs"),
    )


def parse_settings(raw: Mapping[str, str | None], stack: str) -> Settings:
    """Validate the stack's config (short keys -> the CLI's strings); ConfigError on the first problem."""
    reader = _Reader(raw)
    backend = reader.text("backend")
    if not backend:
        raise ConfigError(f"{key('backend')}: required; set it with `pulumi config set backend vault|aws`")
    if backend not in BACKENDS:
        raise ConfigError(f"{key('backend')}: unknown backend; expected one of: {', '.join(BACKENDS)}")

    namespace = reader.text("namespace", stack)
    problem = naming.name_problem("namespace", namespace)
    if problem:
        source = "" if reader.text("namespace") else " (the stack name; set secrets-migration:namespace)"
        raise ConfigError(f"{key('namespace')}: {problem}{source}")
    if namespace != stack and not reader.boolean("allowNamespaceOverride", False):
        raise ConfigError(
            f"{key('namespace')}: differs from the stack name {stack!r}; "
            f"set {key('allowNamespaceOverride')} to true if that is intended"
        )

    protect_raw = reader.text("protect", "auto").lower()
    if protect_raw not in ("auto", "true", "false"):
        raise ConfigError(f"{key('protect')}: must be true, false or auto")
    protect = namespace == PROD_NAMESPACE if protect_raw == "auto" else protect_raw == "true"

    vault_mount = reader.text("vaultMount", naming.DEFAULT_MOUNT)
    problem = path_problem(vault_mount)
    if problem:
        raise ConfigError(f"{key('vaultMount')}: {problem.replace('path', 'mount', 1)}")

    def window_problem(days: int) -> str | None:
        if not (days == 0 or 7 <= days <= 30):
            return "must be 0 or between 7 and 30"
        if days == 0 and namespace == PROD_NAMESPACE:
            return "0 (delete without recovery) is not allowed in prod"
        return None

    window = reader.integer("awsRecoveryWindowInDays", 30, window_problem)

    kms_key = reader.text("awsKmsKeyId") or None
    if kms_key is not None and not KMS_KEY_ARN_PATTERN.fullmatch(kms_key):
        # The read policies must name the key itself for kms:Decrypt; an alias or bare id cannot be.
        raise ConfigError(f"{key('awsKmsKeyId')}: must be a key ARN (arn:aws:kms:<region>:<account>:key/<id>)")

    roles = reader.json("awsServiceRoles", dict, "set it with --path 'awsServiceRoles.SERVICE'")
    for service, role in roles.items():
        if naming.name_problem("service", service):
            raise ConfigError(f"{key('awsServiceRoles')}: {naming.name_problem('service', service)}")
        if not isinstance(role, str) or not ROLE_NAME_PATTERN.fullmatch(role):
            raise ConfigError(f"{key('awsServiceRoles')}.{service}: must be an IAM role name")

    env_file = reader.text("envFile") or None
    return Settings(
        stack=stack,
        backend=cast(Backend, backend),
        namespace=namespace,
        manifest_path=Path(reader.text("manifest", str(manifest_mod.DEFAULT_MANIFEST))),
        env_file=Path(env_file) if env_file else None,
        protect=protect,
        vault_mount=vault_mount,
        vault_manage_mount=reader.boolean("vaultManageMount", False),
        vault_approle=_approle(reader, backend),
        aws_kms_key_id=kms_key,
        aws_recovery_window_in_days=window,
        aws_service_roles={str(k): str(v) for k, v in roles.items()},
        aws_check_recovery_window=reader.boolean("awsCheckRecoveryWindow", True),
    )


CONFIG_KEYS = (
    "backend",
    "namespace",
    "allowNamespaceOverride",
    "manifest",
    "envFile",
    "protect",
    "vaultMount",
    "vaultManageMount",
    "vaultAppRole",
    "vaultAppRoleMount",
    "vaultManageAppRoleMount",
    "vaultAppRoleTokenTtl",
    "vaultAppRoleTokenMaxTtl",
    "vaultAppRoleSecretIdTtl",
    "vaultAppRoleTokenBoundCidrs",
    "vaultAppRoleSecretIdBoundCidrs",
    "awsKmsKeyId",
    "awsRecoveryWindowInDays",
    "awsServiceRoles",
    "awsCheckRecoveryWindow",
)
"""Every key `parse_settings` reads (`values` is read by components.values)."""


def load_settings() -> Settings:
    """The settings of the running Pulumi program."""
    import pulumi

    config = pulumi.Config(PROJECT)
    return parse_settings({name: config.get(name) for name in CONFIG_KEYS}, pulumi.get_stack())


def check_manifest(settings: Settings, manifest: Manifest) -> None:
    """Config that names manifest services must name real ones."""
    strangers = sorted(set(settings.aws_service_roles) - set(manifest.services))
    if strangers:
        raise ConfigError(f"{key('awsServiceRoles')}: services not in the manifest: {', '.join(strangers)}")


def load_manifest(settings: Settings) -> Manifest:
    """The manifest the stack names, checked against the rest of the config."""
    try:
        manifest = manifest_mod.load(settings.manifest_path)
    except InputError as e:
        raise ConfigError(str(e)) from None
    check_manifest(settings, manifest)
    return manifest


def stack_layout(settings: Settings, manifest: Manifest) -> Layout:
    """The stack's layout; a ConfigError when the backend would refuse it half-way through `pulumi up`, so
    the program (and the migration, before it writes anything) stops before anything is created."""
    from components.policies import aws_limit_problems, vault_limit_problems

    plan = layout(manifest, settings.backend, settings.namespace, settings.vault_mount)
    if settings.backend == "aws":
        problems = aws_limit_problems(plan, settings.aws_service_roles, settings.aws_kms_key_id)
    else:
        problems = vault_limit_problems(plan)
    if problems:
        raise ConfigError(f"this stack cannot fit {plan.store}'s limits: {problems[0]}")
    return plan


def _as_config_string(value: object) -> str:
    """How the CLI hands a config value to a program: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def stack_file(project_dir: Path, stack: str) -> Path:
    return project_dir / f"Pulumi.{stack}.yaml"


def stack_file_config(project_dir: Path, stack: str) -> dict[str, str]:
    """`Pulumi.yaml`'s defaults overlaid with `Pulumi.<stack>.yaml`'s `secrets-migration:` keys (short
    names), as the CLI would hand them to the program; `secure:` values are left out (they are never
    settings). A stack without a file yet gets the defaults."""

    def read(path: Path) -> dict[str, Any]:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            raise ConfigError(f"{path}: cannot read the stack's config") from None
        return data if isinstance(data, dict) else {}

    raw: dict[str, str] = {}
    declared = read(project_dir / "Pulumi.yaml").get("config") or {}
    for name, decl in declared.items():
        if name in CONFIG_KEYS and isinstance(decl, dict) and "default" in decl:
            raw[name] = _as_config_string(decl["default"])
    path = stack_file(project_dir, stack)
    if path.exists():
        for full, value in (read(path).get("config") or {}).items():
            name = full.removeprefix(f"{PROJECT}:")
            if name in CONFIG_KEYS and full != name:  # never `values`: it holds the secrets
                raw[name] = _as_config_string(value)
    return raw
