"""`make demo` (`python -m components demo`) as a new user runs it: a real process, a real OpenBao dev
server, the local stack deployed and verified, and nothing left behind — with and without the Pulumi CLI.

The Pulumi CLI cannot be installed here, so its path runs against a recording stand-in `pulumi` that
applies `up` through the project's engine: it proves what the demo asks of the CLI (where, with which
state backend and passphrase, which commands) and that it reports the CLI's failures, not the CLI itself.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLE_ENV, REPO
from tests.live.servers import clean_env

DEMO = [sys.executable, "-m", "components", "demo"]
EXAMPLE_VALUES = [line.split("=", 1)[1] for line in EXAMPLE_ENV.read_text().splitlines() if "=FAKE-" in line]
FAKE_PULUMI = '''#!{python}
"""A stand-in `pulumi`: logs each call; `up` applies the copied project through the engine."""
import json, os, sys
from pathlib import Path

args = [a for a in sys.argv[1:] if a != "--non-interactive"]
with open(os.environ["FAKE_PULUMI_LOG"], "a") as log:
    seen = {{k: os.environ.get(k) for k in ("PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "VAULT_ADDR")}}
    log.write(json.dumps({{"args": args, "cwd": os.getcwd(), "env": seen}}) + "\\n")
if os.environ.get("FAKE_PULUMI_FAIL") == args[0]:
    sys.exit(1)
state = Path(os.environ["PULUMI_BACKEND_URL"].removeprefix("file://"))
if args[0] == "up":
    sys.path.insert(0, os.getcwd())
    from components.engine import Engine
    engine = Engine(vault_addr=os.environ["VAULT_ADDR"], vault_token=os.environ["VAULT_TOKEN"],
                    program=Path.cwd() / "__main__.py")
    (state / "outputs.json").write_text(json.dumps(engine.up("local").outputs))
elif args[:2] == ["stack", "output"]:
    print((state / "outputs.json").read_text())
'''


def without_pulumi_path() -> str:
    """PATH with no `pulumi` on it (a developer machine might have one)."""
    return os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if not (Path(p) / "pulumi").exists())


def repo_state() -> tuple[str, set[str]]:
    """What the demo must leave as it found it: the checkout's status and the temp folder's demo dirs."""
    status = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=REPO, capture_output=True, text=True)
    leftovers = {p.name for p in Path(tempfile.gettempdir()).glob("secrets-migration-demo-*")}
    return status.stdout, leftovers


def port_closed(output: str) -> bool:
    port = int(re.search(r"OpenBao dev server: http://127\.0\.0\.1:(\d+)", output)[1])  # type: ignore[index]
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def run_demo(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DEMO, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_without_the_cli_the_engine_deploys_and_verify_ends_ok() -> None:
    before = repo_state()
    started = time.monotonic()
    done = run_demo(clean_env({"PATH": without_pulumi_path()}))
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert (
        lines[2] == "Pulumi CLI not found: deploying through the project's engine (components/engine), not `pulumi up`"
    )
    assert lines[-1] == "✓ verify OK: 4/4 secrets OK; 6/6 policies OK (vault, namespace local)"
    assert "  .venv/bin/bao kv get secret/local/alpaca/api_key_id" in lines
    assert done.stderr == ""
    assert not any(value in done.stdout for value in EXAMPLE_VALUES)
    assert port_closed(done.stdout)
    assert repo_state() == before
    assert elapsed < 60


def test_a_second_demo_works_too() -> None:
    env = clean_env({"PATH": without_pulumi_path()})
    assert [run_demo(env).returncode for _ in range(2)] == [0, 0]


def fake_pulumi(tmp_path: Path, **extra: str) -> tuple[dict[str, str], Path]:
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.jsonl"
    bin_dir.mkdir()
    script = bin_dir / "pulumi"
    script.write_text(FAKE_PULUMI.format(python=sys.executable))
    script.chmod(0o755)
    env = clean_env({"PATH": f"{bin_dir}{os.pathsep}{without_pulumi_path()}", "FAKE_PULUMI_LOG": str(log), **extra})
    return env, log


def calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_with_the_cli_it_runs_pulumi_up_in_a_throwaway_project_and_state(tmp_path: Path) -> None:
    env, log = fake_pulumi(tmp_path)
    before = repo_state()
    done = run_demo(env)
    assert done.returncode == 0, done.stderr
    assert "Pulumi CLI found: `pulumi up --stack local --yes` (state in a temporary file:// backend)" in done.stdout
    assert done.stdout.splitlines()[-1].startswith("✓ verify OK: 4/4 secrets OK")
    made = calls(log)
    assert [c["args"] for c in made] == [
        ["stack", "select", "--create", "local"],
        ["up", "--stack", "local", "--yes"],
        ["stack", "output", "--stack", "local", "--json"],
    ]
    for call in made:
        assert Path(call["cwd"]).name == "project" and not Path(call["cwd"]).is_relative_to(REPO)
        assert call["env"]["PULUMI_BACKEND_URL"].startswith("file:///")
        assert call["env"]["PULUMI_CONFIG_PASSPHRASE"] == "secrets-migration-demo"
        assert call["env"]["VAULT_ADDR"].startswith("http://127.0.0.1:")
        assert not Path(call["cwd"]).exists()  # the copy and its state went with the demo
    assert port_closed(done.stdout)
    assert repo_state() == before


def test_a_failed_deploy_exits_1_and_still_stops_the_server(tmp_path: Path) -> None:
    env, _ = fake_pulumi(tmp_path, FAKE_PULUMI_FAIL="up")
    done = run_demo(env)
    assert done.returncode == 1
    assert done.stderr == "error: `pulumi up --stack local --yes` exited 1\n"
    assert "verify" not in done.stdout.splitlines()[-1]
    assert port_closed(done.stdout)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_demo_stops_the_server(signum: int) -> None:
    process = subprocess.Popen(
        [*DEMO, "--keep"],
        cwd=REPO,
        env=clean_env({"PATH": without_pulumi_path()}),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    output = ""
    while "press Enter" not in output:
        chunk = process.stdout.read(1)
        assert chunk, "the demo ended before waiting"
        output += chunk
    process.send_signal(signum)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert err.strip() == "interrupted: the OpenBao dev server was stopped"
    assert port_closed(output)
