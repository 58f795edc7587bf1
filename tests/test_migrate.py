"""The migration (`components/migrate.py`, entry point `scripts/migrate_secrets.py`).

The Pulumi CLI cannot run here, so the apply path runs against the recording fake `pulumi` of
bench/migrate_cli_calls.py (first on PATH): it keeps the stack's config in `Pulumi.<stack>.yaml` as the CLI
does and logs every call's argv, environment keys and stdin. The dry run is held against what the real
program registers under the SDK's mocks (tests/harness.py) with the config the migration writes. An audit
hook proves the dry run writes no file, starts no process and opens no socket.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.migrate_cli_calls import TOKEN, VAULT_ADDR, Project, make_project, migrate_with_fake
from components import cli, migrate, naming
from components.dependencies import SETUP_HINT, dependency_hint
from components.envfile import read_env
from components.manifest import Manifest, Secret, dump, load
from tests.conftest import EXAMPLE_ENV, REPO
from tests.harness import run_program

MANIFEST = REPO / "secrets.manifest.yaml"
README = REPO / "README.md"


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
        if isinstance(path, int):  # wrapping a descriptor (a subprocess's pipe), not opening a file
            return
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


def assert_no_canary(*texts: str) -> None:
    for text in texts:
        assert "CANARY" not in text


@pytest.fixture
def canary_env(tmp_path: Path) -> Path:
    """The example .env with every manifest secret's value replaced by a canary."""
    secrets = set(load(MANIFEST).secrets)
    lines = [f"{k}={canary(k) if k in secrets else e.value}" for k, e in read_env(EXAMPLE_ENV).items()]
    path = tmp_path / "canary.env"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VAULT_ADDR", "VAULT_TOKEN", "FAKE_PULUMI_FAIL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(REPO)


def project_with(tmp_path: Path, stack: str, config: dict[str, Any]) -> Path:
    """A project folder holding Pulumi.yaml and a `Pulumi.<stack>.yaml` with `config` (short keys)."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "Pulumi.yaml", project)
    text = yaml.safe_dump({"config": {f"secrets-migration:{k}": v for k, v in config.items()}})
    (project / f"Pulumi.{stack}.yaml").write_text(text, encoding="utf-8")
    return project


def dry_run(*argv: str, project_dir: Path = REPO) -> tuple[int, str, str, list[str]]:
    """(exit code, stdout, stderr, lines) of a dry run, captured here."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = migrate.main([*argv, "--dry-run"], project_dir=project_dir)
    return code, out.getvalue(), err.getvalue(), out.getvalue().splitlines()


def sections(lines: list[str]) -> dict[str, list[str]]:
    """The dry run's rows by section ('secrets', 'policies', 'roles'): the first column of each row."""
    found: dict[str, list[str]] = {}
    current = "other"
    for line in lines:
        if line.startswith("  "):
            found.setdefault(current, []).append(line.split()[0])
        elif "AppRole role" in line:
            current = "roles"
        elif "polic" in line:
            current = "policies"
        elif line.startswith("Would create") and " in " in line:
            current = "secrets"
        else:
            current = "other"
    return found


def readme_block(after: str) -> list[str]:
    """The lines of the README's console block that start with the command line `after`."""
    text = README.read_text(encoding="utf-8")
    start = text.index(after)
    return text[start : text.index("```", start)].splitlines()[1:]


# --- dry run ------------------------------------------------------------------------------------------

README_COMMAND = (
    "$ python scripts/migrate_secrets.py --env-file examples/.env.example --backend vault --namespace staging --dry-run"
)


def test_dry_run_prints_the_readme_example_and_touches_nothing(side_effects: SideEffects) -> None:
    code, _, err, lines = dry_run("--env-file", "examples/.env.example", "--backend", "vault", "--namespace", "staging")
    assert (code, err) == (0, "")
    assert lines == readme_block(README_COMMAND)
    assert "Would create 5 AppRole roles at auth/approle/:" in lines  # staging has vaultAppRole on
    assert (side_effects.writes, side_effects.processes, side_effects.connections) == ([], [], [])


