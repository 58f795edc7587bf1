"""`verify` refuses bad arguments with one line and exit 2 before it contacts any backend.
(Its checks against real servers are in tests/live/test_verify_*.py.)"""

from pathlib import Path

import pytest

from components.cli import main
from tests.conftest import EXAMPLE_ENV, REPO

MANIFEST = str(REPO / "secrets.manifest.yaml")


@pytest.fixture(autouse=True)
def no_backend_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VAULT_ADDR", "VAULT_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")


def one_error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(["verify", "--manifest", MANIFEST, *argv]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1
    return lines[0]


def test_bad_namespace(capsys: pytest.CaptureFixture[str]) -> None:
    line = one_error_line(capsys, ["--backend", "vault", "--namespace", "../prod"])
    assert line.startswith("error: --namespace: namespace '../prod': must be 1-32 lower-case letters and digits")


def test_zero_concurrency(capsys: pytest.CaptureFixture[str]) -> None:
    line = one_error_line(capsys, ["--backend", "vault", "--namespace", "staging", "--concurrency", "0"])
    assert line == "error: --concurrency must be at least 1"


def test_missing_manifest(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["verify", "--backend", "aws", "--namespace", "staging", "--manifest", str(tmp_path / "no.yaml")]) == 2
    assert "no such manifest" in capsys.readouterr().err


def test_env_file_without_a_manifest_secret_names_the_keys(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("ALPACA_API_KEY_ID=CANARY-partial-env-1\n", encoding="utf-8")
    line = one_error_line(capsys, ["--backend", "vault", "--namespace", "staging", "--env-file", str(env)])
    assert line == (
        f"error: {env}: manifest secrets not in this file: ALPACA_API_SECRET_KEY, DATABASE_PASSWORD, REDIS_PASSWORD"
    )
    assert "CANARY" not in line


def test_vault_without_address(capsys: pytest.CaptureFixture[str]) -> None:
    line = one_error_line(capsys, ["--backend", "vault", "--namespace", "staging", "--env-file", str(EXAMPLE_ENV)])
    assert line == "error: VaultConnectionError: no Vault address (set VAULT_ADDR or pass --vault-addr)"


def test_vault_token_is_never_an_argument(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["verify", "--backend", "vault", "--namespace", "staging", "--vault-token", "root"])
    assert exit_.value.code == 2
    assert "unrecognized arguments: --vault-token" in capsys.readouterr().err


def test_aws_without_region(capsys: pytest.CaptureFixture[str]) -> None:
    line = one_error_line(capsys, ["--backend", "aws", "--namespace", "staging"])
    assert line == "error: AWSSecretsManagerError: no AWS region (set AWS_REGION or AWS_DEFAULT_REGION)"


@pytest.mark.parametrize("value", ["0", "-5", "nan"])
def test_timeout_must_be_positive(capsys: pytest.CaptureFixture[str], value: str) -> None:
    line = one_error_line(capsys, ["--backend", "vault", "--namespace", "staging", "--timeout", value])
    assert line == "error: --timeout must be a positive number of seconds"


def test_cli_defaults_are_the_options_defaults() -> None:
    """cli.py spells them out so `--help` does not import the verify package; they must agree."""
    from components.cli import build_parser
    from components.verify.options import DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT

    args = build_parser().parse_args(["verify", "--backend", "vault", "--namespace", "staging"])
    assert (args.timeout, args.concurrency) == (DEFAULT_TIMEOUT, DEFAULT_CONCURRENCY) == (120, 32)


def test_approle_flags_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["verify", "--backend", "vault", "--namespace", "staging", "--no-approle", "--approle-mount", "x"])
    assert exit_.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_bad_approle_mount(capsys: pytest.CaptureFixture[str]) -> None:
    line = one_error_line(capsys, ["--backend", "vault", "--namespace", "staging", "--approle-mount", "../x"])
    assert line == "error: --approle-mount must be a mount path such as approle"
