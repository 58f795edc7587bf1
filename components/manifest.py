"""The manifest (`secrets.manifest.yaml`, schema version 1): which `.env` keys are secrets, where each
lives and which services read it. It never holds a value.

Pure and typed; no Pulumi import, so the CLI starts fast.
"""

import hashlib
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from components import naming
from components.envfile import KEY_PATTERN
from components.errors import InputError

SCHEMA_VERSION = 1
DEFAULT_MANIFEST = Path("secrets.manifest.yaml")

SERVICE_PATTERN = naming.SERVICE_PATTERN
PATH_SEGMENT = re.compile(r"[a-z0-9][a-z0-9_.-]*")

# A key is a secret when its last `_`-word is one of these (compared case-insensitively) ...
SECRET_LAST_WORDS = frozenset(
    {"PASSWORD", "PASSWD", "PASS", "PWD", "SECRET", "TOKEN", "CREDENTIAL", "CREDENTIALS", "APIKEY", "KEY"}
)
# ... or it ends in _KEY_ID, or its value looks like one of these well-known credential shapes.
CREDENTIAL_VALUE = re.compile(
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"  # AWS access key id
    r"|\bsk_live_[0-9A-Za-z]"  # Stripe live key
    r"|\bgh[pousr]_[0-9A-Za-z]{20,}"  # GitHub tokens
    r"|\bxox[abpr]-[0-9A-Za-z-]+"  # Slack tokens
    r"|-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"  # PEM private key
)

Decision = Literal["secret", "config"]
# libyaml's safe loader when PyYAML was built with it: ~10x faster on manifests with thousands of secrets.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MANIFEST_HEADER = (
    "# secrets.manifest.yaml: which .env keys are secrets, where each lives, which services read it.\n"
    "# Written by `python -m components derive`; hand edits (path, readers, services) survive re-deriving.\n"
    "# It never holds a value.\n"
)


@dataclass(frozen=True)
class Secret:
    key: str
    path: str
    """Relative to the namespace: `alpaca/api_key_id`."""
    readers: tuple[str, ...]
    """Services allowed to read it."""


@dataclass(frozen=True)
class Manifest:
    services: tuple[str, ...] = ()
    secrets: dict[str, Secret] = field(default_factory=dict)
    config: tuple[str, ...] = ()
    overrides: dict[str, Decision] = field(default_factory=dict)
    """Decisions taken with `derive --secret/--config`, kept across re-derives."""

    def readers_of(self, service: str) -> list[Secret]:
        """The secrets `service` may read, sorted by key."""
        return [s for _, s in sorted(self.secrets.items()) if service in s.readers]


# --- classification and paths ---------------------------------------------------------------------


def words(key: str) -> list[str]:
    return [w for w in key.upper().split("_") if w]


def secret_by_name(key: str) -> bool:
    parts = words(key)
    return bool(parts) and (parts[-1] in SECRET_LAST_WORDS or parts[-2:] == ["KEY", "ID"])


def url_has_password(value: str) -> bool:
    try:
        url = urllib.parse.urlsplit(value.strip())
        return bool(url.scheme and url.netloc and url.password)
    except ValueError:  # e.g. an invalid port: not a URL we can judge by its password
        return False


def looks_like_credential(value: str) -> bool:
    """True when a value is a URL with a password or has a well-known credential shape."""
    return url_has_password(value) or CREDENTIAL_VALUE.search(value) is not None


def classify(key: str, value: str) -> Decision:
    return "secret" if secret_by_name(key) or looks_like_credential(value) else "config"


def default_path(key: str) -> str:
    """`ALPACA_API_KEY_ID` -> `alpaca/api_key_id`: first word is the group, the rest the name."""
    parts = [w.lower() for w in words(key)]
    if not parts:
        raise InputError(f"{key}: cannot derive a path from this key name; set one in the manifest")
    return "/".join([parts[0], "_".join(parts[1:])]) if len(parts) > 1 else parts[0]


def path_problem(path: str) -> str | None:
    """Why `path` is not a valid secret path, or None."""
    if not isinstance(path, str) or not path:
        return "path must be a non-empty string"
    if path.startswith("/"):
        return "path must not start with '/'"
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            return "path has an empty, '.' or '..' segment"
        if not PATH_SEGMENT.fullmatch(segment):
            return "path segments must match [a-z0-9][a-z0-9_.-]*"
    return None


# --- reading and writing --------------------------------------------------------------------------