def test_the_script_prints_the_same_as_the_module() -> None:
    script = [sys.executable, str(REPO / "scripts" / "migrate_secrets.py")]
    argv = ["--env-file", "examples/.env.example", "--backend", "vault", "--namespace", "staging", "--dry-run"]
    done = subprocess.run([*script, *argv], cwd=REPO, capture_output=True, text=True, check=False)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == readme_block(README_COMMAND)


def test_the_runbook_shows_the_same_dry_run() -> None:
    text = (REPO / "docs" / "runbook.md").read_text(encoding="utf-8")
    start = text.index("```\n", text.index("With `examples/.env.example` it prints:")) + 4
    shown = [line.removeprefix("   ") for line in text[start : text.index("   ```", start)].splitlines()]
    _, _, _, lines = dry_run("--env-file", "examples/.env.example", "--backend", "vault", "--namespace", "staging")
    assert shown == lines


def test_dry_run_aws_names_secrets_and_iam_policies(side_effects: SideEffects) -> None:
    # `qa` has no stack file, so nothing pins its backend.
    code, _, _, lines = dry_run("--env-file", str(EXAMPLE_ENV), "--backend", "aws", "--namespace", "qa")
    assert code == 0
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
    assert not any("AppRole" in line for line in lines)
    assert lines[-1] == "Dry run: would migrate 4 secrets to AWS Secrets Manager (qa namespace); nothing was written."
    assert (side_effects.writes, side_effects.processes, side_effects.connections) == ([], [], [])


IDLE_AND_NARROW = Manifest(
    ("reader", "idle", "other"),
    {
        "API_TOKEN": Secret("API_TOKEN", "api/token", ("reader",)),
        "DB_PASSWORD": Secret("DB_PASSWORD", "db/password", ("reader", "other")),
    },
)


@pytest.mark.parametrize(
    ("label", "stack", "backend", "manifest"),
    [
        ("staging-approle", "staging", "vault", None),
        ("local-no-approle", "local", "vault", None),
        ("qa-aws", "qa", "aws", None),
        ("staging-idle-service", "staging", "vault", IDLE_AND_NARROW),
        ("qa-aws-idle-service", "qa", "aws", IDLE_AND_NARROW),
    ],
)
def test_dry_run_lists_what_the_program_registers(
    tmp_path: Path, label: str, stack: str, backend: str, manifest: Manifest | None
) -> None:
    """The dry run and the program, fed the config the migration writes, name the same resources; and the
    program reads every value from `migratedValues` (over the local stack's envFile too)."""
    manifest_file = MANIFEST
    if manifest is not None:
        manifest_file = tmp_path / "manifest.yaml"
        manifest_file.write_text(dump(manifest), encoding="utf-8")
    secrets = load(manifest_file).secrets
    values = {key: canary(key) for key in secrets}
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
    code, _, _, lines = dry_run(
        "--env-file", str(env_file), "--backend", backend, "--namespace", stack, "--manifest", str(manifest_file)
    )
    assert code == 0
    planned = sections(lines)

    config = {"backend": backend, "namespace": stack, "manifest": str(manifest_file)}
    run = run_program(
        stack,
        {**config, "migratedValues": json.dumps(values)},
        secret_keys=["migratedValues"],
        use_stack_file=stack != "qa",
    )
    if backend == "vault":
        registered = run.of_type(naming.VAULT_SECRET)
        assert sorted(planned["secrets"]) == sorted(f"{r.inputs['mount']}/{r.inputs['name']}" for r in registered)
        assert {json.loads(r.inputs["dataJson"])["value"] for r in registered} == set(values.values())
        policies = run.of_type(naming.VAULT_POLICY)
        roles = sorted(r.inputs["roleName"] for r in run.of_type(naming.VAULT_APPROLE))
        assert sorted(planned.get("roles", [])) == roles
        assert bool(roles) == (stack == "staging")
    else:
        assert sorted(planned["secrets"]) == sorted(r.inputs["name"] for r in run.of_type(naming.AWS_SECRET))
        versions = run.of_type(naming.AWS_SECRET_VERSION)
        assert {r.inputs["secretString"] for r in versions} == set(values.values())
        policies = run.of_type(naming.IAM_POLICY)
    assert sorted(planned["policies"]) == sorted(r.inputs["name"] for r in policies)
    assert not any("idle" in name for name in planned["policies"])


