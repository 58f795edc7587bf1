"""`scripts/migrate_secrets.py`: the runbook's Phase 3 script.

The Pulumi CLI cannot run here, so the apply path runs against a recording stack (the `open_stack`
seam) and `verify` is replaced by a recorder; `StdinSecretsWorkspace` is run against a fake `pulumi`
executable that logs its argv and stdin. An audit hook proves the dry run writes no file, starts no
process and opens no socket, and that the apply path starts no process with a value in its argv.
"""

import json
import os
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pulumi import automation as auto

import components.verify
from components.envfile import read_env
from components.manifest import Manifest, Secret, load
from scripts import migrate_secrets as migrate
from tests.conftest import EXAMPLE_ENV, REPO

MANIFEST = REPO / "secrets.manifest.yaml"
ADDR = "http://127.0.0.1:1"  # never contacted: verify and the stack are replaced
TOKEN = "CANARY-vault-token-5d1c"


# --- side-effect guard ----------------------------------------------------------------------------------

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


@dataclass
class SideEffects:
    active: bool = False
    writes: list[str] = field(default_factory=list)
    processes: list[list[str]] = field(default_factory=list)
    connections: list[str] = field(default_factory=list)


_effects = SideEffects()


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _effects.active:
        return
    if event == "open":
        path, mode, flags = args
        if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (flags or 0) & _WRITE_FLAGS:
            _effects.writes.append(str(path))
    elif event in ("os.rename", "os.replace", "os.remove", "os.mkdir", "os.chmod"):
        _effects.writes.append(f"{event} {args[0]}")
    elif event == "subprocess.Popen":
        _effects.processes.append([str(a) for a in args[1]])
    elif event == "socket.connect":
        _effects.connections.append(str(args[1]))


sys.addaudithook(_audit)  # audit hooks cannot be removed; this one only records while a test enables it


@pytest.fixture
def side_effects() -> Iterator[SideEffects]:
    _effects.writes.clear()
    _effects.processes.clear()
    _effects.connections.clear()
    _effects.active = True
    try:
        yield _effects
    finally:
        _effects.active = False


# --- helpers ------------------------------------------------------------------------------------------


def canary(key: str) -> str:
    return f"CANARY-{key.lower()}-9e4b"


