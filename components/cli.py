"""`python -m components <command>`: the command line. Exit codes: 0 ok, 1 check failed, 2 bad input.

Each command's work lives in its own module, imported by the command's function below only when that
command runs, so `--help` stays fast (no Pulumi, hvac or boto3 at start-up) and every dependency of
the CLI is visible here.
"""

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from components.errors import EXIT_BAD_INPUT, InputError
from components.manifest import DEFAULT_MANIFEST
from components.naming import DEFAULT_APPROLE_MOUNT, DEFAULT_MOUNT
from components.text import plural

Handler = Callable[[argparse.Namespace], int]


# --- argument errors that never echo a value -----------------------------------------------------------

# Words of a flag meant to carry a credential (`--vault-token`, `--token`, `--db-password`, ...), and the
# abbreviations of `token` (`--tok`, `--vault-toke`). Such a flag is refused by name before argparse sees it.
_CREDENTIAL_WORDS = ("token", "passw", "secret-id", "secret-key", "api-key")
_TOKEN_ABBREVIATIONS = ("tok", "toke")


def is_credential_flag(arg: str) -> bool:
    """True for `--vault-token`, `--token=...`, `--tok`, `--aws-session-token`, `--db-password`, ..."""
    if not arg.startswith("-"):
        return False
    name = arg.split("=", 1)[0].lstrip("-").lower()
    return any(word in name for word in _CREDENTIAL_WORDS) or name.rsplit("-", 1)[-1] in _TOKEN_ABBREVIATIONS


_FLAG_NAME = re.compile(r"--[a-z][a-z0-9]*(?:-[a-z0-9]+)*|-[A-Za-z]")
# argparse messages that quote what the user typed: keep the words, drop the value.
_QUOTED_VALUE = re.compile(
    r"(?P<what>invalid choice|invalid [\w.]+ value|ignored explicit argument):? "
    r".*?(?P<choices> \(choose from [^()]*\))?$",
    re.DOTALL,
)
VALUES_NOT_SHOWN = "(values are not shown)"


def _unrecognized(extras: Sequence[str]) -> str:
    """`unrecognized arguments: --foo; 2 unexpected arguments (values are not shown)`: flag names only."""
    names = [arg.split("=", 1)[0] for arg in extras]
    flags = list(dict.fromkeys(n for n in names if _FLAG_NAME.fullmatch(n)))
    others = len(names) - sum(1 for n in names if _FLAG_NAME.fullmatch(n))
    parts = [f"unrecognized arguments: {' '.join(flags)}"] if flags else []
    if others:
        parts.append(plural(others, "unexpected argument"))
    return f"{'; '.join(parts)} {VALUES_NOT_SHOWN}"