def test_a_value_set_by_hand_wins_over_the_migrated_one() -> None:
    """`pulumi config set --secret --path 'values.KEY'` after a migration still edits that one value."""
    secrets = load(MANIFEST).secrets
    migrated = {key: canary(key) for key in secrets}
    config = {"backend": "vault", "namespace": "staging", "migratedValues": json.dumps(migrated)}
    config["values"] = json.dumps({"DATABASE_PASSWORD": "CANARY-by-hand"})
    run = run_program("staging", config, secret_keys=["migratedValues", "values"])
    stored = {r.inputs["name"]: json.loads(r.inputs["dataJson"])["value"] for r in run.of_type(naming.VAULT_SECRET)}
    assert stored["staging/database/password"] == "CANARY-by-hand"
    assert stored["staging/redis/password"] == canary("REDIS_PASSWORD")


def test_plan_follows_the_stack_settings(tmp_path: Path) -> None:
    project = project_with(
        tmp_path,
        "staging",
        {
            "backend": "vault",
            "vaultMount": "kv",
            "vaultManageMount": True,
            "vaultAppRoleMount": "apps",
            "vaultManageAppRoleMount": True,
        },
    )
    args = ["--env-file", str(EXAMPLE_ENV), "--backend", "vault", "--namespace", "staging", "--manifest", str(MANIFEST)]
    code, _, _, lines = dry_run(*args, project_dir=project)
    assert code == 0
    assert lines[1] == "Would create the KV v2 mount kv/"
    assert lines[3].split()[0] == "kv/staging/alpaca/api_key_id"
    assert lines[13].endswith("(operators and verify: read all 4 secrets, list kv/metadata/staging/)")
    assert lines[14:16] == [
        "Would enable the AppRole auth method at apps/",
        "Would create 5 AppRole roles at auth/apps/:",
    ]


def test_plan_shows_aws_role_attachments(tmp_path: Path) -> None:
    project = project_with(tmp_path, "qa", {"awsServiceRoles": {"signal-service": "signal-task-role"}})
    args = ["--env-file", str(EXAMPLE_ENV), "--backend", "aws", "--namespace", "qa", "--manifest", str(MANIFEST)]
    code, _, _, lines = dry_run(*args, project_dir=project)
    assert code == 0
    assert (
        "  qa-signal-service-secrets-read       (signal-service: read 2 secrets; attached to role signal-task-role)"
        in lines
    )


@pytest.mark.parametrize(
    ("label", "backend", "manifest", "expected"),
    [
        (
            "one-of-each",
            "vault",
            Manifest(("reader",), {"API_TOKEN": Secret("API_TOKEN", "api/token", ("reader",))}),
            ["Would create 1 secret in Vault", "Would create 2 Vault policies:", "Would create 1 AppRole role at"],
        ),
        (
            "vault-namespace-policy-only",
            "vault",
            Manifest(("idle",), {"API_TOKEN": Secret("API_TOKEN", "api/token", ())}),
            ["Would create 1 secret in Vault", "Would create 1 Vault policy:"],
        ),
        (
            "aws-namespace-policy-only",
            "aws",
            Manifest(("idle",), {"API_TOKEN": Secret("API_TOKEN", "api/token", ())}),
            ["Would create 1 secret in AWS", "Would create 1 IAM policy:"],
        ),
    ],
)
def test_counts_are_singular_for_one(
    tmp_path: Path, label: str, backend: str, manifest: Manifest, expected: list[str]
) -> None:
    manifest_file = tmp_path / "manifest.yaml"
    manifest_file.write_text(dump(manifest), encoding="utf-8")
    env_file = tmp_path / ".env"
    env_file.write_text("API_TOKEN=CANARY-one\n", encoding="utf-8")
    args = ["--env-file", str(env_file), "--backend", backend, "--namespace", "staging" if backend == "vault" else "qa"]
    code, out, _, lines = dry_run(*args, "--manifest", str(manifest_file))
    assert code == 0
    headers = [line for line in lines if line.startswith("Would create")]
    assert [h[: len(e)] for h, e in zip(headers, expected, strict=True)] == expected
    assert "1 secrets" not in out and "1 policies" not in out and "1 roles" not in out
    assert_no_canary(out)