def load(path: Path | str = DEFAULT_MANIFEST, *, allow_shared_paths: bool = False) -> Manifest:
    """Read and validate a manifest; InputError names the file and the key for any problem.

    `allow_shared_paths` lets `check` report two keys on one path as a finding instead of failing to load.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such manifest (create one with `python -m components derive`)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read manifest ({e.__class__.__name__})") from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise InputError(f"{where}: not valid YAML") from None
    manifest = from_data(data, str(path))
    if not allow_shared_paths:
        for problem in shared_paths(manifest):
            raise InputError(f"{path}: {problem}")
    return manifest


def shared_paths(manifest: Manifest) -> list[str]:
    """One line per path that two or more keys claim (each would overwrite the other's value)."""
    owners: dict[str, list[str]] = {}
    for key, secret in sorted(manifest.secrets.items()):
        owners.setdefault(secret.path, []).append(key)
    return [f"secrets {' and '.join(keys)} share the path {p}" for p, keys in owners.items() if len(keys) > 1]


def from_data(data: Any, source: str = "manifest") -> Manifest:
    """Structural validation of parsed YAML; shared paths are left to `shared_paths`."""

    def fail(msg: str) -> InputError:
        return InputError(f"{source}: {msg}")

    if not isinstance(data, dict):
        raise fail("expected a mapping with version, services, secrets, config")
    unknown = set(data) - {"version", "services", "secrets", "config", "overrides"}
    if unknown:
        raise fail(f"unknown top-level keys: {', '.join(sorted(map(str, unknown)))}")
    if data.get("version") != SCHEMA_VERSION:
        raise fail(f"version must be {SCHEMA_VERSION}")

    services = data.get("services") or []
    if not isinstance(services, list) or not all(isinstance(s, str) for s in services):
        raise fail("services must be a list of names")
    for s in services:
        problem = naming.name_problem("service", s)
        if problem:
            raise fail(problem)
    if len(set(services)) != len(services):
        raise fail("services lists a name twice")

    raw_secrets = data.get("secrets") or {}
    if not isinstance(raw_secrets, dict):
        raise fail("secrets must be a mapping KEY -> {path, readers}")
    secrets: dict[str, Secret] = {}
    for key, entry in raw_secrets.items():
        if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
            raise fail("a secrets key is not a valid env key name")
        entry = entry or {}
        if not isinstance(entry, dict) or set(entry) - {"path", "readers"}:
            raise fail(f"secrets.{key}: expected only path and readers")
        secret_path = entry.get("path", default_path(key))
        problem = path_problem(secret_path)
        if problem:
            raise fail(f"secrets.{key}: {problem}")
        readers = entry.get("readers", list(services))
        if not isinstance(readers, list) or not all(isinstance(r, str) for r in readers):
            raise fail(f"secrets.{key}: readers must be a list of service names")
        strangers = sorted(set(readers) - set(services))
        if strangers:
            raise fail(f"secrets.{key}: readers not in services: {', '.join(strangers)}")
        secrets[key] = Secret(key, secret_path, tuple(dict.fromkeys(readers)))

    config = data.get("config") or []
    if not isinstance(config, list) or not all(isinstance(k, str) and KEY_PATTERN.fullmatch(k) for k in config):
        raise fail("config must be a list of env key names")
    both = sorted(set(config) & set(secrets))
    if both:
        raise fail(f"keys in both secrets and config: {', '.join(both)}")

    overrides = data.get("overrides") or {}
    if not isinstance(overrides, dict) or not all(v in ("secret", "config") for v in overrides.values()):
        raise fail("overrides must map KEY -> secret | config")
    return Manifest(tuple(services), secrets, tuple(dict.fromkeys(config)), dict(overrides))


class _ServiceList(list[str]):
    """Written in flow style (`[a, b]`); every other list is one item per line, for readable diffs."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    _ServiceList, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)
)


def to_data(manifest: Manifest) -> dict[str, Any]:
    """Plain data in a stable order: keys sorted, services as listed."""
    data: dict[str, Any] = {
        "version": SCHEMA_VERSION,
        "services": _ServiceList(manifest.services),
        "secrets": {
            key: {"path": s.path, "readers": _ServiceList(s.readers)} for key, s in sorted(manifest.secrets.items())
        },
        "config": sorted(manifest.config),
    }
    if manifest.overrides:
        data["overrides"] = dict(sorted(manifest.overrides.items()))
    return data


def dump(manifest: Manifest) -> str:
    body = yaml.dump(to_data(manifest), Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1000)
    return MANIFEST_HEADER + body


def sha256_of_file(path: Path | str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
