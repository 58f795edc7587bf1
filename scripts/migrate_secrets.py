#!/usr/bin/env python3
"""The runbook's Phase 3 migration script, as a thin driver over this project.

    python scripts/migrate_secrets.py --env-file .env --backend vault --namespace staging \\
        --vault-addr http://127.0.0.1:8200 --vault-token-file ~/.vault-token-staging [--dry-run]

1. Check: the .env is read strictly and must agree with the manifest (`python -m components check`).
2. `--dry-run` stops here and lists what the stack declares; it needs no Pulumi CLI and writes nothing.
3. Otherwise, through the Pulumi Automation API, in the stack named after the namespace: set `backend`,
   `namespace`, `manifest` and every value as secret config (`values.KEY`), `pulumi up`, then
   `python -m components verify` in-process (every value compared with the .env by SHA-256).

No value ever reaches a command line. The Automation API's own `set_config` passes the value as an
argument of `pulumi config set` (readable by every local user in `ps` / `/proc/<pid>/cmdline`), so
secret config goes through that command's standard input instead (`StdinSecretsWorkspace`). A Vault token
is taken only from a file or `VAULT_TOKEN` and handed on through the environment, never stored.

Exit codes, as `python -m components`: 0 migrated (or dry run clean); 1 the .env and the manifest
disagree, `pulumi up` failed, or verify found a problem; 2 bad input or cannot run (unreadable file,
token on the command line, no Pulumi CLI, backend unreachable).
"""

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pulumi import automation as auto

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a file (`python scripts/migrate_secrets.py`), not as a module
    sys.path.insert(0, str(REPO))

from components import naming  # noqa: E402
from components.derive import problems  # noqa: E402
from components.envfile import EnvEntry, read_env  # noqa: E402
from components.errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_OK, InputError  # noqa: E402
from components.manifest import DEFAULT_MANIFEST, Manifest, load  # noqa: E402

PROJECT = "secrets-migration"
BACKEND_NAMES = {"vault": "Vault", "aws": "AWS Secrets Manager"}
DEFAULT_MOUNT = "secret"
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/migrate_secrets.py",
        description="Migrate the secrets of a .env into Vault KV v2 or AWS Secrets Manager through this "
        "project's Pulumi stack (named after the namespace), then verify them. The manifest decides which "
        "keys are secrets, their paths and their readers (python -m components derive).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        # Without this `--vault-token X` would silently mean `--vault-token-file X`.
        allow_abbrev=False,
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
        help="Vault address, stored as the stack's vault:address (default: $VAULT_ADDR, else the stack file's)",
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


# --- what the stack declares ------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    backend: str
    namespace: str
    manifest: Manifest
    mount: str = DEFAULT_MOUNT
    """KV v2 mount (vault): the stack file's `vaultMount`, else `secret`."""
    manage_mount: bool = False
    service_roles: dict[str, str] = field(default_factory=dict)
    """Service -> IAM role its read policy is attached to (aws)."""

    @property
    def store(self) -> str:
        return BACKEND_NAMES[self.backend]


def stack_file_config(namespace: str, work_dir: Path = REPO) -> dict[str, Any]:
    """`Pulumi.<namespace>.yaml`'s `config:` with full keys ({} when the stack has no file yet)."""
    path = work_dir / f"Pulumi.{namespace}.yaml"
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        raise InputError(f"{path}: cannot read the stack file") from None
    config = data.get("config") if isinstance(data, dict) else None
    if not isinstance(config, dict):
        return {}
    return {(k if ":" in k else f"{PROJECT}:{k}"): v for k, v in config.items()}


