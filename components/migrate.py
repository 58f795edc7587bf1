"""The runbook's Phase 3 migration: a `.env`'s secrets into the stack named after the namespace, then
`pulumi up` and `verify`. `scripts/migrate_secrets.py` is its entry point; `--help` there documents it.

1. Check: the `.env` is read strictly and must agree with the manifest (as `python -m components check`).
2. Plan: the stack's settings are what `pulumi up` will see — `Pulumi.yaml`'s defaults and the stack file
   (`settings.stack_file_config`) with what the migration sets on top, validated by `settings.parse_settings`
   — and what it declares is `components.layout`'s layout of them. `--dry-run` prints that plan and stops:
   no Pulumi CLI, nothing written.
3. Apply, in five Pulumi CLI calls whatever the number of secrets (bench/migrate_cli_calls.py counts them):
   `stack select --create`; `config set-all --plaintext` backend, namespace, manifest; `config set --secret
   secrets-migration:migratedValues` with every value in one JSON map on its standard input; `config rm-all`
   of what would override it; `up`. Then `verify` in-process (every value compared with the .env by SHA-256).

Where values go: only into the standard input of `pulumi config set --secret` (a pipe: never a command line,
which every local user can read in `ps` / `/proc/<pid>/cmdline`; never a child's environment; never a file).
`pulumi config set KEY` reads its value from stdin when stdin is not a terminal and strips one trailing
newline (pulumi/pulumi pkg/cmd/pulumi/config/config.go, `configSetCmd.Run`); a JSON document never ends in
one, so the value stored is exactly the map. The program reads the map back (`components.values`) with the
precedence `values.KEY` > `migratedValues` > `envFile`, so `pulumi config set --secret --path 'values.KEY'`
still edits one value by hand afterwards.

A Vault token is taken only from `--vault-token-file` or `VAULT_TOKEN` and handed to `pulumi up` and `verify`
through their environment (with `VAULT_ADDR`), never stored, never on a command line.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from components import naming
from components.derive import problems
from components.envfile import read_env
from components.environ import environment
from components.errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_OK, InputError
from components.layout import BACKEND_NAMES, Backend, Layout
from components.manifest import DEFAULT_MANIFEST, Manifest, load
from components.settings import (
    BULK_KEY,
    ConfigError,
    Settings,
    check_manifest,
    key,
    parse_settings,
    stack_file,
    stack_file_config,
    stack_layout,
)
from components.text import plural

PROJECT_DIR = Path(__file__).resolve().parent.parent
"""The Pulumi project (Pulumi.yaml): every CLI call runs here."""
PULUMI = "pulumi"
NO_CLI = "the Pulumi CLI is not installed (https://www.pulumi.com/docs/install/); --dry-run works without it"
TOKEN_REFUSED = (
    "--vault-token is refused: a token on the command line shows in `ps` and shell history; "
    "use --vault-token-file FILE or the VAULT_TOKEN environment variable"
)

EXAMPLES = """\
examples:
  # check and list what would be created (no Pulumi CLI needed, nothing written)
  python scripts/migrate_secrets.py --env-file .env --backend vault --namespace staging --dry-run

  # migrate: stack config + pulumi up + verify (token from a file, or export VAULT_TOKEN)
  python scripts/migrate_secrets.py --env-file .env --backend vault --namespace staging \\
      --vault-addr http://127.0.0.1:8200 --vault-token-file ~/.vault-token-staging

  # AWS Secrets Manager: a new stack (or one whose Pulumi.<ns>.yaml says backend aws);
  # credentials and region from the usual AWS environment
  python scripts/migrate_secrets.py --env-file .env --backend aws --namespace qa

