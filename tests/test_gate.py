"""`python -m components gate`: the preview gate on real `pulumi preview --json` digests of the program,
made by the lifecycle engine (tests/fixtures/preview/generate.py; format: pkg/display/json.go)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from components.cli import main
from components.gate import env_key_of, parse, path_of
from tests.conftest import REPO

FIXTURES = REPO / "tests" / "fixtures" / "preview"
# Strings the fixtures carry in config, inputs and diagnostics: none may reach the output.
NEVER_PRINTED = ["[secret]", "FAKE-", "capabilities", "arn:aws:secretsmanager", "secret/data/prod", "approle"]
VAULT_SECRET = "`vault:kv/secretV2:SecretV2`"

CASES = [
    # label, fixture, flags, exit code, fragments the output must contain
    ("no-changes", "no-changes", ["--protected"], 0, ["No resource changes.", "**PASS**"]),
    ("first-deploy", "first-deploy", ["--protected"], 0, [f"| {VAULT_SECRET} | 4 | 0 | 0 | 0 |"]),
    ("secret-added", "secret-added", ["--protected"], 0, ["| `vault:index/policy:Policy` | 0 | 4 | 0 | 0 |"]),
    ("vault-rotation", "value-updated", ["--protected"], 0, [f"| {VAULT_SECRET} | 0 | 1 | 0 | 0 |"]),
    (
        "aws-rotation-passes-on-prod",  # a SecretVersion replacement adds a version: not a loss
        "aws-rotation",
        ["--protected"],
        0,
        [
            "| `aws:secretsmanager/secretVersion:SecretVersion` | 0 | 0 | 1 | 0 |",
            "**PASS**: no secret, mount or policy",
        ],
    ),
    (
        "replacement-steps-counted-once",
        "replacement-steps",
        ["--protected"],
        0,
        ["| `aws:secretsmanager/secretVersion:SecretVersion` | 0 | 0 | 1 | 0 |"],
    ),
    (
        "protected-delete-refused-by-the-engine",
        "path-edited",
        ["--protected"],
        1,
        ["1 error diagnostic(s) from `secrets/redis/password`", "delete: `redis/password` (secrets/redis/password)"],
    ),
    (
        "engine-error-is-not-allowed-away",
        "path-edited",
        ["--protected", "--allow-delete", "redis/password"],
        1,
        ["**FAIL**: 1 error diagnostic(s)"],
    ),
    (
        "removal-after-unprotect-still-needs-allow",
        "secret-removed-unprotected",
        ["--protected"],
        1,
        [
            "**FAIL**: a protected stack would delete or replace 1 resource(s): "
            "`redis/password` (secrets/redis/password).",
            "If this is deliberate: unprotect those resources (`pulumi state unprotect URN`, docs/runbook.md) and "
            "label the pull request `allow-delete:redis/password` (or run the gate with "
            "`--allow-delete redis/password`)",
        ],
    ),
    (
        "allowed-by-path",
        "secret-removed-unprotected",
        ["--protected", "--allow-delete", "redis/password"],
        0,
        ["**PASS**: deletes/replaces allowed by --allow-delete: `redis/password` (secrets/redis/password)."],
    ),
    (
        "allowed-by-logical-name",
        "secret-removed-unprotected",
        ["--protected", "--allow-delete", "secrets/redis/password"],
        0,
        ["**PASS**"],
    ),
    (
        "another-path-does-not-allow",
        "secret-removed-unprotected",
        ["--protected", "--allow-delete", "database/password"],
        1,
        ["`redis/password`"],
    ),
    ("unprotected-stack-may-remove", "secret-removed-unprotected", [], 0, ["stack not protected", "| 0 | 0 | 0 | 1 |"]),
    (
        "aws-secret-blocks-its-version-does-not",
        "aws-secret-removed",
        ["--protected"],
        1,
        ["would delete or replace 1 resource(s): `redis/password` (secrets/redis/password)"],
    ),
    ("aws-secret-allowed", "aws-secret-removed", ["--protected", "--allow-delete", "redis/password"], 0, ["**PASS**"]),
    (
        "old-names-by-env-key",
        "legacy-secret-removed",
        ["--protected"],
        1,
        ["`REDIS_PASSWORD` (secrets-REDIS_PASSWORD)", "`--allow-delete REDIS_PASSWORD`"],
    ),
    (
        "old-names-allowed",
        "legacy-secret-removed",
        ["--protected", "--allow-delete", "REDIS_PASSWORD"],
        0,
        ["**PASS**"],
    ),
    (
        "mount-refused-on-every-stack",
        "mount-removed",
        [],
        1,
        [
            "**FAIL**: this stack would delete or replace 1 resource(s): `secrets-mount`.",
            "`--allow-delete secrets-mount`",
        ],
    ),
    ("mount-allowed", "mount-removed", ["--allow-delete", "secrets-mount"], 0, ["**PASS**"]),
    (
        "delete-and-create-of-one-name-refused",
        "upgrade-and-rename",
        ["--allow-delete", "DATABASE_PASSWORD", "--allow-delete", "database/password"],
        1,
        [
            "1 secret(s) deleted and created again under one backend name in one deploy: `database/password`",
            "`secrets-DATABASE_PASSWORD` is deleted and `secrets/database/password` created on the same backend name",
        ],
    ),
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


def fixtures() -> list[Path]:
    return sorted(p for p in FIXTURES.glob("*.json") if p.name != "malformed.json")


@pytest.mark.parametrize("path", fixtures(), ids=[p.stem for p in fixtures()])
def test_fixtures_are_preview_digests(path: Path) -> None:
    """Shaped as `pulumi preview --json` prints them: the root stack's step, `detailedDiff` on every step
    (null when empty), secrets as "[secret]", replacement halves only with --show-replacement-steps."""
    digest = json.loads(path.read_text())
    assert {"config", "steps", "duration", "changeSummary"} <= set(digest)
    assert digest["steps"][0]["urn"].endswith(
        "::pulumi:pulumi:Stack::secrets-migration-" + digest["config"]["secrets-migration:namespace"]
    )
    assert digest["config"]["secrets-migration:values"] == "[secret]"
    for step in digest["steps"]:
        assert "detailedDiff" in step and step["detailedDiff"] != {}
        for state in (step.get("oldState"), step.get("newState")):
            inputs = (state or {}).get("inputs", {})
            for key in ("dataJson", "secretString"):
                assert inputs.get(key, "[secret]") == "[secret]", path.name
    halves = {"create-replacement", "delete-replaced"} & {s["op"] for s in digest["steps"]}
    assert bool(halves) == (path.stem == "replacement-steps")
    assert bool(digest.get("diagnostics")) == (path.stem in ("path-edited", "secret-removed"))


DEEP = "[" * 100_000 + "]" * 100_000
HUGE_NUMBER = '{"changeSummary": {"same": ' + "9" * 5000 + "}}"
ROOT_ONLY = '{"op": "same", "urn": "urn:pulumi:prod::secrets-migration::pulumi:pulumi:Stack::secrets-migration-prod"}'
BAD_INPUT = [
    # label, file name, content (None: the fixture itself), what the one line says
    ("malformed-json", "malformed.json", None, "not valid JSON"),
    ("missing-file", "does-not-exist.json", None, "cannot read the preview"),
    ("json-array", "array.json", "[]", "expected a JSON object"),
    ("empty-object", "empty.json", "{}", "not a `pulumi preview --json` digest (no `changeSummary`)"),
    ("other-object", "other.json", '{"a": 1}', "not a `pulumi preview --json` digest (no `changeSummary`)"),
    ("no-root-step", "noroot.json", '{"changeSummary": {}}', "no step for the root stack"),
    ("no-summary", "nosummary.json", '{"steps": [' + ROOT_ONLY + "]}", "(no `changeSummary`)"),
    ("deep-json", "deep.json", DEEP, "JSON nested too deeply"),
    ("huge-number", "huge.json", HUGE_NUMBER, "number too long"),
    ("steps-not-a-list", "steps.json", '{"steps": {"op": "create"}}', "must be lists"),
    ("step-without-urn", "nourn.json", '{"steps": [{"op": "create"}], "changeSummary": {}}', "steps[0] needs"),
    (
        "malformed-urn",
        "badurn.json",
        '{"steps": [{"op": "delete", "urn": "secrets-X"}], "changeSummary": {}}',
        "malformed `urn`",
    ),
    ("not-utf8", "latin1.json", b'{"config": {"k": "\xe9"}}', "not UTF-8"),
]


@pytest.mark.parametrize(("name", "content", "message"), [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT])
def test_anything_but_a_preview_exits_2_with_one_line_never_pass(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str, content: str | bytes | None, message: str
) -> None:
    path = FIXTURES / name if content is None else tmp_path / name
    if isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    assert main(["gate", str(path), "--protected"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith(f"error: {path}") and message in err


@pytest.mark.parametrize(
    ("resource_type", "name", "key", "path"),
    [
        ("vault:kv/secretV2:SecretV2", "secrets/database/password", None, "database/password"),
        ("aws:secretsmanager/secretVersion:SecretVersion", "secrets/redis/password", None, "redis/password"),
        ("vault:kv/secretV2:SecretV2", "secrets-DATABASE_PASSWORD", "DATABASE_PASSWORD", None),
        ("aws:secretsmanager/secret:Secret", "secrets-REDIS_PASSWORD", "REDIS_PASSWORD", None),
        ("aws:secretsmanager/secretVersion:SecretVersion", "secrets-REDIS_PASSWORD-version", "REDIS_PASSWORD", None),
        ("vault:index/policy:Policy", "secrets-orchestrator-read", None, None),
        ("vault:index/mount:Mount", "secrets-mount", None, None),
        ("vault:kv/secretV2:SecretV2", "other-DATABASE_PASSWORD", None, None),
    ],
    ids=["path", "version-path", "old-vault", "old-aws", "old-version", "policy", "mount", "foreign-name"],
)
def test_names_map_to_paths_and_old_env_keys(resource_type: str, name: str, key: str | None, path: str | None) -> None:
    assert env_key_of(resource_type, name) == key
    assert path_of(resource_type, name) == path


def test_parse_reads_the_stack_and_one_change_per_resource() -> None:
    preview = parse(FIXTURES / "replacement-steps.json")
    assert preview.stack == "prod"
    assert [(c.category, c.name) for c in preview.changes] == [("replace", "secrets/redis/password")]


def test_real_command_line() -> None:
    """The way CI calls it: a subprocess, Markdown on stdout, the exit code as the verdict."""
    result = subprocess.run(
        [sys.executable, "-m", "components", "gate", str(FIXTURES / "secret-removed-unprotected.json"), "--protected"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout.startswith("### Pulumi preview of `prod` (protected)\n")
    assert result.stderr == ""
