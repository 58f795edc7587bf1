"""`components run` without a server: the `.env` backend (local, and the runbook's emergency rollback),
the exec (same process: exit codes and signals are COMMAND's own), the environment COMMAND gets, and
the refusals that happen before anything is read. Vault and AWS: tests/live/test_run_*.py."""

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.envfile import read_env
from components.layout import layout
from components.manifest import load
from components.run import child_environment
from tests.conftest import EXAMPLE_ENV, REPO
from tests.live.run_helpers import PROBE, probe_output, run_components, sha256

MANIFEST = load(REPO / "secrets.manifest.yaml")
ENTRIES = read_env(EXAMPLE_ENV)
VALUES = {key: entry.value for key, entry in ENTRIES.items()}
SECRET_VALUES = [VALUES[key] for key in MANIFEST.secrets]
CANARY = "CANARY-command-line-secret-7e1d"


def base_env(**extra: str) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", **extra}


def run(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    done = run_components(env, "run", *argv)
    for value in [*SECRET_VALUES, CANARY]:
        assert value not in done.stderr
    return done


def env_run(
    namespace: str, *command: str, env: dict[str, str] | None = None, service: str = "signal-service"
) -> subprocess.CompletedProcess[str]:
    argv = ["--service", service, "--backend", "env", "--namespace", namespace, "--env-file", str(EXAMPLE_ENV)]
    return run(env or base_env(), *argv, "--", *command)


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[list[str]]:
    """A COMMAND that creates a file: after a refusal the file must not exist."""
    path = tmp_path / "started"
    yield [sys.executable, "-c", f"open({str(path)!r}, 'w').close()"]
    assert not path.exists(), "COMMAND was started"


def one_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:") or ": error: " in line]
    assert len(errors) == 1, done.stderr
    return errors[0]


def expected(service: str, env: dict[str, str]) -> dict[str, str]:
    plan = layout(MANIFEST, "vault", "staging")
    digests = {k: sha256(v) for k, v in env.items()}
    digests.update({s.key: sha256(VALUES[s.key]) for s in plan.readable_by(service)})
    digests.update({k: sha256(VALUES[k]) for k in MANIFEST.config})
    return digests


# --- the .env backend: local, and the emergency override ---------------------------------------------


def test_env_backend_in_local(marker: list[str]) -> None:
    done = env_run("local", sys.executable, "-c", PROBE)
    assert done.returncode == 0, done.stderr
    assert probe_output(done.stdout) == expected("signal-service", base_env())
    assert done.stderr.splitlines() == [
        "Initialized EnvSecretManager (namespace=local)",
        "Loaded secret: local/database/password",
        "Loaded secret: local/redis/password",
    ]


def test_rollback_env_in_staging_refused_without_the_override(marker: list[str]) -> None:
    for env in (base_env(), base_env(SECRET_ALLOW_ENV_IN_NON_LOCAL="true")):  # only `1` is the override
        line = one_error(env_run("staging", *marker, env=env))
        assert line == (
            "error: EnvSecretManager refused in namespace staging: the .env is for local only; "
            "SECRET_ALLOW_ENV_IN_NON_LOCAL=1 is the emergency override (runbook: Rollback)"
        )


def test_rollback_env_in_staging_allowed_with_the_override() -> None:
    env = base_env(SECRET_ALLOW_ENV_IN_NON_LOCAL="1")
    done = env_run("staging", sys.executable, "-c", PROBE, env=env, service="execution-gateway")
    assert done.returncode == 0, done.stderr
    assert probe_output(done.stdout) == expected("execution-gateway", env)
    assert done.stderr.splitlines()[:2] == [
        "Initialized EnvSecretManager (namespace=staging)",
        f"warning: SECRET_ALLOW_ENV_IN_NON_LOCAL=1: secrets from {EXAMPLE_ENV} in namespace staging",
    ]


def test_env_backend_missing_secret(tmp_path: Path, marker: list[str]) -> None:
    partial = tmp_path / ".env"
    partial.write_text(f"DATABASE_PASSWORD={VALUES['DATABASE_PASSWORD']}\n")
    argv = ["--service", "signal-service", "--backend", "env", "--namespace", "local", "--env-file", str(partial)]
    line = one_error(run(base_env(), *argv, "--", *marker))
    assert line == (
        "error: SecretNotFoundError: Secret 'local/redis/password' not found in .env "
        f"(REDIS_PASSWORD is not in {partial})"
    )


# --- the exec: COMMAND is this process ------------------------------------------------------------------


def test_exit_code_is_the_commands() -> None:
    assert env_run("local", sys.executable, "-c", "raise SystemExit(7)").returncode == 7


def test_same_process_and_signals_reach_the_command() -> None:
    """COMMAND prints its PID and waits: it is the PID `run` was started as; a SIGTERM sent to that PID
    reaches COMMAND's own handler (exit 3); without a handler it dies of the signal."""
    handler = (
        "import os, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))\n"
        "print(os.getpid(), flush=True)\n"
        "time.sleep(30)\n"
    )
    for script, returncode in (
        (handler, 3),
        (handler.replace("signal.signal(", "0 and signal.signal("), -signal.SIGTERM),
    ):
        argv = ["run", "--service", "signal-service", "--backend", "env", "--namespace", "local"]
        argv += ["--env-file", str(EXAMPLE_ENV), "--", sys.executable, "-c", script]
        process = subprocess.Popen(
            [sys.executable, "-m", "components", *argv],
            cwd=REPO,
            env=base_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert process.stdout is not None
            assert int(process.stdout.readline()) == process.pid
            process.send_signal(signal.SIGTERM)
            assert process.wait(10) == returncode
        finally:
            process.kill()
            process.wait()


def test_command_not_found() -> None:
    line = one_error(env_run("local", "no-such-command-here"))
    assert line == "error: cannot start no-such-command-here: No such file or directory"


# --- what COMMAND's environment holds ------------------------------------------------------------------


def test_login_material_and_other_services_secrets_never_reach_the_command() -> None:
    inherited = base_env(
        VAULT_TOKEN=CANARY,
        VAULT_SECRET_ID=CANARY,
        VAULT_ROLE_ID="r",
        VAULT_SECRET_ID_FILE="/nonexistent",
        ALPACA_API_KEY_ID=CANARY,  # a secret signal-service does not read, left over in the host's environment
        LOG_LEVEL="DEBUG",  # config already set: it wins over the .env
    )
    done = env_run("local", sys.executable, "-c", PROBE, env=inherited)
    assert done.returncode == 0, done.stderr
    got = probe_output(done.stdout)
    assert not {"VAULT_TOKEN", "VAULT_SECRET_ID", "VAULT_ROLE_ID", "VAULT_SECRET_ID_FILE", "ALPACA_API_KEY_ID"} & set(
        got
    )
    assert got["LOG_LEVEL"] == sha256("DEBUG")
    assert got["DATABASE_PASSWORD"] == sha256(VALUES["DATABASE_PASSWORD"])


def test_check_names_every_source_and_starts_nothing(marker: list[str]) -> None:
    inherited = base_env(VAULT_TOKEN=CANARY, ALPACA_API_KEY_ID=CANARY, LOG_LEVEL="DEBUG")
    argv = ["--service", "signal-service", "--backend", "env", "--namespace", "local", "--env-file", str(EXAMPLE_ENV)]
    done = run(inherited, *argv, "--check", "--", *marker)
    assert done.returncode == 0, done.stderr
    for value in [*SECRET_VALUES, CANARY]:
        assert value not in done.stdout
    rows = dict(line.split(None, 1) for line in done.stdout.splitlines()[:-1])
    env = str(EXAMPLE_ENV)
    assert rows == {
        "DATABASE_PASSWORD": f"secret from {env}:{ENTRIES['DATABASE_PASSWORD'].line}",
        "REDIS_PASSWORD": f"secret from {env}:{ENTRIES['REDIS_PASSWORD'].line}",
        **{k: f"config from {env}:{ENTRIES[k].line}" for k in MANIFEST.config if k != "LOG_LEVEL"},
        "LOG_LEVEL": f"config, kept from the environment (not {env}:{ENTRIES['LOG_LEVEL'].line})",
        "ALPACA_API_KEY_ID": "removed: a secret signal-service does not read",
        "VAULT_TOKEN": "removed: Vault login material (the service never holds it)",
    }
    assert done.stdout.splitlines()[-1] == f"✓ signal-service would start with 2 secrets ({env}) and 10 config keys"


def test_keys_outside_the_manifest_are_not_passed(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("NEW_API_TOKEN=x\nLOG_LEVEL=INFO\n")
    plan = layout(MANIFEST, "vault", "local")
    child = child_environment({}, plan, "orchestrator", {}, read_env(env_file), MANIFEST.config, env_file)
    assert child.env == {"LOG_LEVEL": "INFO"}
    assert child.sources == [
        ("LOG_LEVEL", f"config from {env_file}:2"),
        ("NEW_API_TOKEN", f"not set: in {env_file} but not in the manifest (see `components check`)"),
    ]


# --- refused before anything is read ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "flag", [["--vault-token", CANARY], [f"--vault-token={CANARY}"], ["--secret-id", CANARY], ["--token", CANARY]]
)
def test_secrets_on_the_command_line_are_refused_unechoed(flag: list[str], marker: list[str]) -> None:
    argv = ["--service", "orchestrator", "--backend", "vault", "--namespace", "staging", *flag, "--", *marker]
    done = run(base_env(), *argv)
    line = one_error(done)
    assert CANARY not in done.stdout
    assert flag[0].split("=")[0] in line  # named, never echoed (run() checks stderr for the canary)


@pytest.mark.parametrize(
    ("label", "argv", "expected"),
    [
        ("unknown service", ["--service", "billing"], "error: --service billing: not a service of "),
        ("bad service name", ["--service", "Billing!"], "error: --service: service 'Billing!': must be "),
        ("bad namespace", ["--namespace", "../prod"], "error: --namespace: namespace '../prod': must be "),
        ("no env file", ["--backend", "env", "--namespace", "local"], "error: --backend env needs --env-file"),
        ("zero timeout", ["--timeout", "0"], "error: --timeout must be a positive number of seconds"),
    ],
)
def test_bad_arguments(label: str, argv: list[str], expected: str, marker: list[str]) -> None:
    defaults = {"--service": "orchestrator", "--backend": "vault", "--namespace": "staging"}
    for name, value in defaults.items():
        if name not in argv:
            argv = [*argv, name, value]
    line = one_error(run(base_env(), *argv, "--", *marker))
    assert line.startswith(expected), label


def test_no_command() -> None:
    line = one_error(run(base_env(), "--service", "orchestrator", "--backend", "vault", "--namespace", "staging"))
    assert line == "error: no COMMAND to start: `run ... -- COMMAND [ARGS...]` (or --check)"


def test_a_service_that_reads_nothing(tmp_path: Path, marker: list[str]) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text("version: 1\nservices: [busy, idle]\nsecrets:\n  A_TOKEN: {readers: [busy]}\n")
    argv = ["--service", "idle", "--backend", "vault", "--namespace", "staging", "--manifest", str(manifest)]
    line = one_error(run(base_env(), *argv, "--", *marker))
    assert line == f"error: --service idle: reads no secret in {manifest}; start it without `run`"