@pytest.fixture
def canary_env(tmp_path: Path) -> Path:
    """The example .env with every manifest secret's value replaced by a canary."""
    secrets = set(load(MANIFEST).secrets)
    lines = [f"{k}={canary(k) if k in secrets else e.value}" for k, e in read_env(EXAMPLE_ENV).items()]
    path = tmp_path / "canary.env"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "vault-token"
    path.write_text(TOKEN + "\n", encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VAULT_ADDR", "VAULT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(REPO)


class FakeStack:
    """Records what the script asks of the stack, in order; `up` streams one line as Pulumi would."""

    def __init__(self, name: str, work_dir: Path, up_error: Exception | None = None) -> None:
        self.name, self.work_dir, self.up_error = name, work_dir, up_error
        self.calls: list[tuple[Any, ...]] = []

    def set_config(self, key: str, value: auto.ConfigValue, *, path: bool = False) -> None:
        self.calls.append(("set_config", key, value.value, value.secret, path))

    def up(self, **kwargs: Any) -> None:
        self.calls.append(("up", sorted(kwargs)))
        kwargs["on_output"]("+  vault:kv/secretV2:SecretV2 secrets-DATABASE_PASSWORD create [secret]")
        if self.up_error:
            raise self.up_error


@dataclass
class Recorded:
    stacks: list[FakeStack] = field(default_factory=list)
    verify_args: list[Any] = field(default_factory=list)
    verify_env: list[dict[str, str | None]] = field(default_factory=list)
    verify_code: int = 0


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Recorded:
    rec = Recorded()

    def open_stack(namespace: str, work_dir: Path) -> FakeStack:
        stack = FakeStack(namespace, work_dir)
        rec.stacks.append(stack)
        return stack

    def verify_run(args: Any) -> int:
        rec.verify_args.append(args)
        rec.verify_env.append({k: os.environ.get(k) for k in ("VAULT_ADDR", "VAULT_TOKEN")})
        print("✓ verify OK: 4/4 secrets OK; 6/6 policies OK")
        return rec.verify_code

    monkeypatch.setattr(migrate, "open_stack", open_stack)
    monkeypatch.setattr(components.verify, "run", verify_run)
    return rec


def assert_no_canary(*texts: str) -> None:
    for text in texts:
        assert "CANARY" not in text


# --- dry run ------------------------------------------------------------------------------------------

DRY_RUN_VAULT = """\
examples/.env.example and secrets.manifest.yaml agree.
Would create 4 secrets in Vault (namespace staging):
  secret/staging/alpaca/api_key_id      (ALPACA_API_KEY_ID; readers: execution-gateway, market-data-service)
  secret/staging/alpaca/api_secret_key  (ALPACA_API_SECRET_KEY; readers: execution-gateway, market-data-service)
  secret/staging/database/password      (DATABASE_PASSWORD; readers: signal-service, execution-gateway, orchestrator, risk-manager)
  secret/staging/redis/password         (REDIS_PASSWORD; readers: signal-service, execution-gateway, orchestrator, market-data-service, risk-manager)
Would create 6 Vault policies:
  staging-signal-service-read           (signal-service: read 2 secrets)
  staging-execution-gateway-read        (execution-gateway: read 4 secrets)
  staging-orchestrator-read             (orchestrator: read 2 secrets)
  staging-market-data-service-read      (market-data-service: read 3 secrets)
  staging-risk-manager-read             (risk-manager: read 2 secrets)
  staging-secrets-read                  (operators and verify: read all 4 secrets, list secret/metadata/staging/)
Once deployed, `pulumi preview --stack staging` shows what a run would change.
Dry run: would migrate 4 secrets to Vault (staging namespace); nothing was written.
"""  # noqa: E501


def test_dry_run_lists_secrets_and_policies_and_touches_nothing(
    capsys: pytest.CaptureFixture[str], side_effects: SideEffects
) -> None:
    code = migrate.main(
        ["--env-file", "examples/.env.example", "--backend", "vault", "--namespace", "staging", "--dry-run"]
    )
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert out == DRY_RUN_VAULT
    assert (side_effects.writes, side_effects.processes, side_effects.connections) == ([], [], [])


def test_dry_run_aws_names_secrets_and_iam_policies(
    capsys: pytest.CaptureFixture[str], side_effects: SideEffects
) -> None:
    # `qa` has no stack file, so nothing pins its backend.
    code = migrate.main(["--env-file", str(EXAMPLE_ENV), "--backend", "aws", "--namespace", "qa", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert lines[1] == "Would create 4 secrets in AWS Secrets Manager (namespace qa):"
    assert lines[2].split(maxsplit=1) == [
        "qa/alpaca/api_key_id",
        "(ALPACA_API_KEY_ID; readers: execution-gateway, market-data-service)",
    ]
    assert lines[6] == "Would create 6 IAM policies:"
    assert [line.split()[0] for line in lines[7:13]] == [
        "qa-signal-service-secrets-read",
        "qa-execution-gateway-secrets-read",
        "qa-orchestrator-secrets-read",
        "qa-market-data-service-secrets-read",
        "qa-risk-manager-secrets-read",
        "qa-secrets-read",
    ]
    assert lines[-1] == "Dry run: would migrate 4 secrets to AWS Secrets Manager (qa namespace); nothing was written."
    assert (side_effects.writes, side_effects.processes, side_effects.connections) == ([], [], [])


def test_dry_run_reports_disagreement_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], side_effects: SideEffects
) -> None:
    env = tmp_path / ".env"
    env.write_text("DATABASE_PASSWORD=CANARY-db-1\nNEW_API_TOKEN=CANARY-tok-2\n", encoding="utf-8")
    side_effects.writes.clear()
    code = migrate.main(["--env-file", str(env), "--backend", "vault", "--namespace", "staging", "--dry-run"])
    out, err = capsys.readouterr()
    assert code == 1
    assert f"{env}: ALPACA_API_KEY_ID: manifest secret (alpaca/api_key_id) is missing from the .env" in out
    assert f"{env}:2: NEW_API_TOKEN: in neither secrets nor config (run derive)" in out
    assert out.splitlines()[-1].startswith("Nothing was migrated")
    assert_no_canary(out, err)
    assert side_effects.writes == []


@pytest.mark.parametrize(
    ("label", "text", "where"),
    [
        ("unterminated-quote", 'A=1\nB="never closed\n', ":2: cannot parse"),
        ("duplicate-key", "A=CANARY-1\nA=CANARY-2\n", ":2: duplicate key A (first on line 1)"),
        ("not-utf8", "A=1\nB=\xff\n", ":2: not valid UTF-8"),
    ],
)
def test_bad_env_exits_2_naming_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], label: str, text: str, where: str
) -> None:
    env = tmp_path / f"{label}.env"
    env.write_bytes(text.encode("latin-1"))
    code = migrate.main(["--env-file", str(env), "--backend", "vault", "--namespace", "staging", "--dry-run"])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err.startswith(f"error: {env}{where}") and err.count("\n") == 1
    assert_no_canary(err)