def make_plan(backend: str, namespace: str, manifest: Manifest, stack_config: Mapping[str, Any]) -> Plan:
    current = stack_config.get(f"{PROJECT}:backend")
    if current is not None and current != backend:
        # Switching store replaces every secret of the stack; that is a deliberate edit, not a flag.
        raise InputError(
            f"Pulumi.{namespace}.yaml: secrets-migration:backend is {current}; --backend {backend} would replace "
            f"every secret of the stack (edit the stack file if that is what you want)"
        )
    roles = stack_config.get(f"{PROJECT}:awsServiceRoles")
    return Plan(
        backend,
        namespace,
        manifest,
        mount=str(stack_config.get(f"{PROJECT}:vaultMount") or DEFAULT_MOUNT),
        manage_mount=str(stack_config.get(f"{PROJECT}:vaultManageMount", "false")).lower() == "true",
        service_roles={str(k): str(v) for k, v in roles.items()} if isinstance(roles, dict) else {},
    )


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def plan_lines(plan: Plan) -> list[str]:
    """What the stack declares: secrets (location, env key, readers) and read policies. No values."""
    ns, manifest, vault = plan.namespace, plan.manifest, plan.backend == "vault"
    secrets = [s for _, s in sorted(manifest.secrets.items())]

    def location(path: str) -> str:
        name = naming.secret_name(ns, path)
        return f"{plan.mount}/{name}" if vault else name  # as `vault kv get` / `--secret-id` take it

    lines: list[str] = []
    if vault and plan.manage_mount:
        lines.append(f"Would create the KV v2 mount {plan.mount}/")
    lines.append(f"Would create {plural(len(secrets), 'secret')} in {plan.store} (namespace {ns}):")
    rows = [(location(s.path), f"({s.key}; readers: {', '.join(s.readers) or 'none'})") for s in secrets]

    policies: list[tuple[str, str]] = []
    for service in manifest.services:
        own = manifest.readers_of(service)
        if not own:  # the stores create no policy for a service that reads nothing
            continue
        name = naming.vault_service_policy(ns, service) if vault else naming.aws_service_policy(ns, service)
        role = plan.service_roles.get(service)
        attached = f"; attached to role {role}" if role and not vault else ""
        policies.append((name, f"({service}: read {plural(len(own), 'secret')}{attached})"))
    everything = f"(operators and verify: read all {plural(len(secrets), 'secret')}"
    if vault:
        policies.append((naming.vault_namespace_policy(ns), f"{everything}, list {plan.mount}/metadata/{ns}/)"))
    elif secrets:  # an IAM policy needs a resource: no secrets, no namespace policy
        policies.append((naming.aws_namespace_policy(ns), f"{everything})"))

    width = max(len(left) for left, _ in [*rows, *policies])
    lines.extend(f"  {left.ljust(width)}  {right}" for left, right in rows)
    kind = "Vault policies" if vault else "IAM policies"
    lines.append(f"Would create {len(policies)} {kind}:")
    lines.extend(f"  {left.ljust(width)}  {right}" for left, right in policies)
    return lines


# --- the Pulumi side ----------------------------------------------------------------------------------


class StdinSecretsWorkspace(auto.LocalWorkspace):  # type: ignore[misc]
    """A LocalWorkspace whose secret config values reach `pulumi config set` on stdin, not in its argv.

    `pulumi config set KEY` reads the value from stdin when stdin is not a terminal and drops one
    trailing newline (pulumi/pulumi pkg/cmd/pulumi/config/config_set.go), so `value + "\\n"` stores
    exactly `value`, even one that ends in a newline itself.
    """

    def set_config(self, stack_name: str, key: str, value: auto.ConfigValue, *, path: bool = False) -> None:
        if not value.secret:
            super().set_config(stack_name, key, value, path=path)
            return
        args = ["--non-interactive", "config", "set", "--secret", "--stack", stack_name]
        if path:
            args.append("--path")
        self.run_with_input([*args, "--", key], value.value + "\n")

    def set_all_config(self, stack_name: str, config: Mapping[str, auto.ConfigValue], *, path: bool = False) -> None:
        for key, value in config.items():
            self.set_config(stack_name, key, value, path=path)

    def run_with_input(self, args: list[str], stdin: str) -> None:
        """Run the CLI as the SDK does (same binary, folder and environment), feeding `stdin`."""
        env = {**os.environ}
        if self.pulumi_home:
            env["PULUMI_HOME"] = self.pulumi_home
        env.update(self.env_vars or {})
        env["PULUMI_AUTOMATION_API"] = "true"
        done = subprocess.run(
            [self.pulumi_command.command, *args],
            input=stdin,
            capture_output=True,
            text=True,
            cwd=self.work_dir,
            env=env,
            check=False,
        )
        if done.returncode != 0:
            raise auto.errors.create_command_error(auto.CommandResult(done.stdout, done.stderr, done.returncode))


