"""`python -m components adopt`: the import file's shape, and bad input or an unreachable backend give one
line and exit 2, with nothing written. (Found/not found against real servers: tests/live/test_lifecycle.py
and test_day_two.py.)"""

from pathlib import Path

import pytest

from components import naming
from components.adopt import import_file
from components.cli import main
from components.layout import layout
from components.manifest import load
from tests.conftest import REPO


def test_import_file_names_the_store_first_and_parents_everything_to_it() -> None:
    plan = layout(load(REPO / "secrets.manifest.yaml"), "aws", "staging")
    found = [(naming.AWS_SECRET, "secrets/redis/password", "arn:aws:secretsmanager:us-east-1:1:secret:staging/r-x")]
    spec = import_file(plan, found)
    assert spec == {
        "nameTable": {},
        "resources": [
            {"type": naming.AWS_STORE_TYPE, "name": "secrets", "component": True},
            {"type": naming.AWS_SECRET, "name": "secrets/redis/password", "id": found[0][2], "parent": "secrets"},
        ],
    }


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--backend", "vault", "--namespace", "Bad-NS"], {}, "--namespace: namespace 'Bad-NS'"),
        (["--backend", "vault", "--namespace", "staging"], {}, "set VAULT_ADDR and VAULT_TOKEN"),
        (
            ["--backend", "vault", "--namespace", "staging"],
            {"VAULT_ADDR": "http://127.0.0.1:1", "VAULT_TOKEN": "x"},
            "VaultConnectionError: cannot reach Vault at http://127.0.0.1:1",
        ),
        (["--backend", "aws", "--namespace", "staging"], {}, "no AWS region"),
        (["--backend", "aws", "--namespace", "staging", "--manifest", "nope.yaml"], {}, "nope.yaml"),
    ],
    ids=["bad-namespace", "no-vault-address", "vault-unreachable", "no-aws-region", "missing-manifest"],
)
def test_bad_input_is_one_line_and_writes_nothing(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    argv: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    for name in ("VAULT_ADDR", "VAULT_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(REPO)
    out_file = tmp_path / "import.json"
    assert main(["adopt", *argv, "--out", str(out_file)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and message in err
    assert not out_file.exists()
