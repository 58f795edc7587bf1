"""The manifest (`secrets.manifest.yaml`, schema version 1): which `.env` keys are secrets, where each
lives and which services read it. It never holds a value.

Pure and typed; no Pulumi import, so the CLI starts fast.
"""

import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from components import naming, strict_yaml
from components.envfile import CREDENTIAL_VALUE, KEY_PATTERN
from components.errors import InputError
from components.strict_yaml import item_line, key_line

SCHEMA_VERSION = 1
DEFAULT_MANIFEST = Path("secrets.manifest.yaml")

SERVICE_PATTERN = naming.SERVICE_PATTERN
PATH_SEGMENT = re.compile(r"[a-z0-9][a-z0-9_.-]*")

# A key is a secret when its last `_`-word is one of these (compared case-insensitively) ...
SECRET_LAST_WORDS = frozenset(
    {"PASSWORD", "PASSWD", "PASS", "PWD", "SECRET", "TOKEN", "CREDENTIAL", "CREDENTIALS", "APIKEY", "KEY"}
)
# ... or it ends in _KEY_ID, or its value has a well-known credential shape (envfile.CREDENTIAL_VALUE).

Decision = Literal["secret", "config"]
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
    """Read and validate a manifest; every problem is an InputError naming `file:line` (and the key).

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
        data = strict_yaml.load(text)
    except strict_yaml.DuplicateKeyError as e:
        # A key that is not an env key name (or a field name) may be a pasted value: not echoed.
        name = f" {e.key}" if isinstance(e.key, str) and KEY_PATTERN.fullmatch(e.key) else ""
        raise InputError(f"{path}:{e.line}: duplicate key{name} (first on line {e.first})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise InputError(f"{where}: not valid YAML") from None
    manifest = from_data(data, str(path), line=1)
    if not allow_shared_paths:
        secrets = data.get("secrets")
        for shared_path, keys in path_owners(manifest):
            lines = [key_line(secrets, key, None) for key in keys]
            known = sorted(line for line in lines if line is not None)
            where = f"{path}:{known[-1]}" if known else str(path)
            on_lines = f" (lines {' and '.join(map(str, known))})" if known else ""
            raise InputError(f"{where}: {_shared_path_message(shared_path, keys)}{on_lines}")
    return manifest


def path_owners(manifest: Manifest) -> list[tuple[str, list[str]]]:
    """(path, keys) for every path that two or more keys claim (each would overwrite the other's value)."""
    owners: dict[str, list[str]] = {}
    for key, secret in sorted(manifest.secrets.items()):
        owners.setdefault(secret.path, []).append(key)
    return [(p, keys) for p, keys in owners.items() if len(keys) > 1]


def _shared_path_message(path: str, keys: list[str]) -> str:
    return f"secrets {' and '.join(keys)} share the path {path}"


def shared_paths(manifest: Manifest) -> list[str]:
    """One line per path that two or more keys claim."""
    return [_shared_path_message(p, keys) for p, keys in path_owners(manifest)]


TOP_LEVEL_KEYS = ("version", "services", "secrets", "config", "overrides")


def from_data(data: Any, source: str = "manifest", *, line: int | None = None) -> Manifest:
    """Structural validation of parsed YAML; shared paths are left to `path_owners`.

    Data from `strict_yaml` knows its lines, so every error names `source:line`; `line` is where the
    document starts (for a file that is not a mapping at all). Plain data gives errors naming `source`.
    """

    def fail(msg: str, where: int | None) -> InputError:
        return InputError(f"{source}:{where}: {msg}" if where else f"{source}: {msg}")

    def twice(name: str, first: int | None) -> str:
        return f"{name} twice (first on line {first})" if first else f"{name} twice"

    doc = getattr(data, "line", None) or line
    if not isinstance(data, dict):
        raise fail("expected a mapping with version, services, secrets, config", doc)

    def at(key: str) -> int | None:
        return key_line(data, key, doc)

    unknown = [k for k in data if k not in TOP_LEVEL_KEYS]
    if unknown:
        first = min(unknown, key=lambda k: key_line(data, k, 0) or 0)
        raise fail(f"unknown top-level keys: {', '.join(sorted(map(str, unknown)))}", key_line(data, first, doc))
    version = data.get("version")
    if type(version) is not int or version != SCHEMA_VERSION:
        raise fail(f"version must be {SCHEMA_VERSION}", at("version"))

    services = data.get("services") or []
    if not isinstance(services, list):
        raise fail("services must be a list of names", at("services"))
    service_lines: dict[str, int | None] = {}
    for index, service in enumerate(services):
        where = item_line(services, index, at("services"))
        if not isinstance(service, str):
            raise fail("services must be a list of names", where)
        problem = naming.name_problem("service", service)
        if problem:
            raise fail(problem, where)
        if service in service_lines:
            raise fail(f"services lists {twice(service, service_lines[service])}", where)
        service_lines[service] = where

    raw_secrets = data.get("secrets") or {}
    if not isinstance(raw_secrets, dict):
        raise fail("secrets must be a mapping KEY -> {path, readers}", at("secrets"))
    secrets: dict[str, Secret] = {}
    for key, raw_entry in raw_secrets.items():
        where = key_line(raw_secrets, key, at("secrets"))
        if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
            raise fail("a secrets key is not a valid env key name", where)
        entry = raw_entry or {}
        if not isinstance(entry, dict) or set(entry) - {"path", "readers"}:
            raise fail(f"secrets.{key}: expected only path and readers", where)
        if "path" in entry:
            secret_path = entry["path"]
        elif words(key):
            secret_path = default_path(key)
        else:
            raise fail(f"secrets.{key}: cannot derive a path from this key name; set its path", where)
        problem = path_problem(secret_path)
        if problem:
            raise fail(f"secrets.{key}: {problem}", key_line(entry, "path", where))
        readers = entry.get("readers", list(services))
        readers_where = key_line(entry, "readers", where)
        if not isinstance(readers, list) or not all(isinstance(r, str) for r in readers):
            raise fail(f"secrets.{key}: readers must be a list of service names", readers_where)
        strangers = sorted(set(readers) - set(services))
        if strangers:
            raise fail(f"secrets.{key}: readers not in services: {', '.join(strangers)}", readers_where)
        secrets[key] = Secret(key, secret_path, tuple(dict.fromkeys(readers)))

    config = data.get("config") or []
    if not isinstance(config, list):
        raise fail("config must be a list of env key names", at("config"))
    for index, config_key in enumerate(config):
        where = item_line(config, index, at("config"))
        if not isinstance(config_key, str) or not KEY_PATTERN.fullmatch(config_key):
            raise fail("config must be a list of env key names", where)
        if config_key in secrets:
            raise fail(f"keys in both secrets and config: {config_key}", where)

    overrides = data.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise fail("overrides must map KEY -> secret | config", at("overrides"))
    for override_key, decision in overrides.items():
        if not isinstance(override_key, str) or decision not in ("secret", "config"):
            raise fail("overrides must map KEY -> secret | config", key_line(overrides, override_key, at("overrides")))
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
    import hashlib  # only the program needs it; the CLI's start-up does not

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