class Parser(argparse.ArgumentParser):
    """argparse whose errors name flags, never values: a mistyped or unknown argument may be a token.

    Abbreviations are off, so `--tok X` can never become a real flag added later (`--token-file`), and
    every error is written from flag names and this parser's own choices.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        argv = list(sys.argv[1:] if args is None else args)
        known = self._flags()
        for arg in argv[: argv.index("--")] if "--" in argv else argv:
            name = arg.split("=", 1)[0]
            if name not in known and is_credential_flag(name):
                self.error(
                    f"unrecognized arguments: {name if _FLAG_NAME.fullmatch(name) else 'a credential flag'} "
                    "(credentials are never taken as an argument, where the process list and shell history "
                    f"would show them: set it in the environment, e.g. VAULT_TOKEN) {VALUES_NOT_SHOWN}"
                )
        parsed, extras = self.parse_known_args(argv, namespace)
        if extras:
            self.error(_unrecognized(extras))
        return parsed

    def _flags(self) -> set[str]:
        """Every option string of this parser and its subcommands: a real flag (`--vault-token-file`) is
        never taken for a credential flag."""
        found: set[str] = set()
        for action in self._actions:
            found.update(action.option_strings)
            subcommands = action.choices if isinstance(action.choices, dict) else {}
            for sub in subcommands.values():
                if isinstance(sub, Parser):
                    found |= sub._flags()
        return found

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        clean = _QUOTED_VALUE.sub(lambda m: m["what"] + (m["choices"] or ""), message)
        self.exit(2, f"{self.prog}: error: {clean}\n")


# --- the commands: one function each, importing its module when it runs ------------------------------


def derive_command(args: argparse.Namespace) -> int:
    from components.derive import run_derive

    return run_derive(args)


def check_command(args: argparse.Namespace) -> int:
    from components.derive import run_check

    return run_check(args)


def template_command(args: argparse.Namespace) -> int:
    from components.derive import run_template

    return run_template(args)


def verify_command(args: argparse.Namespace) -> int:
    """Builds verify's options from the flags and the environment: the one place verify reads either
    (VAULT_ADDR, VAULT_TOKEN, Vault's TLS variables and proxy, AWS_REGION / AWS_DEFAULT_REGION)."""
    import os

    from components.environ import aws_region, proxy_for, vault_tls_verify
    from components.verify import VerifyOptions, run

    env = os.environ
    vault_addr = args.vault_addr or env.get("VAULT_ADDR", "")
    options = VerifyOptions(
        backend=args.backend,
        namespace=args.namespace,
        manifest=args.manifest,
        env_file=args.env_file,
        vault_addr=vault_addr,
        vault_token=env.get("VAULT_TOKEN", ""),
        vault_mount=args.vault_mount,
        vault_tls_verify=vault_tls_verify(env),
        vault_proxy=proxy_for(vault_addr, env) if args.backend == "vault" else None,
        approle="off" if args.no_approle else "required" if args.approle_mount else "auto",
        approle_mount=args.approle_mount or DEFAULT_APPROLE_MOUNT,
        aws_region=aws_region(env),
        concurrency=args.concurrency,
        timeout=args.timeout,
        json=args.json,
    )
    return run(options)


def gate_command(args: argparse.Namespace) -> int:
    from components.gate import run

    return run(args)


def run_command(args: argparse.Namespace) -> int:
    from components.run import run

    return run(args)


def adopt_command(args: argparse.Namespace) -> int:
    from components.adopt import run

    return run(args)


def demo_command(args: argparse.Namespace) -> int:
    from components.demo import run

    return run(args)


def _manifest_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST, help="manifest file (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m components",
        description="Move .env credentials into Vault KV v2 or AWS Secrets Manager. "
        "Exit codes: 0 ok, 1 check failed, 2 bad input or cannot check. Output never contains a value.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Handler, help: str, description: str) -> argparse.ArgumentParser:
        p = commands.add_parser(name, help=help, description=description)
        p.set_defaults(handler=handler)
        return p

    p = command(
        "derive",
        derive_command,
        "write the manifest from a .env",
        "Classify every key of the .env as secret or config, map each secret to its path, and write the "
        "manifest. Re-deriving keeps hand edits; removed keys are reported and dropped only with --prune.",
    )
    p.add_argument("--env-file", type=Path, required=True, help="the .env to read")
    _manifest_arg(p)
    p.add_argument(
        "--service", action="append", default=[], metavar="NAME", help="a service that reads secrets (repeat)"
    )
    p.add_argument("--secret", action="append", default=[], metavar="KEY", help="treat KEY as a secret (recorded)")
    p.add_argument("--config", action="append", default=[], metavar="KEY", help="treat KEY as plain config (recorded)")
    p.add_argument("--prune", action="store_true", help="drop manifest keys that are no longer in the .env")

    p = command(
        "check",
        check_command,
        "check that a .env and the manifest agree",
        "Exit 0 when the .env and manifest agree, 1 with a list of problems otherwise (for CI and pre-commit).",
    )
    p.add_argument("--env-file", type=Path, required=True, help="the .env to check")
    _manifest_arg(p)

    p = command(
        "template",
        template_command,
        "write .env.template (secrets commented out)",
        "Write a .env.template that keeps config values and comments out every secret as "
        "`# KEY=<YOUR_KEY>` (runbook Phase 1).",
    )
    p.add_argument("--env-file", type=Path, required=True, help="the .env to read")
    _manifest_arg(p)
    p.add_argument("--out", type=Path, default=Path(".env.template"), help="output file (default: %(default)s)")

    p = command(
        "verify",
        verify_command,
        "read every secret back and check each service's policy",
        "The runbook's Validation checklist: every manifest secret is present (and, with --env-file, equal "
        "to the .env value by SHA-256), and every service's read policy grants exactly its secrets. "
        "Connects with VAULT_ADDR/VAULT_TOKEN or the usual AWS chain (and AWS_ENDPOINT_URL).",
    )
    p.add_argument("--backend", choices=["vault", "aws"], required=True)
    p.add_argument("--namespace", required=True, help="the environment prefix, e.g. staging")
    _manifest_arg(p)
    p.add_argument("--env-file", type=Path, help="compare each value's SHA-256 with this .env's")
    p.add_argument("--vault-addr", help="Vault address (default: $VAULT_ADDR); the token comes only from VAULT_TOKEN")
    p.add_argument("--vault-mount", default=DEFAULT_MOUNT, help="KV v2 mount (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print a JSON report (for CI)")
    p.add_argument("--concurrency", type=int, default=32, help="parallel requests (default: %(default)s)")
    p.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="give up after this long for the whole run, naming what did not answer (default: %(default)g)",
    )
    approle = p.add_mutually_exclusive_group()
    approle.add_argument(
        "--approle-mount",
        metavar="MOUNT",
        help="Vault: require each service's AppRole role in this auth mount (default: check the roles in "
        f"{DEFAULT_APPROLE_MOUNT}/ when the namespace has any there)",
    )
    approle.add_argument("--no-approle", action="store_true", help="Vault: do not check AppRole roles")

    p = command(
        "run",
        run_command,
        "start a service with exactly its secrets in its environment",
        "Log in as the service (Vault AppRole from VAULT_ROLE_ID + VAULT_SECRET_ID_FILE, or VAULT_TOKEN; AWS: "
        "boto3's chain), read the manifest secrets it reads, put each in the environment under its .env key "
        "name (plus the manifest's config keys from --env-file), drop the login material, and exec COMMAND. "
        "Any failure: one line, exit 2, COMMAND not started. --backend env outside `local` needs "
        "SECRET_ALLOW_ENV_IN_NON_LOCAL=1 (the runbook's emergency override).",
    )
    p.add_argument("--service", required=True, help="the service to start (a service of the manifest)")
    p.add_argument("--backend", choices=["vault", "aws", "env"], required=True)
    p.add_argument("--namespace", required=True, help="the environment prefix, e.g. staging")
    _manifest_arg(p)
    p.add_argument("--env-file", type=Path, help="the .env with the config keys (and, with --backend env, the secrets)")
    p.add_argument("--vault-mount", default=DEFAULT_MOUNT, help="KV v2 mount (default: %(default)s)")
    p.add_argument("--approle-mount", default=DEFAULT_APPROLE_MOUNT, help="AppRole auth mount (default: %(default)s)")
    p.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds for the login and all reads together, inside systemd's 90 s start limit (default: %(default)s)",
    )
    p.add_argument(
        "--check", action="store_true", help="do everything but start COMMAND; print where each variable comes from"
    )
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]", help="what to start")

    p = command(
        "gate",
        gate_command,
        "judge a `pulumi preview --json` before deploying",
        "Fail (exit 1) when a protected stack would delete or replace a secret or policy, when any stack would "
        "delete or replace a mount, when one secret's backend name is deleted and created in one deploy, or when "
        "the preview reports an error. A secret version's replacement (a rotation) passes. Prints a Markdown "
        "summary for a pull-request comment.",
    )
    p.add_argument("preview_json", type=Path, metavar="PREVIEW_JSON", help="output of `pulumi preview --json`")
    p.add_argument("--protected", action="store_true", help="the stack is protected (prod)")
    p.add_argument(
        "--allow-delete",
        action="append",
        default=[],
        metavar="PATH",
        help="allow deleting or replacing this secret path, logical name or (old names) env key (repeat)",
    )

    p = command(
        "demo",
        demo_command,
        "deploy the local stack to a throwaway OpenBao dev server and verify it (make demo)",
        "The main job end to end: start an OpenBao dev server on a free 127.0.0.1 port, deploy the `local` "
        "stack from examples/.env.example (with `pulumi up` when the Pulumi CLI is installed, else through the "
        "project's engine, and it says which), run verify, and stop the server. Exit 0 only when verify is OK.",
    )
    p.add_argument("--keep", action="store_true", help="keep the server up until Enter, to look around")

    p = command(
        "adopt",
        adopt_command,
        "write a `pulumi import --file` for secrets and policies that already exist",
        "Find the manifest's secrets, read policies and AppRole roles that already exist in the backend (e.g. "
        "created by hand in the runbook's Phase 2) and write the file `pulumi import --file` takes, with the "
        "program's types and logical names. Then `pulumi import`, then `pulumi up`. Reads no value. Connects "
        "with VAULT_ADDR/VAULT_TOKEN or the usual AWS chain (and AWS_ENDPOINT_URL).",
    )
    p.add_argument("--backend", choices=["vault", "aws"], required=True)
    p.add_argument("--namespace", required=True, help="the environment prefix, e.g. staging")
    _manifest_arg(p)
    p.add_argument("--vault-mount", default=DEFAULT_MOUNT, help="KV v2 mount (default: %(default)s)")
    p.add_argument("--approle-mount", default=DEFAULT_APPROLE_MOUNT, help="AppRole auth mount (default: %(default)s)")
    p.add_argument("--out", type=Path, default=Path("import.json"), help="import file (default: %(default)s)")
    p.add_argument(
        "--restore",
        action="store_true",
        help="AWS: restore secrets scheduled for deletion (inside their recovery window) and adopt them",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        handler: Handler = args.handler
        return handler(args)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