exit codes: 0 migrated (or dry run clean), 1 check/up/verify failed, 2 bad input or cannot run.
Values are never printed and never passed on a command line. Rollback: docs/runbook.md.
"""


class CliMissing(InputError):
    """The Pulumi CLI is needed and absent (exit 2)."""


@dataclass(frozen=True)
class Options:
    """What the migration is asked to do (the script's flags)."""

    env_file: Path
    backend: Backend
    namespace: str
    manifest: Path = DEFAULT_MANIFEST
    vault_addr: str | None = None
    """Sets VAULT_ADDR for `pulumi up` and verify (default: VAULT_ADDR as it is)."""
    vault_token_file: Path | None = None
    dry_run: bool = False
    project_dir: Path = PROJECT_DIR


@dataclass(frozen=True)
class Plan:
    """What the migration sets in the stack and what the stack then declares. Holds no value."""

    options: Options
    settings: Settings
    """The stack's settings as `pulumi up` will read them, the migration's own keys included."""
    layout: Layout
    plain_config: dict[str, str]
    """The plain settings the migration writes (short key -> value): backend, namespace, manifest."""

    @property
    def stack(self) -> str:
        return self.settings.stack


def build_parser() -> argparse.ArgumentParser:
    from components.cli import Parser  # errors that name flags, never values

    parser = Parser(
        prog="scripts/migrate_secrets.py",
        description="Migrate the secrets of a .env into Vault KV v2 or AWS Secrets Manager through this "
        "project's Pulumi stack (named after the namespace), then verify them. The manifest decides which "
        "keys are secrets, their paths and their readers (python -m components derive).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--env-file", type=Path, required=True, metavar="FILE", help="the .env holding the values (never printed)"
    )
    parser.add_argument("--backend", choices=sorted(BACKEND_NAMES), required=True, help="where the secrets go")
    parser.add_argument(
        "--namespace", required=True, metavar="NS", help="environment prefix and Pulumi stack name, e.g. staging"
    )
    parser.add_argument(
        "--manifest", type=Path, default=DEFAULT_MANIFEST, metavar="FILE", help="manifest file (default: %(default)s)"
    )
    parser.add_argument(
        "--vault-addr",
        metavar="URL",
        help="Vault address for pulumi up and verify, as VAULT_ADDR (default: $VAULT_ADDR); not stored in the stack",
    )
    parser.add_argument(
        "--vault-token-file",
        type=Path,
        metavar="FILE",
        help="file holding the Vault token (default: $VAULT_TOKEN); a token is never taken on the command line",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check the .env against the manifest and list what would be created; no Pulumi CLI, no writes",
    )
    return parser


def refuse_token_argument(argv: Sequence[str]) -> None:
    """`--vault-token` (and any abbreviation of it) is refused before argparse could echo its value."""
    for arg in argv:
        if arg == "--":
            return
        name = arg.split("=", 1)[0]
        if name.startswith("--vault-tok") and name != "--vault-token-file":
            raise InputError(TOKEN_REFUSED)


# --- the plan -------------------------------------------------------------------------------------------


def config_path(path: Path, project_dir: Path) -> str:
    """A path as the program (run in `project_dir`) must read it: relative when inside, else absolute."""
    resolved, root = path.resolve(), project_dir.resolve()
    return str(resolved.relative_to(root)) if resolved.is_relative_to(root) else str(resolved)


def plan_stack(options: Options, manifest: Manifest) -> Plan:
    """The stack's settings once the migration has set its keys, and the layout they give."""
    ns, project_dir = options.namespace, options.project_dir
    raw = stack_file_config(project_dir, ns)
    current = raw.get("backend")
    if current and current != options.backend:
        # Switching store replaces every secret of the stack; that is a deliberate edit, not a flag.
        raise InputError(
            f"{stack_file(project_dir, ns).name}: {key('backend')} is {current}; --backend {options.backend} "
            f"would replace every secret of the stack (edit the stack file if that is what you want)"
        )
    plain = {"backend": options.backend, "namespace": ns, "manifest": config_path(options.manifest, project_dir)}
    try:
        settings = parse_settings({**raw, **plain}, ns)
        check_manifest(settings, manifest)
        plan = stack_layout(settings, manifest)  # AWS limits: refused before anything is written
    except ConfigError as e:
        raise InputError(f"stack {ns}: {e}") from None
    return Plan(options, settings, plan, plain)


def plan_lines(plan: Plan) -> list[str]:
    """What the stack declares: mounts, secrets (location, env key, readers), read policies, AppRole roles."""
    lay, settings = plan.layout, plan.settings
    vault, approle = lay.backend == "vault", settings.vault_approle
    everything = plural(len(lay.secrets), "secret")

    secrets = [(s.location, f"({s.key}; readers: {', '.join(s.readers) or 'none'})") for s in lay.secrets]
    policies: list[tuple[str, str]] = []
    for policy in lay.policies:
        if policy.service is None:
            listing = f", list {naming.vault_metadata_path(lay.mount, lay.namespace, '')}" if vault else ""
            policies.append((policy.name, f"(operators and verify: read all {everything}{listing})"))
            continue
        role = settings.aws_service_roles.get(policy.service) if not vault else None
        attached = f"; attached to role {role}" if role else ""
        policies.append((policy.name, f"({policy.service}: read {plural(len(policy.keys), 'secret')}{attached})"))
    roles = [(p.approle, f"({p.service}: logs in with {p.name} only)") for p in lay.policies if approle and p.approle]

    width = max((len(left) for left, _ in [*secrets, *policies, *roles]), default=0)

    def rows(pairs: list[tuple[str, str]]) -> list[str]:
        return [f"  {left.ljust(width)}  {right}" for left, right in pairs]

    lines: list[str] = []
    if vault and settings.vault_manage_mount:
        lines.append(f"Would create the KV v2 mount {lay.mount}/")
    lines.append(f"Would create {everything} in {lay.store} (namespace {lay.namespace}):")
    lines.extend(rows(secrets))
    lines.append(f"Would create {plural(len(policies), 'Vault policy' if vault else 'IAM policy')}:")
    lines.extend(rows(policies))
    if approle and roles:
        if approle.manage_mount:
            lines.append(f"Would enable the AppRole auth method at {approle.mount}/")
        lines.append(f"Would create {plural(len(roles), 'AppRole role')} at auth/{approle.mount}/:")
        lines.extend(rows(roles))
    return lines


# --- the Pulumi side ----------------------------------------------------------------------------------


def vault_environment(options: Options) -> dict[str, str]:
    """VAULT_ADDR / VAULT_TOKEN for `pulumi up` and verify only ({} for AWS): the config calls never get them."""
    if options.backend != "vault":
        if options.vault_addr or options.vault_token_file:
            raise InputError("--vault-addr and --vault-token-file only apply to --backend vault")
        return {}
    addr = options.vault_addr or os.environ.get("VAULT_ADDR")
    if not addr:
        raise InputError("no Vault address: pass --vault-addr URL or set VAULT_ADDR")
    if options.vault_token_file is not None:
        try:
            token = options.vault_token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            raise InputError(f"{options.vault_token_file}: cannot read the token file") from None
        if not token:
            raise InputError(f"{options.vault_token_file}: the token file is empty")
    else:
        token = os.environ.get("VAULT_TOKEN", "")
        if not token:
            raise InputError("no Vault token: pass --vault-token-file FILE or set VAULT_TOKEN")
    return {"VAULT_ADDR": addr, "VAULT_TOKEN": token}


def last_error(output: str) -> str:
    """The CLI's own last `error:` message, or a generic one."""
    found = [line.split("error:", 1)[1].strip() for line in output.splitlines() if "error:" in line]
    return found[-1] if found and found[-1] else "the pulumi command failed"


def pulumi(plan: Plan, args: list[str], *, stdin: str = "") -> None:
    """One captured CLI call on the stack; a failure is one line (the CLI's own error), exit 2."""
    argv = [PULUMI, "--non-interactive", *args, "--stack", plan.stack]
    try:
        done = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, cwd=plan.options.project_dir, check=False
        )
    except FileNotFoundError:  # removed from PATH since `shutil.which` found it
        raise CliMissing(NO_CLI) from None
    if done.returncode != 0:
        raise InputError(f"cannot set up the stack {plan.stack}: {last_error(done.stderr + done.stdout)}")