def test_aws_on_a_vault_stack_is_refused(side_effects: SideEffects) -> None:
    code, out, err, _ = dry_run("--env-file", str(EXAMPLE_ENV), "--backend", "aws", "--namespace", "staging")
    assert (code, out) == (2, "")
    assert err.startswith("error: Pulumi.staging.yaml: secrets-migration:backend is vault; --backend aws would")
    assert side_effects.writes == []


def test_bad_stack_config_is_one_line_naming_the_key(tmp_path: Path) -> None:
    project = project_with(tmp_path, "staging", {"backend": "vault", "vaultAppRoleTokenTtl": "soon"})
    args = ["--env-file", str(EXAMPLE_ENV), "--backend", "vault", "--namespace", "staging", "--manifest", str(MANIFEST)]
    code, out, err, _ = dry_run(*args, project_dir=project)
    assert (code, out) == (2, "")
    assert err == "error: stack staging: secrets-migration:vaultAppRoleTokenTtl: must be a whole number\n"


def test_dry_run_reports_disagreement_and_exits_1(tmp_path: Path, side_effects: SideEffects) -> None:
    env = tmp_path / ".env"
    env.write_text("DATABASE_PASSWORD=CANARY-db-1\nNEW_API_TOKEN=CANARY-tok-2\n", encoding="utf-8")
    side_effects.writes.clear()
    code, out, err, lines = dry_run("--env-file", str(env), "--backend", "vault", "--namespace", "staging")
    assert code == 1
    assert f"{env}: ALPACA_API_KEY_ID: manifest secret (alpaca/api_key_id) is missing from the .env" in out
    assert f"{env}:2: NEW_API_TOKEN: in neither secrets nor config (run derive)" in out
    assert lines[-1].startswith("Nothing was migrated")
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
def test_bad_env_is_one_line_exit_2(tmp_path: Path, label: str, text: str, where: str) -> None:
    env = tmp_path / ".env"
    env.write_bytes(text.encode("latin-1"))
    code, out, err, _ = dry_run("--env-file", str(env), "--backend", "vault", "--namespace", "staging")
    assert (code, out) == (2, "")
    assert err.startswith(f"error: {env}{where}") and err.count("\n") == 1
    assert_no_canary(err)


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
    assert "--vault-token-file" in err and "VAULT_TOKEN" in err and TOKEN not in err
    assert (side_effects.writes, side_effects.processes) == ([], [])


def test_the_script_refuses_a_token_without_echoing_it() -> None:
    argv = ["--env-file", str(EXAMPLE_ENV), "--backend", "vault", "--namespace", "staging", "--vault-token", TOKEN]
    script = [sys.executable, str(REPO / "scripts" / "migrate_secrets.py")]
    done = subprocess.run([*script, *argv], cwd=REPO, capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"error: {migrate.TOKEN_REFUSED}\n")


