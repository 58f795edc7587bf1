"""Each manifest secret's value, wrapped in `pulumi.Output.secret` where it is read. The program's only
contact with values; every problem is a `ConfigError` naming config keys and env keys, never a value.

Where a value comes from, first match wins, key by key:
1. `values.KEY`: secret config set by hand (`pulumi config set --secret --path 'values.KEY'`);
2. `migratedValues`: one secret config string holding a JSON map KEY -> value, written by the migration
   in a single `pulumi config set --secret` (so N values cost one CLI call, on stdin);
3. `envFile`: a `.env` on the deploying machine.

Every leaf of `values` must itself be secret. Pulumi marks the whole `values` map secret as soon as one
leaf is, so the program also reads the stack file, where each leaf shows as `{secure: ...}` or as plain
text (`pulumi config set --path 'values.X' plain` without `--secret`).
"""

import json
from pathlib import Path
from typing import Any

import pulumi
import yaml

from components.envfile import read_env
from components.errors import InputError
from components.manifest import Manifest
from components.settings import BULK_KEY, PROJECT, SET_VALUE_HINT, ConfigError, Settings, key, stack_file


def _configured(name: str) -> tuple[dict[str, Any], bool]:
    """(the map stored under `name`, whether Pulumi holds it as a secret)."""
    raw = pulumi.Config(PROJECT).get(name)
    if raw is None or raw.strip() in ("", "{}"):
        return {}, True
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ConfigError(f"{key(name)}: must be a map KEY -> value (set it with `{SET_VALUE_HINT}`)")
    return data, bool(pulumi.runtime.is_config_secret(key(name)))


def plain_leaves(stack_config_file: Path) -> list[str]:
    """The keys of `values` that the stack file stores in plain text (not `{secure: ...}`)."""
    if not stack_config_file.exists():
        return []
    try:
        data = yaml.safe_load(stack_config_file.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        raise ConfigError(f"{stack_config_file}: cannot read the stack's config") from None
    values = (data.get("config") or {}).get(key("values")) if isinstance(data, dict) else None
    if not isinstance(values, dict) or set(values) == {"secure"}:
        return []  # unset, or one secure object as a whole
    return sorted(str(k) for k, v in values.items() if not (isinstance(v, dict) and set(v) == {"secure"}))


def _secret_map(name: str, settings: Settings, manifest: Manifest) -> dict[str, Any]:
    configured, secret = _configured(name)
    if configured and not secret:
        raise ConfigError(f"{key(name)}: is stored in plain text; remove it and set each value with `{SET_VALUE_HINT}`")
    unknown = sorted(set(configured) - set(manifest.secrets))
    if unknown:
        raise ConfigError(f"{key(name)}: keys not in the manifest's secrets: {', '.join(unknown)}")
    not_text = sorted(k for k, v in configured.items() if not isinstance(v, str))
    if not_text:
        raise ConfigError(f"{key(name)}: values must be strings: {', '.join(not_text)}")
    return configured


def load_values(
    settings: Settings, manifest: Manifest, project_dir: Path | None = None
) -> dict[str, pulumi.Output[str]]:
    """Each manifest secret's value, secret from here on."""
    plain = plain_leaves(stack_file(project_dir or Path.cwd(), settings.stack))
    if plain:
        raise ConfigError(
            f"{key('values')}: stored in plain text: {', '.join(plain)}; "
            f"set each again with `{SET_VALUE_HINT}` (the --secret flag encrypts it)"
        )
    by_hand = _secret_map("values", settings, manifest)
    migrated = _secret_map(BULK_KEY, settings, manifest)

    from_file: dict[str, str] = {}
    if settings.env_file is not None:
        try:
            from_file = {k: e.value for k, e in read_env(settings.env_file).items()}
        except InputError as e:
            raise ConfigError(str(e)) from None

    values: dict[str, pulumi.Output[str]] = {}
    missing: list[str] = []
    for name in sorted(manifest.secrets):
        raw = by_hand.get(name, migrated.get(name, from_file.get(name)))
        if not isinstance(raw, str) or raw == "":
            missing.append(name)
            continue
        values[name] = pulumi.Output.secret(raw)
    if missing:
        env_file = f", or add it to {settings.env_file}" if settings.env_file else ""
        raise ConfigError(
            f"no value for manifest secrets: {', '.join(missing)} "
            f"(set each with `{SET_VALUE_HINT}`{env_file}; an empty value counts as missing)"
        )
    return values