def open_stack(namespace: str, work_dir: Path) -> Any:
    """Select or create the stack `namespace` of the project in `work_dir` (the test seam)."""
    if shutil.which("pulumi") is None:
        raise CliMissing(NO_CLI)
    try:
        workspace = StdinSecretsWorkspace(work_dir=str(work_dir))
    except FileNotFoundError:  # the SDK runs `pulumi version` first
        raise CliMissing(NO_CLI) from None
    return auto.Stack.create_or_select(namespace, workspace)


def pulumi_error(error: Exception) -> str:
    """The CLI's own last `error:` message out of a CommandError (whose text is the whole stdout/stderr)."""
    found = [line.split("error:", 1)[1].strip() for line in str(error).splitlines() if "error:" in line]
    return found[-1] if found and found[-1] else "the pulumi command failed"


def stack_path(path: Path, work_dir: Path) -> str:
    """A path as the program (run in `work_dir`) must read it: relative when inside, else absolute."""
    resolved = path.resolve()
    return str(resolved.relative_to(work_dir)) if resolved.is_relative_to(work_dir) else str(resolved)


@dataclass(frozen=True)
class Connection:
    vault_addr: str | None = None
    """From --vault-addr only: the one address written into the stack config."""
    env: dict[str, str] = field(default_factory=dict)
    """VAULT_ADDR / VAULT_TOKEN for `pulumi up` and verify, set only while they run."""


def connection(args: argparse.Namespace, stack_config: Mapping[str, Any]) -> Connection:
    if args.backend != "vault":
        if args.vault_addr or args.vault_token_file:
            raise InputError("--vault-addr and --vault-token-file only apply to --backend vault")
        return Connection()
    addr = args.vault_addr or os.environ.get("VAULT_ADDR") or stack_config.get("vault:address")
    if not addr:
        raise InputError("no Vault address: pass --vault-addr URL or set VAULT_ADDR")
    if args.vault_token_file is not None:
        try:
            token = args.vault_token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            raise InputError(f"{args.vault_token_file}: cannot read the token file") from None
        if not token:
            raise InputError(f"{args.vault_token_file}: the token file is empty")
    else:
        token = os.environ.get("VAULT_TOKEN", "")
        if not token:
            raise InputError("no Vault token: pass --vault-token-file FILE or set VAULT_TOKEN")
    return Connection(args.vault_addr, {"VAULT_ADDR": str(addr), "VAULT_TOKEN": token})


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the `with` block only (the pulumi subprocess inherits them)."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in before.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def configure(stack: Any, plan: Plan, env: Mapping[str, EnvEntry], manifest_path: str, conn: Connection) -> None:
    """Stack config: the plain settings, then every manifest secret's value as secret `values.KEY`."""
    stack.set_config(f"{PROJECT}:backend", auto.ConfigValue(plan.backend))
    stack.set_config(f"{PROJECT}:namespace", auto.ConfigValue(plan.namespace))
    stack.set_config(f"{PROJECT}:manifest", auto.ConfigValue(manifest_path))
    if conn.vault_addr:
        stack.set_config("vault:address", auto.ConfigValue(conn.vault_addr))
    for key in sorted(plan.manifest.secrets):
        stack.set_config(f"{PROJECT}:values.{key}", auto.ConfigValue(env[key].value, secret=True), path=True)


