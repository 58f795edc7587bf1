"""The manifest commands: `derive` (.env -> manifest), `check` (do they agree?) and `template`
(.env -> .env.template). Output names keys, paths and files, never a value.
"""

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from components import naming
from components.envfile import EnvEntry, read_env
from components.errors import EXIT_CHECK_FAILED, EXIT_OK, InputError
from components.files import locked, refuse_input_as_output, write_atomic
from components.manifest import (
    DEFAULT_MANIFEST,
    Decision,
    Manifest,
    Secret,
    classify,
    default_path,
    dump,
    load,
    looks_like_credential,
    shared_paths,
)
from components.text import plural


@dataclass
class Derived:
    manifest: Manifest
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    """Keys in the old manifest but no longer in the .env (dropped only with prune)."""
    changed: list[str] = field(default_factory=list)
    """`KEY (config -> secret)` for keys whose decision changed."""
    added_services: list[str] = field(default_factory=list)


def derive(
    env: dict[str, EnvEntry],
    existing: Manifest | None = None,
    *,
    services: list[str] | None = None,
    force_secret: list[str] | None = None,
    force_config: list[str] | None = None,
    prune: bool = False,
    source: str = "manifest",
) -> Derived:
    """Merge a .env into a manifest. Everything already decided in `existing` wins over the heuristics:
    paths, readers, services and recorded --secret/--config decisions. New flags win over old decisions.
    """
    old = existing or Manifest()
    force_secret, force_config = force_secret or [], force_config or []
    both = sorted(set(force_secret) & set(force_config))
    if both:
        raise InputError(f"--secret and --config both name {', '.join(both)}")
    for key in [*force_secret, *force_config]:
        if key not in env:
            raise InputError(f"--secret/--config {key}: no such key in the .env")
    for name in services or []:
        problem = naming.name_problem("service", name)
        if problem:
            raise InputError(f"--service: {problem}")

    all_services = tuple(dict.fromkeys([*old.services, *(services or [])]))
    overrides: dict[str, Decision] = dict(old.overrides)
    overrides.update(dict.fromkeys(force_secret, "secret"))
    overrides.update(dict.fromkeys(force_config, "config"))

    def old_decision(key: str) -> Decision | None:
        if key in old.secrets:
            return "secret"
        return "config" if key in old.config else None

    def readers_for(key: str) -> tuple[str, ...]:
        # A secret read by every service keeps following the service list; a hand-picked list is kept.
        kept = old.secrets.get(key)
        if kept is None or set(kept.readers) == set(old.services):
            return all_services
        return kept.readers

    result = Derived(Manifest())
    secrets: dict[str, Secret] = {}
    config: list[str] = []
    for key in sorted(env):
        before = old_decision(key)
        decision = overrides.get(key) or before or classify(key, env[key].value)
        if before is None:
            result.added.append(key)
        elif before != decision:
            result.changed.append(f"{key} ({before} -> {decision})")
        if decision == "secret":
            kept = old.secrets.get(key)
            secrets[key] = Secret(key, kept.path if kept else default_path(key), readers_for(key))
        else:
            config.append(key)

    result.removed = sorted(k for k in [*old.secrets, *old.config] if k not in env)
    if not prune:  # a key that vanished from the .env is reported, not silently dropped
        secrets.update({k: old.secrets[k] for k in result.removed if k in old.secrets})
        config.extend(k for k in result.removed if k in old.config)
    live_keys = set(secrets) | set(config)
    overrides = {k: v for k, v in overrides.items() if k in live_keys}

    result.manifest = Manifest(all_services, secrets, tuple(sorted(config)), overrides)
    result.added_services = [s for s in all_services if s not in old.services]
    conflicts = shared_paths(result.manifest)
    if conflicts:
        raise InputError(f"{source}: {conflicts[0]}; give one of them another path in the manifest")
    return result


def _credential_message(env_file: Path, key: str, entry: EnvEntry) -> str:
    return (
        f"{env_file}:{entry.line}: {key}: config value looks like a credential "
        f"(make it a secret: derive --secret {key})"
    )


def credential_like_config(env_file: Path, env: dict[str, EnvEntry], manifest: Manifest) -> list[str]:
    """Config keys whose value looks like a credential: a decision that would leave a secret in plain text."""
    return [
        _credential_message(env_file, key, entry)
        for key, entry in env.items()
        if key in manifest.config and looks_like_credential(entry.value)
    ]


def problems(env_file: Path, env: dict[str, EnvEntry], manifest: Manifest) -> list[str]:
    """Everything on which the .env and the manifest disagree, one line each (no values)."""
    found: list[str] = []
    for key, secret in sorted(manifest.secrets.items()):
        entry = env.get(key)
        if entry is None:
            found.append(f"{env_file}: {key}: manifest secret ({secret.path}) is missing from the .env")
        elif not entry.value:
            found.append(f"{env_file}:{entry.line}: {key}: manifest secret ({secret.path}) is empty")
    for key, entry in env.items():
        if key not in manifest.secrets and key not in manifest.config:
            found.append(f"{env_file}:{entry.line}: {key}: in neither secrets nor config (run derive)")
        elif key in manifest.config and looks_like_credential(entry.value):
            found.append(_credential_message(env_file, key, entry))
    found.extend(shared_paths(manifest))
    return found


# --- .env.template ------------------------------------------------------------------------------------