def configure(plan: Plan, values: Mapping[str, str]) -> None:
    """Set the stack's config in four CLI calls, whatever the number of values.

    - `stack select --create`: the stack, created when new.
    - `config set-all --plaintext`: backend, namespace, manifest (no value among them; argv is fine).
    - `config set --secret secrets-migration:migratedValues`: every value as ONE secret JSON map, on stdin.
    - `config rm-all secrets-migration:values vault:address`: what would silently win over the migration.
      A `values.KEY` set by hand earlier takes precedence over `migratedValues` (components.values), so
      left in place it would deploy the old value and verify would report a mismatch. `vault:address`
      (written by earlier versions of this script) would make `pulumi up` talk to that server while
      verify talks to VAULT_ADDR. Removing an absent key is not an error for the CLI.
    """

    pulumi(plan, ["stack", "select", "--create"])
    settings = [arg for name, value in plan.plain_config.items() for arg in ("--plaintext", f"{key(name)}={value}")]
    pulumi(plan, ["config", "set-all", *settings])
    pulumi(plan, ["config", "set", "--secret", key(BULK_KEY)], stdin=json.dumps(dict(sorted(values.items()))))
    pulumi(plan, ["config", "rm-all", key("values"), "vault:address"])


def up(plan: Plan, vault_env: Mapping[str, str]) -> int:
    """`pulumi up` on the stack; its output goes straight to ours (Pulumi masks secret config in it)."""
    argv = [PULUMI, "--non-interactive", "up", "--yes", "--skip-preview", "--stack", plan.stack]
    sys.stdout.flush()
    try:
        done = subprocess.run(argv, cwd=plan.options.project_dir, env={**os.environ, **vault_env}, check=False)
    except FileNotFoundError:
        raise CliMissing(NO_CLI) from None
    return done.returncode