def run_verify(plan: Plan, args: argparse.Namespace) -> int:
    """`python -m components verify` in-process, comparing every value with the .env by SHA-256."""
    from components import verify
    from components.verify.options import aws_region_from_environment, vault_tls_from_environment

    env = os.environ  # VAULT_ADDR / VAULT_TOKEN are set for this call by `environment(conn.env)`
    options = verify.VerifyOptions(
        backend="vault" if plan.backend == "vault" else "aws",
        namespace=plan.namespace,
        manifest=args.manifest,
        env_file=args.env_file,
        vault_addr=env.get("VAULT_ADDR", ""),
        vault_token=env.get("VAULT_TOKEN", ""),
        vault_mount=plan.mount,
        vault_tls_verify=vault_tls_from_environment(env),
        aws_region=aws_region_from_environment(env),
    )
    return verify.run(options)


def migrate(args: argparse.Namespace, plan: Plan, env: Mapping[str, EnvEntry], conn: Connection) -> int:
    def say(line: str) -> None:
        print(line, flush=True)

    def say_err(line: str) -> None:
        print(line, file=sys.stderr)

    try:
        stack = open_stack(plan.namespace, REPO)
        configure(stack, plan, env, stack_path(args.manifest, REPO), conn)
    except auto.CommandError as e:
        raise InputError(f"cannot set up the stack {plan.namespace}: {pulumi_error(e)}") from None
    with environment(conn.env):
        say(f"Stack {plan.namespace}: configured; running pulumi up")
        try:
            # Pulumi masks secret config in everything it prints, so its output can be streamed.
            stack.up(on_output=say, on_error=say_err, color="never")
        except auto.CommandError as e:
            say_err(f"error: pulumi up --stack {plan.namespace} failed: {pulumi_error(e)}")
            return EXIT_CHECK_FAILED
        say(f"Stack {plan.namespace}: up done; verifying")
        code = run_verify(plan, args)
    if code != EXIT_OK:
        say_err(f"error: verify found problems after pulumi up (exit {code}); see docs/runbook.md, Troubleshooting")
        return code
    say(f"✓ Migrated {plural(len(plan.manifest.secrets), 'secret')} to {plan.store} ({plan.namespace} namespace)")
    return EXIT_OK


# --- entry point ----------------------------------------------------------------------------------------


def refuse_token_argument(argv: Sequence[str]) -> None:
    """`--vault-token` (and any abbreviation of it) is refused before argparse could echo its value."""
    for arg in argv:
        if arg == "--":
            return
        name = arg.split("=", 1)[0]
        if name.startswith("--vault-tok") and name != "--vault-token-file":
            raise InputError(TOKEN_REFUSED)


def run(argv: Sequence[str]) -> int:
    refuse_token_argument(argv)
    args = build_parser().parse_args(argv)
    problem = naming.name_problem("namespace", args.namespace)
    if problem:
        raise InputError(f"--namespace: {problem} (it is also the stack name)")
    env = read_env(args.env_file)
    manifest = load(args.manifest, allow_shared_paths=True)
    found = problems(args.env_file, env, manifest)
    if found:
        print(f"{plural(len(found), 'problem')} between {args.env_file} and {args.manifest}:")
        print("\n".join(f"  {line}" for line in found))
        print("Nothing was migrated: fix them first (python -m components derive / check).")
        return EXIT_CHECK_FAILED
    stack_config = stack_file_config(args.namespace)
    plan = make_plan(args.backend, args.namespace, manifest, stack_config)

    if args.dry_run:
        print(f"{args.env_file} and {args.manifest} agree.")
        print("\n".join(plan_lines(plan)))
        print(f"Once deployed, `pulumi preview --stack {plan.namespace}` shows what a run would change.")
        count = plural(len(manifest.secrets), "secret")
        print(f"Dry run: would migrate {count} to {plan.store} ({plan.namespace} namespace); nothing was written.")
        return EXIT_OK
    return migrate(args, plan, env, connection(args, stack_config))


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