def test_help_explains_the_interface(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        migrate.main(["--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    for text in ("--env-file", "--backend {aws,vault}", "--vault-token-file", "--dry-run", "exit codes:"):
        assert text in out
    assert "--vault-token " not in out.replace("--vault-token-file", "")


@pytest.mark.parametrize(
    ("label", "environment", "message"),
    [
        ("no-token", {"VAULT_ADDR": VAULT_ADDR}, "no Vault token: pass --vault-token-file FILE or set VAULT_TOKEN"),
        ("no-address", {"VAULT_TOKEN": TOKEN}, "no Vault address: pass --vault-addr URL or set VAULT_ADDR"),
    ],
)
def test_missing_connection_is_bad_input(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    side_effects: SideEffects,
    label: str,
    environment: dict[str, str],
    message: str,
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    code = migrate.main(["--env-file", str(EXAMPLE_ENV), "--backend", "vault", "--namespace", "staging"])
    assert (code, capsys.readouterr().err) == (2, f"error: {message}\n")
    assert (side_effects.writes, side_effects.processes) == ([], [])


def test_vault_flags_on_aws_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--env-file", str(EXAMPLE_ENV), "--backend", "aws", "--namespace", "qa", "--vault-addr", VAULT_ADDR]
    assert migrate.main(argv) == 2
    assert capsys.readouterr().err == "error: --vault-addr and --vault-token-file only apply to --backend vault\n"


@pytest.mark.parametrize(("label", "which"), [("not-on-path", None), ("vanished", "/nonexistent/bin/pulumi")])
def test_without_the_cli_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    side_effects: SideEffects,
    label: str,
    which: str | None,
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # subprocess cannot find `pulumi` either
    monkeypatch.setattr(migrate.shutil, "which", lambda name: which)
    monkeypatch.setenv("VAULT_TOKEN", TOKEN)
    monkeypatch.setenv("VAULT_ADDR", VAULT_ADDR)
    code = migrate.main(["--env-file", str(EXAMPLE_ENV), "--backend", "vault", "--namespace", "staging"])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err == f"error: {migrate.NO_CLI}\n"
    assert "https://www.pulumi.com/docs/install/" in err and "--dry-run works without it" in err
    assert side_effects.writes == []


# --- apply path, against the recording fake `pulumi` ---------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path, 12)


def commands(calls: list[dict[str, Any]]) -> list[list[str]]:
    return [call["argv"] for call in calls]


def expected_calls(stack: str, backend: str, manifest: str) -> list[list[str]]:
    plain = [f"secrets-migration:backend={backend}", f"secrets-migration:namespace={stack}"]
    plain.append(f"secrets-migration:manifest={manifest}")
    return [
        ["--non-interactive", "stack", "select", "--create", "--stack", stack],
        ["--non-interactive", "config", "set-all", *[a for p in plain for a in ("--plaintext", p)], "--stack", stack],
        ["--non-interactive", "config", "set", "--secret", "secrets-migration:migratedValues", "--stack", stack],
        ["--non-interactive", "config", "rm-all", "secrets-migration:values", "vault:address", "--stack", stack],
        ["--non-interactive", "up", "--yes", "--skip-preview", "--stack", stack],
    ]


@pytest.mark.parametrize("size", [1, 250])
def test_apply_sets_every_value_through_stdin_in_five_calls(tmp_path: Path, size: int) -> None:
    project = make_project(tmp_path, size)
    _effects.writes.clear()
    _effects.processes.clear()
    _effects.active = True
    try:
        outcome = migrate_with_fake(project)
    finally:
        _effects.active = False

    assert outcome.code == 0, outcome.output
    assert commands(outcome.calls) == expected_calls("staging", "vault", "secrets.manifest.yaml")
    # Only `config set` read stdin, and what it stored is exactly the .env's secrets.
    assert [c["stdin_chars"] > 0 for c in outcome.calls] == [False, False, True, False, False]
    assert outcome.migrated == project.values
    assert outcome.leaks == []
    # The token and address reached `pulumi up` only; the migration process itself wrote nothing.
    assert [("VAULT_TOKEN" in c["env_keys"], "VAULT_ADDR" in c["env_keys"]) for c in outcome.calls] == [
        (False, False)
    ] * 4 + [(True, True)]
    bench = (str(project.root / "fake"), str(project.root / "output.txt"), f"os.mkdir {project.root / 'tmp'}")
    assert [w for w in _effects.writes if not any(b in w for b in bench)] == []
    assert [p[0] for p in _effects.processes] == ["pulumi"] * 5
    # The stack file: plain settings, the secret map, and nothing that would override it.
    config = yaml.safe_load(project.stack_file.read_text(encoding="utf-8"))["config"]
    assert config["secrets-migration:backend"] == "vault" and config["secrets-migration:namespace"] == "staging"
    assert "secrets-migration:values" not in config and "vault:address" not in config
    assert set(config["secrets-migration:migratedValues"]) == {"secure"}
    assert (
        outcome.output.splitlines()[-1]
        == f"✓ Migrated {size} secret{'s' if size > 1 else ''} to Vault (staging namespace)"
    )


def test_verify_runs_through_the_cli_with_vault_addr_and_token(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[list[str], dict[str, str | None]]] = []

    def recording_cli(argv: list[str]) -> int:
        cli.build_parser().parse_args(argv)  # the argv verify gets is one the CLI accepts
        seen.append((argv, {k: os.environ.get(k) for k in ("VAULT_ADDR", "VAULT_TOKEN")}))
        return 0

    monkeypatch.setattr(cli, "main", recording_cli)
    outcome = migrate_with_fake(project, verify=migrate.verify_stack)
    assert outcome.code == 0, outcome.output
    [(argv, env)] = seen
    assert argv == [
        *["verify", "--backend", "vault", "--namespace", "staging", "--manifest", str(project.manifest)],
        *["--env-file", str(project.env_file), "--vault-mount", "secret"],
    ]
    assert env == {"VAULT_ADDR": VAULT_ADDR, "VAULT_TOKEN": TOKEN}
    assert "VAULT_TOKEN" not in os.environ and "VAULT_ADDR" not in os.environ


def test_apply_aws_gives_up_no_vault_settings(project: Project, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "m.yaml"
    outside.parent.mkdir()
    outside.write_bytes(project.manifest.read_bytes())
    outcome = migrate_with_fake(project, backend="aws", stack="qa", manifest=outside)
    assert outcome.code == 0, outcome.output
    # Outside the project folder: absolute, since the program runs in the project folder.
    assert commands(outcome.calls) == expected_calls("qa", "aws", str(outside))
    assert not any("VAULT_TOKEN" in c["env_keys"] for c in outcome.calls)
    assert outcome.migrated == project.values and outcome.leaks == []
    assert outcome.output.splitlines()[-1] == "✓ Migrated 12 secrets to AWS Secrets Manager (qa namespace)"


def test_failed_up_exits_1_without_verify(project: Project) -> None:
    verified: list[migrate.Plan] = []
    outcome = migrate_with_fake(project, fail="up", verify=lambda plan: verified.append(plan) or 0)
    assert outcome.code == 1
    assert outcome.output.splitlines()[-1] == (
        "error: pulumi up --stack staging failed (exit 255); its output above says why"
    )
    assert "error: the backend refused (FAKE_PULUMI_FAIL)" in outcome.output  # the CLI's own, shown as is
    assert verified == [] and "Migrated" not in outcome.output and outcome.leaks == []


@pytest.mark.parametrize("failing", ["stack select", "config set", "config rm-all"])
def test_a_failed_config_call_is_one_line_exit_2(project: Project, failing: str) -> None:
    outcome = migrate_with_fake(project, fail=failing)
    assert outcome.code == 2
    assert outcome.output == "error: cannot set up the stack staging: the backend refused (FAKE_PULUMI_FAIL)\n"
    assert outcome.calls[-1]["argv"][1:3] == failing.split()
    assert all(c["argv"][1] != "up" for c in outcome.calls) and outcome.leaks == []


def test_verify_problem_is_the_exit_code(project: Project) -> None:
    outcome = migrate_with_fake(project, verify=lambda plan: 1)
    assert outcome.code == 1
    assert "Migrated" not in outcome.output
    assert outcome.output.splitlines()[-1].startswith("error: verify found problems after pulumi up (exit 1)")


def test_disagreeing_env_starts_no_cli(project: Project) -> None:
    project.env_file.write_text("SVC0000_TOKEN=CANARY-only-one\n", encoding="utf-8")
    outcome = migrate_with_fake(project)
    assert outcome.code == 1
    assert outcome.calls == []
    assert "Nothing was migrated" in outcome.output


# --- missing dependencies ------------------------------------------------------------------------------------

HINT = re.compile(rf"error: missing dependency '(\w+)' — {re.escape(SETUP_HINT)}\n")


@pytest.mark.parametrize(
    ("label", "argv"), [("cli", ["-m", "components", "--help"]), ("script", ["scripts/migrate_secrets.py", "--help"])]
)
def test_without_dependencies_one_line_and_exit_2(label: str, argv: list[str]) -> None:
    # -S: no site-packages, as a Python outside the virtualenv; -E: no PYTHONPATH to find them either.
    done = subprocess.run([sys.executable, "-S", "-E", *argv], cwd=REPO, capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout) == (2, "")
    found = HINT.fullmatch(done.stderr)
    assert found is not None, done.stderr
    assert found.group(1) in ("yaml", "dotenv")


def test_a_missing_module_of_our_own_keeps_its_traceback() -> None:
    with pytest.raises(ModuleNotFoundError), dependency_hint():
        raise ModuleNotFoundError("No module named 'components.nope'", name="components.nope")


# --- the README's first five minutes ---------------------------------------------------------------------------


def expand(expected: list[str], actual: list[str]) -> bool:
    """`expected` matches `actual`, a `...` line standing for any run of lines."""
    if not expected:
        return not actual
    if expected[0] == "...":
        return any(expand(expected[1:], actual[i:]) for i in range(len(actual) + 1))
    return bool(actual) and expected[0] == actual[0] and expand(expected[1:], actual[1:])


def test_first_five_minutes_as_written(tmp_path: Path) -> None:
    """Every command of the README's "First five minutes" block, run in a fresh copy, prints what it shows."""
    copy = tmp_path / "clone"
    keep = ("components", "scripts", "examples")
    for name in keep:
        shutil.copytree(REPO / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    for path in [*REPO.glob("Pulumi*.yaml"), MANIFEST]:
        shutil.copy(path, copy)
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## First five minutes") :]
    block = section[section.index("```console\n") + len("```console\n") : section.index("```\n\n")]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

    commands: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            commands.append((line[2:].split("  #")[0].strip(), []))
        else:
            commands[-1][1].append(line)
    assert commands[0][0] == "source .venv/bin/activate"
    for command, expected in commands[1:]:  # the venv's python is first on PATH instead
        done = subprocess.run(command, shell=True, cwd=copy, env=env, capture_output=True, text=True, check=False)
        assert (done.returncode, done.stderr) == (0, ""), command
        assert expand(expected, done.stdout.splitlines()), f"{command}:\n{done.stdout}"
    assert (copy / "secrets.manifest.yaml").read_bytes() == MANIFEST.read_bytes()  # derive changed nothing


def test_unknown_arguments_are_named_never_echoed(capsys: pytest.CaptureFixture[str]) -> None:
    canary = "s.CANARY-unknown-argument-value"
    with pytest.raises(SystemExit) as exited:
        migrate.main(["--env-file", ".env", "--backend", "vault", "--namespace", "staging", "--bogus", canary])
    out, err = capsys.readouterr()
    assert exited.value.code == 2
    assert "--bogus" in err and canary not in out + err