def test_plan_follows_the_stack_settings() -> None:
    manifest = load(MANIFEST)
    vault = migrate.make_plan(
        "vault",
        "staging",
        manifest,
        {"secrets-migration:vaultMount": "kv", "secrets-migration:vaultManageMount": True},
    )
    lines = migrate.plan_lines(vault)
    assert lines[0] == "Would create the KV v2 mount kv/"
    assert lines[2].split()[0] == "kv/staging/alpaca/api_key_id"
    assert lines[-1].endswith("(operators and verify: read all 4 secrets, list kv/metadata/staging/)")

    roles = {"secrets-migration:awsServiceRoles": {"signal-service": "signal-task-role"}}
    aws = migrate.plan_lines(migrate.make_plan("aws", "qa", manifest, roles))
    assert (
        "  qa-signal-service-secrets-read       (signal-service: read 2 secrets; attached to role signal-task-role)"
        in aws
    )


def test_plan_skips_services_that_read_nothing() -> None:
    manifest = Manifest(("reader", "idle"), {"API_TOKEN": Secret("API_TOKEN", "api/token", ("reader",))})
    lines = migrate.plan_lines(migrate.make_plan("aws", "qa", manifest, {}))
    assert [line.split()[0] for line in lines[3:]] == ["qa-reader-secrets-read", "qa-secrets-read"]
    assert not any("idle" in line for line in lines)


def test_aws_on_a_vault_stack_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code = migrate.main(["--env-file", str(EXAMPLE_ENV), "--backend", "aws", "--namespace", "staging", "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: Pulumi.staging.yaml: secrets-migration:backend is vault; --backend aws would")


# --- arguments ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "token_args"),
    [
        ("separate", ["--vault-token", TOKEN]),
        ("equals", [f"--vault-token={TOKEN}"]),
        ("abbreviated", ["--vault-tok", TOKEN]),
    ],
)
def test_token_on_command_line_is_refused(
    capsys: pytest.CaptureFixture[str], side_effects: SideEffects, label: str, token_args: list[str]
) -> None:
    argv = ["--env-file", str(EXAMPLE_ENV), "--backend", "vault", "--namespace", "staging", *token_args]
    code = migrate.main(argv)
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err == f"error: {migrate.TOKEN_REFUSED}\n"
    assert "--vault-token-file" in err and "VAULT_TOKEN" in err
    assert_no_canary(err)
    assert (side_effects.writes, side_effects.processes) == ([], [])


