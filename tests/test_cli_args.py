"""Command-line errors never echo a value (issue 9.13): a token given as a flag is refused without being
shown, and argparse's own messages (unrecognized arguments, invalid choice, invalid number, ignored explicit
argument, ambiguous option) name flags only. Every subcommand is covered: the parser is one class."""

import subprocess
import sys

import pytest

from components.cli import build_parser, is_credential_flag, main
from tests.conftest import REPO

CANARY = "hvs.CANARY-7f3a9e-token"


def usage_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Parse `argv`; it must be a usage error (exit 2, nothing on stdout). Returns the error line."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    out, err = capsys.readouterr()
    assert exit_.value.code == 2
    assert out == ""
    assert CANARY not in err
    lines = [line for line in err.splitlines() if ": error: " in line]
    assert len(lines) == 1, err
    return lines[0].split(": error: ", 1)[1]


COMMANDS = {
    "derive": ["derive", "--env-file", ".env"],
    "check": ["check", "--env-file", ".env"],
    "template": ["template", "--env-file", ".env"],
    "verify": ["verify", "--backend", "vault", "--namespace", "staging"],
    "run": ["run", "--service", "api", "--backend", "vault", "--namespace", "staging"],
    "gate": ["gate", "preview.json"],
    "demo": ["demo"],
    "adopt": ["adopt", "--backend", "vault", "--namespace", "staging"],
}
TOKEN_FLAGS = [
    ["--vault-token", CANARY],
    [f"--vault-token={CANARY}"],
    ["--token", CANARY],
    [f"--token={CANARY}"],
    ["--vault-tok", CANARY],  # an abbreviation
    ["--tok", CANARY],
    ["--bao-token", CANARY],
    ["--aws-session-token", CANARY],
    ["--db-password", CANARY],
    ["--secret-id", CANARY],
    ["--vault-secret-id", CANARY],
]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(
    "flag", TOKEN_FLAGS, ids=[f[0].split("=")[0] + ("=" if "=" in f[0] else "") for f in TOKEN_FLAGS]
)
def test_token_flags_are_refused_without_echoing_the_token(capsys, command, flag):
    line = usage_error(capsys, [*COMMANDS[command], *flag])
    name = flag[0].split("=")[0]
    assert line.startswith(f"unrecognized arguments: {name} ")
    assert "never taken as an argument" in line and "environment" in line


def test_a_token_flag_is_refused_even_before_the_command_is_known(capsys):
    line = usage_error(capsys, ["--vault-token", CANARY, "verify"])
    assert line.startswith("unrecognized arguments: --vault-token ")


VALUE_ERRORS = [
    (
        "unknown flag with a value",
        ["verify", "--backend", "vault", "--namespace", "s", "--frobnicate", CANARY],
        "unrecognized arguments: --frobnicate; 1 unexpected argument (values are not shown)",
    ),
    (
        "unknown flag with =value",
        ["derive", "--env-file", ".env", f"--frobnicate={CANARY}"],
        "unrecognized arguments: --frobnicate (values are not shown)",
    ),
    ("positional junk", ["gate", "preview.json", CANARY], "1 unexpected argument (values are not shown)"),
    (
        "two positional junks",
        ["check", "--env-file", ".env", CANARY, CANARY + "2"],
        "2 unexpected arguments (values are not shown)",
    ),
    (
        "invalid choice",
        ["verify", "--backend", CANARY, "--namespace", "s"],
        "argument --backend: invalid choice (choose from 'vault', 'aws')",
    ),
    (
        "invalid number",
        ["verify", "--backend", "vault", "--namespace", "s", "--concurrency", CANARY],
        "argument --concurrency: invalid int value",
    ),
    (
        "value for a switch",
        ["derive", "--env-file", ".env", f"--prune={CANARY}"],
        "argument --prune: ignored explicit argument",
    ),
    (
        "unknown command",
        [CANARY],
        "argument COMMAND: invalid choice "
        "(choose from 'derive', 'check', 'template', 'verify', 'run', 'gate', 'demo', 'adopt')",
    ),
    # Abbreviations are off: `--vault=X` is not "ambiguous: --vault=X could match ...", and a future
    # `--token-file` could never swallow `--tok X`.
    (
        "prefix of two flags",
        ["verify", "--backend", "vault", "--namespace", "s", f"--vault={CANARY}"],
        "unrecognized arguments: --vault (values are not shown)",
    ),
]


@pytest.mark.parametrize(("label", "argv", "expected"), VALUE_ERRORS, ids=[c[0] for c in VALUE_ERRORS])
def test_usage_errors_name_flags_never_values(capsys, label, argv, expected):
    assert usage_error(capsys, argv) == expected, label


def test_every_subcommand_uses_the_same_parser_class():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    assert set(subparsers.choices) == set(COMMANDS)
    for sub in subparsers.choices.values():
        assert type(sub) is type(parser) and sub.allow_abbrev is False


def test_no_real_flag_is_taken_for_a_credential_flag():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    flags = {flag for sub in subparsers.choices.values() for a in sub._actions for flag in a.option_strings}
    assert {"--secret", "--env-file", "--vault-addr", "--allow-delete"} <= flags
    assert [flag for flag in flags if is_credential_flag(flag)] == []


def test_a_real_flag_that_names_a_token_is_not_refused(capsys):
    """Parser is reusable: a command with `--vault-token-file` keeps it (only unknown credential flags go)."""
    from components.cli import Parser

    parser = Parser(prog="p")
    parser.add_argument("--vault-token-file")
    assert parser.parse_args(["--vault-token-file", "/run/token"]).vault_token_file == "/run/token"
    with pytest.raises(SystemExit):
        parser.parse_args(["--vault-token", CANARY])
    err = capsys.readouterr().err
    assert "unrecognized arguments: --vault-token " in err and CANARY not in err


def test_required_arguments_are_still_named(capsys):
    assert usage_error(capsys, ["derive"]) == "the following arguments are required: --env-file"


def test_through_a_real_process_the_token_is_not_echoed():
    result = subprocess.run(
        [sys.executable, "-m", "components", "verify", "--vault-token", CANARY],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert CANARY not in result.stdout + result.stderr
    assert "--vault-token" in result.stderr