def verify_stack(plan: Plan) -> int:
    """`python -m components verify` in-process: every value compared with the .env by SHA-256."""
    from components import cli

    options = plan.options
    argv = ["verify", "--backend", plan.layout.backend, "--namespace", plan.layout.namespace]
    argv += ["--manifest", str(options.manifest), "--env-file", str(options.env_file)]
    if plan.layout.backend == "vault":
        argv += ["--vault-mount", plan.layout.mount]
    return cli.main(argv)


Verify = Callable[[Plan], int]


def apply(plan: Plan, values: Mapping[str, str], verify: Verify) -> int:
    vault_env = vault_environment(plan.options)
    if shutil.which(PULUMI) is None:
        raise CliMissing(NO_CLI)
    configure(plan, values)
    print(f"Stack {plan.stack}: configured; running pulumi up", flush=True)
    code = up(plan, vault_env)
    if code != 0:
        print(f"error: pulumi up --stack {plan.stack} failed (exit {code}); its output above says why", file=sys.stderr)
        return EXIT_CHECK_FAILED
    print(f"Stack {plan.stack}: up done; verifying", flush=True)
    with environment(vault_env):
        code = verify(plan)
    if code != EXIT_OK:
        print(
            f"error: verify found problems after pulumi up (exit {code}); see docs/runbook.md, Troubleshooting",
            file=sys.stderr,
        )
        return code
    print(f"✓ Migrated {plural(len(values), 'secret')} to {plan.layout.store} ({plan.stack} namespace)")
    return EXIT_OK


def run(options: Options, verify: Verify = verify_stack) -> int:
    problem = naming.name_problem("namespace", options.namespace)
    if problem:
        raise InputError(f"--namespace: {problem} (it is also the stack name)")
    env = read_env(options.env_file)
    manifest = load(options.manifest, allow_shared_paths=True)
    found = problems(options.env_file, env, manifest)
    if found:
        print(f"{plural(len(found), 'problem')} between {options.env_file} and {options.manifest}:")
        print("\n".join(f"  {line}" for line in found))
        print("Nothing was migrated: fix them first (python -m components derive / check).")
        return EXIT_CHECK_FAILED
    plan = plan_stack(options, manifest)
    count = plural(len(plan.layout.secrets), "secret")
    if options.dry_run:
        print(f"{options.env_file} and {options.manifest} agree.")
        print("\n".join(plan_lines(plan)))
        print(f"Once deployed, `pulumi preview --stack {plan.stack}` shows what a run would change.")
        print(f"Dry run: would migrate {count} to {plan.layout.store} ({plan.stack} namespace); nothing was written.")
        return EXIT_OK
    return apply(plan, {k: env[k].value for k in manifest.secrets}, verify)


def parse_options(argv: Sequence[str], project_dir: Path = PROJECT_DIR) -> Options:
    refuse_token_argument(argv)
    args = build_parser().parse_args(argv)
    return Options(
        env_file=args.env_file,
        backend=cast(Backend, args.backend),
        namespace=args.namespace,
        manifest=args.manifest,
        vault_addr=args.vault_addr,
        vault_token_file=args.vault_token_file,
        dry_run=args.dry_run,
        project_dir=project_dir,
    )


def main(argv: Sequence[str] | None = None, *, project_dir: Path = PROJECT_DIR, verify: Verify = verify_stack) -> int:
    try:
        return run(parse_options(sys.argv[1:] if argv is None else argv, project_dir), verify)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