def test_help_explains_the_interface(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        migrate.main(["--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    for text in ("--env-file", "--backend {aws,vault}", "--vault-token-file", "--dry-run", "exit codes:"):
        assert text in out
    assert "--vault-token " not in out.replace("--vault-token-file", "")


def test_missing_token_is_bad_input(capsys: pytest.CaptureFixture[str], recorded: Recorded) -> None:
    code = migrate.main(["--env-file", str(EXAMPLE_ENV), "--backend", "vault", "--namespace", "staging"])
    assert code == 2
    assert capsys.readouterr().err == "error: no Vault token: pass --vault-token-file FILE or set VAULT_TOKEN\n"
    assert recorded.stacks == []


# --- no Pulumi CLI ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("label", "which"), [("not-on-path", None), ("vanished", "/nonexistent/bin/pulumi")])
def test_without_the_cli_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    side_effects: SideEffects,
    label: str,
    which: str | None,
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # `pulumi version` cannot be found by the SDK either
    monkeypatch.setattr(migrate.shutil, "which", lambda name: which)
    monkeypatch.setenv("VAULT_TOKEN", TOKEN)
    code = migrate.main(["--env-file", str(EXAMPLE_ENV), "--backend", "vault", "--namespace", "staging"])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err == f"error: {migrate.NO_CLI}\n"
    assert "https://www.pulumi.com/docs/install/" in err and "--dry-run works without it" in err
    assert side_effects.writes == []


# --- apply path (recording stack) ---------------------------------------------------------------------------


def expected_values() -> list[tuple[Any, ...]]:
    return [
        ("set_config", f"secrets-migration:values.{key}", canary(key), True, True)
        for key in sorted(load(MANIFEST).secrets)
    ]


def test_apply_vault_sets_config_runs_up_then_verify(
    canary_env: Path,
    token_file: Path,
    recorded: Recorded,
    capsys: pytest.CaptureFixture[str],
    side_effects: SideEffects,
) -> None:
    argv = ["--env-file", str(canary_env), "--backend", "vault", "--namespace", "staging"]
    code = migrate.main([*argv, "--vault-addr", ADDR, "--vault-token-file", str(token_file)])
    out, err = capsys.readouterr()
    assert code == 0, err

    [stack] = recorded.stacks
    assert (stack.name, stack.work_dir) == ("staging", REPO)
    assert stack.calls == [
        ("set_config", "secrets-migration:backend", "vault", False, False),
        ("set_config", "secrets-migration:namespace", "staging", False, False),
        ("set_config", "secrets-migration:manifest", "secrets.manifest.yaml", False, False),
        ("set_config", "vault:address", ADDR, False, False),
        *expected_values(),
        ("up", ["color", "on_error", "on_output"]),
    ]

    [args] = recorded.verify_args
    assert (args.backend, args.namespace, args.vault_mount) == ("vault", "staging", "secret")
    assert (args.env_file, args.manifest) == (canary_env, Path("secrets.manifest.yaml"))
    # The token reached verify (and `pulumi up`) through the environment, and only while they ran.
    assert recorded.verify_env == [{"VAULT_ADDR": ADDR, "VAULT_TOKEN": TOKEN}]
    assert "VAULT_TOKEN" not in os.environ

    assert "+  vault:kv/secretV2:SecretV2 secrets-DATABASE_PASSWORD create [secret]" in out  # streamed
    assert out.splitlines()[-1] == "✓ Migrated 4 secrets to Vault (staging namespace)"
    assert_no_canary(out, err)
    assert side_effects.processes == []  # so no value reached any argv


def test_apply_aws_uses_no_vault_settings(
    canary_env: Path, recorded: Recorded, capsys: pytest.CaptureFixture[str], side_effects: SideEffects
) -> None:
    manifest = canary_env.parent / "m.yaml"
    manifest.write_bytes(MANIFEST.read_bytes())
    argv = ["--env-file", str(canary_env), "--backend", "aws", "--namespace", "qa", "--manifest", str(manifest)]
    code = migrate.main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    [stack] = recorded.stacks
    assert stack.calls == [
        ("set_config", "secrets-migration:backend", "aws", False, False),
        ("set_config", "secrets-migration:namespace", "qa", False, False),
        # Outside the project folder: absolute, since the program runs in the project folder.
        ("set_config", "secrets-migration:manifest", str(manifest), False, False),
        *expected_values(),
        ("up", ["color", "on_error", "on_output"]),
    ]
    [args] = recorded.verify_args
    assert (args.backend, args.namespace, args.manifest) == ("aws", "qa", manifest)
    assert recorded.verify_env == [{"VAULT_ADDR": None, "VAULT_TOKEN": None}]
    assert out.splitlines()[-1] == "✓ Migrated 4 secrets to AWS Secrets Manager (qa namespace)"
    assert_no_canary(out, err)
    assert side_effects.processes == []


def test_token_from_environment_is_used_and_restored(
    canary_env: Path, recorded: Recorded, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", TOKEN)
    code = migrate.main(["--env-file", str(canary_env), "--backend", "vault", "--namespace", "staging"])
    assert code == 0, capsys.readouterr().err
    # No --vault-addr: the stack file's vault:address is used for verify and not written again.
    assert recorded.verify_env == [{"VAULT_ADDR": "http://127.0.0.1:8200", "VAULT_TOKEN": TOKEN}]
    assert all(call[1] != "vault:address" for call in recorded.stacks[0].calls)
    assert os.environ["VAULT_TOKEN"] == TOKEN and "VAULT_ADDR" not in os.environ


def test_failed_up_exits_1_without_verify(
    canary_env: Path, recorded: Recorded, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    failure = auto.CommandError(auto.CommandResult("", "error: update failed: 1 resource failed", 255))

    def failing_stack(namespace: str, work_dir: Path) -> FakeStack:
        stack = FakeStack(namespace, work_dir, up_error=failure)
        recorded.stacks.append(stack)
        return stack

    monkeypatch.setattr(migrate, "open_stack", failing_stack)
    code = migrate.main(["--env-file", str(canary_env), "--backend", "aws", "--namespace", "qa"])
    out, err = capsys.readouterr()
    assert code == 1
    assert err.splitlines()[-1] == "error: pulumi up --stack qa failed: update failed: 1 resource failed"
    assert recorded.verify_args == []
    assert "Migrated" not in out
    assert_no_canary(out, err)


def test_stack_that_cannot_be_selected_is_one_line_exit_2(
    canary_env: Path, recorded: Recorded, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    not_logged_in = "error: PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions"

    def no_stack(namespace: str, work_dir: Path) -> FakeStack:
        raise auto.CommandError(auto.CommandResult("", not_logged_in, 255))

    monkeypatch.setattr(migrate, "open_stack", no_stack)
    code = migrate.main(["--env-file", str(canary_env), "--backend", "aws", "--namespace", "qa"])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err == f"error: cannot set up the stack qa: {not_logged_in.removeprefix('error: ')}\n"
    assert recorded.verify_args == []


def test_verify_problem_is_the_exit_code(
    canary_env: Path, recorded: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    recorded.verify_code = 1
    code = migrate.main(["--env-file", str(canary_env), "--backend", "aws", "--namespace", "qa"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "Migrated" not in out
    assert err.splitlines()[-1].startswith("error: verify found problems after pulumi up (exit 1)")


def test_disagreeing_env_writes_no_config(
    tmp_path: Path, recorded: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    env = tmp_path / ".env"
    env.write_text("DATABASE_PASSWORD=CANARY-db\n", encoding="utf-8")
    code = migrate.main(["--env-file", str(env), "--backend", "aws", "--namespace", "qa"])
    assert code == 1
    assert recorded.stacks == []
    assert_no_canary(*capsys.readouterr())


# --- StdinSecretsWorkspace against a fake `pulumi` executable ----------------------------------------------

FAKE_PULUMI = """\
#!{python}
import json, os, sys
args = sys.argv[1:]
if args == ["version"]:
    print("v3.272.0")
    sys.exit(0)
stdin = "" if sys.stdin.isatty() else sys.stdin.read()
with open(os.environ["FAKE_PULUMI_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps({{"argv": args, "stdin": stdin}}) + "\\n")
if os.environ.get("FAKE_PULUMI_FAIL"):
    print("error: the backend refused", file=sys.stderr)
    sys.exit(255)
"""


@pytest.fixture
def fake_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "pulumi-root"
    (root / "bin").mkdir(parents=True)
    exe = root / "bin" / "pulumi"
    exe.write_text(FAKE_PULUMI.format(python=sys.executable), encoding="utf-8")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_PULUMI_LOG", str(log))
    return root


def calls(root: Path) -> list[dict[str, Any]]:
    log = Path(os.environ["FAKE_PULUMI_LOG"])
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()] if log.exists() else []


def workspace(root: Path, cls: type[Any]) -> Any:
    command = auto.PulumiCommand(root=str(root), skip_version_check=True)
    return cls(work_dir=str(root), pulumi_command=command)


@pytest.mark.parametrize(("label", "value"), [("plain", "CANARY-a-1"), ("trailing-newline", "CANARY-b-2\n")])
def test_secret_config_goes_through_stdin(fake_cli: Path, label: str, value: str) -> None:
    ws = workspace(fake_cli, migrate.StdinSecretsWorkspace)
    ws.set_config(
        "staging", "secrets-migration:values.DATABASE_PASSWORD", auto.ConfigValue(value, secret=True), path=True
    )
    [call] = calls(fake_cli)
    assert call["argv"] == [
        "--non-interactive",
        *["config", "set", "--secret", "--stack", "staging", "--path"],
        *["--", "secrets-migration:values.DATABASE_PASSWORD"],
    ]
    # The CLI drops exactly one trailing newline, so the stored value is exactly `value`.
    assert call["stdin"] == value + "\n"


def test_set_all_config_secrets_also_use_stdin(fake_cli: Path) -> None:
    ws = workspace(fake_cli, migrate.StdinSecretsWorkspace)
    values = {f"secrets-migration:values.K{i}": auto.ConfigValue(f"CANARY-k{i}", secret=True) for i in range(2)}
    ws.set_all_config("staging", values, path=True)
    logged = calls(fake_cli)
    assert [c["stdin"] for c in logged] == ["CANARY-k0\n", "CANARY-k1\n"]
    assert_no_canary(*(" ".join(c["argv"]) for c in logged))


def test_plain_config_keeps_the_sdk_path(fake_cli: Path) -> None:
    ws = workspace(fake_cli, migrate.StdinSecretsWorkspace)
    ws.set_config("staging", "secrets-migration:backend", auto.ConfigValue("vault"))
    [call] = calls(fake_cli)
    assert call["argv"][-2:] == ["--", "vault"] and "--plaintext" in call["argv"]


def test_the_sdk_alone_would_put_the_value_in_argv(fake_cli: Path) -> None:
    """Why StdinSecretsWorkspace exists: LocalWorkspace.set_config passes the secret as an argument."""
    ws = workspace(fake_cli, auto.LocalWorkspace)
    ws.set_config("staging", "secrets-migration:values.X", auto.ConfigValue("CANARY-x", secret=True), path=True)
    [call] = calls(fake_cli)
    assert "CANARY-x" in call["argv"]


def test_cli_failure_is_a_command_error_without_the_value(fake_cli: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_PULUMI_FAIL", "1")
    ws = workspace(fake_cli, migrate.StdinSecretsWorkspace)
    with pytest.raises(auto.CommandError) as failure:
        ws.set_config("staging", "secrets-migration:values.X", auto.ConfigValue("CANARY-y", secret=True))
    assert migrate.pulumi_error(failure.value) == "the backend refused"
    assert_no_canary(str(failure.value))
