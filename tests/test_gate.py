"""`python -m components gate`: the preview gate on `pulumi preview --json` fixtures (format: pulumi-sdk.md §6)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from components.cli import main
from components.gate import env_key_of, parse
from tests.conftest import REPO

FIXTURES = REPO / "tests" / "fixtures" / "preview"
# Strings the fixtures carry in config, inputs and diagnostics: none may reach the output.
NEVER_PRINTED = ["[secret]", "CANARY", "vault.prod.example.com", "capabilities", "arn:aws:secretsmanager"]

CASES = [
    # label, fixture, flags, exit code, fragments the output must contain
    ("no-changes", "no-changes", ["--protected"], 0, ["No resource changes.", "**PASS**"]),
    ("first-deploy", "first-deploy", ["--protected"], 0, ["| `vault:kv/secretV2:SecretV2` | 4 | 0 | 0 | 0 |"]),
    ("secret-added", "secret-added", ["--protected"], 0, ["| `vault:index/policy:Policy` | 0 | 1 | 0 | 0 |"]),
    ("value-updated", "value-updated", ["--protected"], 0, ["| `vault:kv/secretV2:SecretV2` | 0 | 1 | 0 | 0 |"]),
    (
        "path-edited-replace",
        "path-edited",
        ["--protected"],
        1,
        [
            "| `vault:kv/secretV2:SecretV2` | 0 | 0 | 1 | 0 |",
            "**FAIL**",
            "`DATABASE_PASSWORD` (secrets-DATABASE_PASSWORD)",
        ],
    ),
    (
        "path-edited-allowed",
        "path-edited",
        ["--protected", "--allow-delete", "DATABASE_PASSWORD"],
        0,
        ["**PASS**: deletes/replaces allowed by --allow-delete: `DATABASE_PASSWORD`"],
    ),
    (
        "secret-removed",
        "secret-removed",
        ["--protected"],
        1,
        ["delete: `REDIS_PASSWORD`", "--allow-delete REDIS_PASSWORD"],
    ),
    ("secret-removed-allowed", "secret-removed", ["--protected", "--allow-delete", "REDIS_PASSWORD"], 0, ["**PASS**"]),
    (
        "secret-removed-other-key-allowed",
        "secret-removed",
        ["--protected", "--allow-delete", "DATABASE_PASSWORD"],
        1,
        ["**FAIL**", "`REDIS_PASSWORD`"],
    ),
    ("secret-removed-unprotected", "secret-removed", [], 0, ["stack not protected", "| 0 | 0 | 0 | 1 |"]),
    (
        "aws-secret-and-version-removed",
        "aws-secret-removed",
        ["--protected"],
        1,
        ["(secrets-REDIS_PASSWORD-version)", "(secrets-REDIS_PASSWORD)", "2 resource(s)"],
    ),
    (
        "aws-secret-and-version-allowed",
        "aws-secret-removed",
        ["--protected", "--allow-delete", "REDIS_PASSWORD"],
        0,
        [],
    ),
    (
        "replacement-steps-counted-once",
        "replacement-steps",
        ["--protected"],
        1,
        ["| `aws:iam/policy:Policy` | 0 | 0 | 1 | 0 |", "`secrets-orchestrator-read`"],
    ),
    (
        "policy-allowed-by-logical-name",
        "replacement-steps",
        ["--protected", "--allow-delete", "secrets-orchestrator-read"],
        0,
        ["**PASS**"],
    ),
    ("diagnostic-error", "diagnostic-error", [], 1, ["**FAIL**: 1 error diagnostic(s) from `secrets-GITHUB_TOKEN`"]),
]


@pytest.mark.parametrize(("fixture", "flags", "code", "fragments"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_gate(
    capsys: pytest.CaptureFixture[str], fixture: str, flags: list[str], code: int, fragments: list[str]
) -> None:
    assert main(["gate", str(FIXTURES / f"{fixture}.json"), *flags]) == code
    out, err = capsys.readouterr()
    assert err == ""
    for fragment in fragments:
        assert fragment in out
    verdict = [line for line in out.splitlines() if line.startswith("**")]
    assert len(verdict) == 1 and verdict[0].startswith("**PASS**" if code == 0 else "**FAIL**")
    assert not [s for s in NEVER_PRINTED if s in out]


def test_fixtures_are_preview_digests_with_secrets_masked() -> None:
    """The fixtures follow §6: secrets in inputs show as "[secret]", and `steps` is absent when nothing changes."""
    for path in FIXTURES.glob("*.json"):
        if path.name == "malformed.json":
            continue
        digest = json.loads(path.read_text())
        assert {"changeSummary", "config", "duration"} <= set(digest), path.name
        for step in digest.get("steps", []):
            for state in (step.get("oldState"), step.get("newState")):
                inputs = (state or {}).get("inputs", {})
                for key in ("dataJson", "secretString"):
                    assert inputs.get(key, "[secret]") == "[secret]", path.name
    assert "steps" not in json.loads((FIXTURES / "no-changes.json").read_text())


BAD_INPUT = [
    ("malformed-json", "malformed.json", None, "not valid JSON"),
    ("missing-file", "does-not-exist.json", None, "cannot read the preview"),
    ("json-array", "array.json", "[]", "expected a JSON object"),
    ("steps-not-a-list", "steps.json", '{"steps": {"op": "create"}}', "must be lists"),
    ("step-without-urn", "nourn.json", '{"steps": [{"op": "create"}]}', "steps[0] needs a string `op` and `urn`"),
    ("malformed-urn", "badurn.json", '{"steps": [{"op": "delete", "urn": "secrets-X"}]}', "malformed `urn`"),
    ("not-utf8", "latin1.json", b'{"config": {"k": "\xe9"}}', "not UTF-8"),
]


@pytest.mark.parametrize(("name", "content", "message"), [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT])
def test_unreadable_input_exits_2_with_one_line_naming_the_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str, content: str | bytes | None, message: str
) -> None:
    path = FIXTURES / name if content is None else tmp_path / name
    if isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    assert main(["gate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith(f"error: {path}") and message in err


@pytest.mark.parametrize(
    ("resource_type", "name", "key"),
    [
        ("vault:kv/secretV2:SecretV2", "secrets-DATABASE_PASSWORD", "DATABASE_PASSWORD"),
        ("aws:secretsmanager/secret:Secret", "secrets-REDIS_PASSWORD", "REDIS_PASSWORD"),
        ("aws:secretsmanager/secretVersion:SecretVersion", "secrets-REDIS_PASSWORD-version", "REDIS_PASSWORD"),
        ("aws:secretsmanager/secretVersion:SecretVersion", "secrets-api_key-version", "api_key"),
        ("vault:index/policy:Policy", "secrets-orchestrator-read", None),
        ("vault:index/mount:Mount", "secrets-mount", None),
        ("vault:kv/secretV2:SecretV2", "other-DATABASE_PASSWORD", None),
    ],
    ids=["vault-secret", "aws-secret", "aws-version", "lower-case-key", "policy", "mount", "foreign-name"],
)
def test_env_key_from_logical_name(resource_type: str, name: str, key: str | None) -> None:
    assert env_key_of(resource_type, name) == key


def test_parse_reads_the_stack_and_one_change_per_resource() -> None:
    preview = parse(FIXTURES / "replacement-steps.json")
    assert preview.stack == "prod"
    assert [(c.category, c.name) for c in preview.changes] == [("replace", "secrets-orchestrator-read")]


def test_real_command_line() -> None:
    """The way CI calls it: a subprocess, Markdown on stdout, the exit code as the verdict."""
    result = subprocess.run(
        [sys.executable, "-m", "components", "gate", str(FIXTURES / "secret-removed.json"), "--protected"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout.startswith("### Pulumi preview of `prod` (protected)\n")
    assert result.stderr == ""