_BARE_VALUE = re.compile(r"[A-Za-z0-9_./:@,+=%-]*")
TEMPLATE_HEADER = """\
# .env.template: generated by `python -m components template`. Secrets are commented out: they
# live in the secrets backend (see secrets.manifest.yaml). Copy to .env and fill them in only for
# local development (SECRET_BACKEND=env).
"""


def env_line(key: str, value: str) -> str:
    """`KEY=value` that python-dotenv reads back as exactly `value`."""
    if _BARE_VALUE.fullmatch(value):
        return f"{key}={value}"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'{key}="{escaped}"'


def template(env: dict[str, EnvEntry], manifest: Manifest | None) -> tuple[str, int]:
    """The runbook's Phase 1 template (text, number of secrets): secrets as `# KEY=<YOUR_KEY>` grouped
    by path group, config kept.

    A key is commented out when the manifest (or, without one, the heuristics) calls it a secret, or
    when its value looks like a credential whatever the manifest says: the template is meant to be shared.
    """

    def is_secret(key: str) -> bool:
        if looks_like_credential(env[key].value):
            return True
        if manifest is not None and (key in manifest.secrets or key in manifest.config):
            return key in manifest.secrets
        return classify(key, env[key].value) == "secret"

    groups: dict[str, list[str]] = {}
    config: list[str] = []
    for key in env:
        if is_secret(key):
            secret = manifest.secrets.get(key) if manifest else None
            group = (secret.path if secret else default_path(key)).split("/")[0]
            groups.setdefault(group, []).append(key)
        else:
            config.append(key)

    lines = [TEMPLATE_HEADER]
    for group, keys in groups.items():
        lines.append(f"# {group} credentials (SECRETS - populate via SecretManager)")
        lines.extend(f"# {key}=<YOUR_{key}>" for key in keys)
        lines.append("")
    lines.append("# Configuration (ENV VARS - keep in .env)")
    lines.extend(env_line(key, env[key].value) for key in config)
    return "\n".join(lines) + "\n", len(env) - len(config)


# --- command handlers -----------------------------------------------------------------------------------


def _load_if_present(path: Path) -> Manifest | None:
    return load(path) if path.exists() else None


def no_services_warning(args: argparse.Namespace, manifest: Manifest) -> str | None:
    """A manifest with secrets but no services passes `check`, yet no service can read anything: say so,
    and how to add them. A warning, not an error: an empty list is valid while services are being chosen."""
    if manifest.services or not manifest.secrets:
        return None
    manifest_flag = "" if args.manifest == DEFAULT_MANIFEST else f" --manifest {args.manifest}"
    return (
        f"{args.manifest} lists no services, so no service can read its {plural(len(manifest.secrets), 'secret')} "
        "(no service read policy is created). Add each service that reads them: "
        f"python -m components derive --env-file {args.env_file}{manifest_flag} --service NAME "
        "(repeat --service), or list them under `services:`"
    )


def run_derive(args: argparse.Namespace) -> int:
    env = read_env(args.env_file)
    refuse_input_as_output(args.manifest, "manifest", {".env file": args.env_file})
    with locked(args.manifest):  # read, merge and write as one step: a concurrent derive waits its turn
        result = derive(
            env,
            _load_if_present(args.manifest),
            services=args.service,
            force_secret=args.secret,
            force_config=args.config,
            prune=args.prune,
            source=str(args.manifest),
        )
        text = dump(result.manifest)
        unchanged = args.manifest.exists() and args.manifest.read_text(encoding="utf-8") == text
        if not unchanged:
            write_atomic(args.manifest, text)

    m = result.manifest
    state = "unchanged" if unchanged else "wrote"
    print(f"{state} {args.manifest}: {plural(len(m.secrets), 'secret')}, {plural(len(m.config), 'config key')}")
    if result.added:
        print(f"  added:   {', '.join(result.added)}")
    if result.added_services:
        print(f"  added services: {', '.join(result.added_services)}")
    if result.changed:
        print(f"  changed: {', '.join(result.changed)}")
    if result.removed:
        fate = "dropped (--prune)" if args.prune else "kept; not in the .env any more (drop with --prune)"
        print(f"  removed: {', '.join(result.removed)} ({fate})")
    warnings = [no_services_warning(args, m), *credential_like_config(args.env_file, env, m)]
    for line in filter(None, warnings):
        print(f"warning: {line}", file=sys.stderr)
    return EXIT_OK


def run_check(args: argparse.Namespace) -> int:
    env = read_env(args.env_file)
    manifest = load(args.manifest, allow_shared_paths=True)
    found = problems(args.env_file, env, manifest)
    warning = no_services_warning(args, manifest)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    if not found:
        print(f"ok: {args.env_file} and {args.manifest} agree")
        return EXIT_OK
    print(f"{plural(len(found), 'problem')} between {args.env_file} and {args.manifest}:")
    for line in found:
        print(f"  {line}")
    return EXIT_CHECK_FAILED


def run_template(args: argparse.Namespace) -> int:
    env = read_env(args.env_file)
    inputs = {".env file": args.env_file, "manifest": args.manifest}
    refuse_input_as_output(args.out, "output", inputs)
    text, secrets = template(env, _load_if_present(args.manifest))
    write_atomic(args.out, text)
    kept = len(env) - secrets
    print(f"wrote {args.out}: {plural(secrets, 'secret')} commented out, {plural(kept, 'config key')} kept")
    return EXIT_OK
