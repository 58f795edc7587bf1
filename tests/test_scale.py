"""Issue 12 at its size, under the SDK's mocks: 5,000 secrets and 50 services, one service reading 2,000
of them, one secret read by 40 services, ten services' policies on one role (the attachment quota).

The real program runs once per backend, each in a fresh process as `pulumi up` runs it, both at once: at
this size a run takes ~13 s (Vault) and ~29 s (AWS, two resources per secret), nearly all of it the SDK's
per-resource cost (bench/program_scale.py), so the two cores halve the wait. A run hands back what it
registered (non-secret inputs only) and the ARNs its mocks gave. Expected names, paths and tags are
written out from the manifest here, not recomputed with the code under test.
"""

import json
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components import iam_eval
from components.layout import layout
from components.manifest import Manifest, Secret, dump
from components.policies import (
    IAM_MANAGED_POLICY_MAX_CHARS,
    IAM_MAX_ATTACHED_POLICIES_PER_ROLE,
    SECRET_MAX_TAGS,
    TAG_KEY_MAX_CHARS,
    TAG_VALUE_MAX_CHARS,
    VAULT_POLICY_MAX_BYTES,
    iam_policy_size,
    vault_limit_problems,
)
from components.settings import ConfigError, parse_settings, stack_layout
from tests.conftest import REPO
from tests.harness import DefaultMocks, run_program

NS = "staging"
SERVICES = tuple(f"svc-{i:02d}" for i in range(50))
SECRETS = 5000
BULK, BULK_READS = SERVICES[0], 2000
"""The service that reads 2,000 secrets: the first 2,000."""
WIDE, WIDE_READERS = SECRETS - 1, SERVICES[1:41]
"""The secret read by 40 services (by nobody else)."""
SHARED_ROLE = "shared-reader-role"
ROLES = {**{s: f"{s}-role" for s in SERVICES[:5]}, **dict.fromkeys(SERVICES[40:], SHARED_ROLE)}
"""Five services with a role of their own, ten sharing one: exactly IAM's quota of 10 on it."""

AWS_SECRET = "aws:secretsmanager/secret:Secret"
IAM_POLICY = "aws:iam/policy:Policy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
VAULT_POLICY = "vault:index/policy:Policy"
APPROLE = "vault:appRole/authBackendRole:AuthBackendRole"
GET, DESCRIBE = "secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"
NOT_READS = ["secretsmanager:PutSecretValue", "secretsmanager:DeleteSecret", "secretsmanager:UpdateSecret"]
TAGGING = ["secretsmanager:TagResource", "secretsmanager:UntagResource"]


def readers_of(i: int) -> tuple[str, ...]:
    """Secret i: the bulk reader for the first 2,000, one of the other 49 services for every secret, and
    the 40 wide readers for the last one."""
    if i == WIDE:
        return WIDE_READERS
    other = SERVICES[1 + i % 49]
    return (BULK, other) if i < BULK_READS else (other,)


def path_of(i: int) -> str:
    return f"group{i % 50:02d}/secret_{i:05d}"


def key_of(i: int) -> str:
    return f"GROUP{i % 50:02d}_SECRET_{i:05d}_PASSWORD"


MANIFEST = Manifest(SERVICES, {key_of(i): Secret(key_of(i), path_of(i), readers_of(i)) for i in range(SECRETS)})
READS = {svc: {s.path for s in MANIFEST.secrets.values() if svc in s.readers} for svc in SERVICES}
"""Service -> the paths it reads, from the manifest."""


# --- one program run per backend, in child processes ---------------------------------------------------


class ArnMocks(DefaultMocks):
    """DefaultMocks, keeping the ARN each secret and policy got (the program reads them back)."""

    def __init__(self) -> None:
        self.arns: dict[tuple[str, str], str] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        resource_id, state = super().new_resource(args)
        if "arn" in state:
            self.arns[args.typ, args.name] = state["arn"]
        return resource_id, state


def run_child(backend: str, manifest: Path, env_file: Path, out: Path) -> None:
    """One program run; writes its registrations to `out` without their secret inputs (no values)."""
    mocks = ArnMocks()
    config: dict[str, object] = {"backend": backend, "manifest": str(manifest), "envFile": str(env_file)}
    if backend == "aws":
        config["awsServiceRoles"] = ROLES
    run = run_program(NS, config, mocks=mocks, use_stack_file=False)
    resources = [
        {
            "type": r.type,
            "name": r.name,
            "inputs": {k: v for k, v in r.inputs.items() if k not in r.secret_inputs},
            "arn": mocks.arns.get((r.type, r.name)),
        }
        for r in run.resources
    ]
    out.write_text(json.dumps({"resources": resources, "exports": run.exports}), encoding="utf-8")


@dataclass
class Run:
    resources: list[dict[str, Any]]
    exports: dict[str, Any]

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r["type"] == type_]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    folder = tmp_path_factory.mktemp("scale")
    manifest, env_file = folder / "secrets.manifest.yaml", folder / ".env"
    manifest.write_text(dump(MANIFEST), encoding="utf-8")
    env_file.write_text("".join(f"{k}=fake-{i}\n" for i, k in enumerate(MANIFEST.secrets)), encoding="utf-8")
    children = {
        backend: subprocess.Popen(
            [sys.executable, "-m", "tests.test_scale", backend, str(manifest), str(env_file), str(folder / backend)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for backend in ("aws", "vault")
    }
    try:
        for backend, child in children.items():
            _, err = child.communicate(timeout=300)
            assert child.returncode == 0, f"{backend} run failed: {err[-2000:]}"
    finally:
        for child in children.values():
            if child.poll() is None:
                child.kill()
                child.wait()
    texts = {b: (folder / b).read_text(encoding="utf-8") for b in children}
    assert not any("fake-" in text for text in texts.values())  # no value left the runs
    return {b: Run(**json.loads(text)) for b, text in texts.items()}


def test_the_manifest_has_the_shape_the_issue_asks_for() -> None:
    assert len(MANIFEST.secrets) == SECRETS == 5000 and len(MANIFEST.services) == 50
    assert len(READS[BULK]) == 2000 and max(len(READS[s]) for s in SERVICES[1:]) < 2000
    assert sorted(len(s.readers) for s in MANIFEST.secrets.values())[-2:] == [2, 40]
    assert min(len(paths) for paths in READS.values()) > 0  # every service reads something: 50 policies


# --- AWS --------------------------------------------------------------------------------------------------


def test_aws_every_policy_document_fits_iam(runs: dict[str, Run]) -> None:
    policies = runs["aws"].of_type(IAM_POLICY)
    assert len(policies) == 51  # 50 services + the namespace
    sizes = {p["inputs"]["name"]: iam_policy_size(p["inputs"]["policy"]) for p in policies}
    assert max(sizes.values()) <= IAM_MANAGED_POLICY_MAX_CHARS
    # Constant size: the 2,000-secret reader's document is as large as the 102-secret readers' (same-length names).
    assert len({size for name, size in sizes.items() if name != f"{NS}-secrets-read"}) == 1


def test_aws_no_role_gets_more_than_ten_read_policies(runs: dict[str, Run]) -> None:
    aws = runs["aws"]
    attached = Counter(a["inputs"]["role"] for a in aws.of_type(ATTACHMENT))
    assert attached[SHARED_ROLE] == IAM_MAX_ATTACHED_POLICIES_PER_ROLE == 10
    assert max(attached.values()) <= IAM_MAX_ATTACHED_POLICIES_PER_ROLE
    by_role = {(a["inputs"]["role"], a["inputs"]["policyArn"]) for a in aws.of_type(ATTACHMENT)}
    assert by_role == {(role, aws.exports["policies"][svc]) for svc, role in ROLES.items()}


def test_aws_every_secret_fits_the_tag_limits(runs: dict[str, Run]) -> None:
    secrets = runs["aws"].of_type(AWS_SECRET)
    assert len(secrets) == SECRETS
    for secret in secrets:
        tags = secret["inputs"]["tags"]
        assert len(tags) <= SECRET_MAX_TAGS
        assert all(len(k) <= TAG_KEY_MAX_CHARS and len(v) <= TAG_VALUE_MAX_CHARS for k, v in tags.items())
    wide = next(s for s in secrets if s["inputs"]["name"] == f"{NS}/{path_of(WIDE)}")
    assert sorted(k for k in wide["inputs"]["tags"] if k.startswith("read-")) == [f"read-{s}" for s in WIDE_READERS]


def test_aws_each_service_reads_exactly_its_manifest_secrets(runs: dict[str, Run]) -> None:
    """Every service's policy evaluated (components.iam_eval) against every secret the program writes,
    with its tags and the ARN the mocks gave it, plus a secret of another namespace tagged for everyone."""
    aws = runs["aws"]
    tags_of = {s["arn"]: s["inputs"]["tags"] for s in aws.of_type(AWS_SECRET)}
    arn_of = {s["inputs"]["name"]: s["arn"] for s in aws.of_type(AWS_SECRET)}
    assert len(tags_of) == SECRETS  # one ARN each
    foreign = arn_of[f"{NS}/{path_of(0)}"].replace(f":secret:{NS}/", ":secret:prod/")
    everyone = {f"read-{s}": "true" for s in SERVICES[:47]}
    documents = {p["inputs"]["name"]: p["inputs"]["policy"] for p in aws.of_type(IAM_POLICY)}
    for svc in SERVICES:
        policy = iam_eval.Policy(documents[f"{NS}-{svc}-secrets-read"])
        expected = {arn_of[f"{NS}/{path}"] for path in READS[svc]}
        for action in (GET, DESCRIBE):
            readable = {arn for arn, tags in tags_of.items() if policy.allows(action, arn, tags)}
            assert readable == expected, (svc, action, len(readable), len(expected))
        assert not policy.allows(GET, foreign, everyone)
        some = next(iter(expected))
        assert all(policy.decide(a, some, tags_of[some]) == "explicit-deny" for a in TAGGING)
        assert not any(policy.allows(a, some, tags_of[some]) for a in NOT_READS)
    namespace = iam_eval.Policy(documents[f"{NS}-secrets-read"])
    assert all(namespace.allows(GET, arn) for arn in tags_of)
    assert not namespace.allows(GET, foreign)


# --- Vault ------------------------------------------------------------------------------------------------

HCL_BLOCK = re.compile(r'path "([^"]+)" \{\s*capabilities = \[([^\]]*)\]\s*\}')


def test_vault_policies_name_exactly_each_services_paths(runs: dict[str, Run]) -> None:
    vault = runs["vault"]
    written = {p["inputs"]["name"]: p["inputs"]["policy"] for p in vault.of_type(VAULT_POLICY)}
    assert len(written) == 51
    for svc in SERVICES:
        hcl = written[f"{NS}-{svc}-read"]
        blocks = HCL_BLOCK.findall(hcl)
        assert {path for path, _ in blocks} == {f"secret/data/{NS}/{p}" for p in READS[svc]}, svc
        assert {caps for _, caps in blocks} == {'"read"'}
        assert len(blocks) == len(READS[svc]) == hcl.count("path ")
    namespace = dict(HCL_BLOCK.findall(written[f"{NS}-secrets-read"]))
    assert namespace == {f"secret/data/{NS}/*": '"read"', f"secret/metadata/{NS}/*": '"read", "list"'}
    assert max(len(h.encode("utf-8")) for h in written.values()) <= VAULT_POLICY_MAX_BYTES
    assert vault_limit_problems(layout(MANIFEST, "vault", NS)) == []
    roles = {r["inputs"]["roleName"]: r["inputs"]["tokenPolicies"] for r in vault.of_type(APPROLE)}
    assert roles == {f"{NS}-{svc}": [f"{NS}-{svc}-read"] for svc in SERVICES}


# --- the edges the program stops at (48 readers of one secret: tests/test_program.py) ---------------------


class CreateRecorder(DefaultMocks):
    def __init__(self) -> None:
        self.created: list[str] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.created.append(args.name)
        return super().new_resource(args)


def small_stack(tmp_path: Path, services: int, **config: object) -> dict[str, object]:
    """One secret read by `services` services, as AWS stack config."""
    names = tuple(f"svc-{i:02d}" for i in range(services))
    manifest = tmp_path / "m.yaml"
    manifest.write_text(dump(Manifest(names, {"APP_TOKEN": Secret("APP_TOKEN", "app/token", names)})), "utf-8")
    return {"backend": "aws", "manifest": str(manifest), "values": {"APP_TOKEN": "t"}, **config}


def test_a_secret_with_47_readers_and_a_role_with_10_policies_deploy(tmp_path: Path) -> None:
    roles = {f"svc-{i:02d}": "one-role" for i in range(10)}
    run = run_program(NS, small_stack(tmp_path, 47, awsServiceRoles=roles), secret_keys=["values"])
    [secret] = run.of_type(AWS_SECRET)
    assert len(secret.inputs["tags"]) == SECRET_MAX_TAGS == 50
    assert len(run.of_type(ATTACHMENT)) == 10


def test_an_eleventh_policy_on_one_role_stops_the_program_naming_the_role(tmp_path: Path) -> None:
    mocks = CreateRecorder()
    roles = {f"svc-{i:02d}": "one-role" for i in range(11)}
    with pytest.raises(pulumi.RunError) as stopped:
        run_program(NS, small_stack(tmp_path, 11, awsServiceRoles=roles), secret_keys=["values"], mocks=mocks)
    assert str(stopped.value) == (
        "this stack cannot fit AWS Secrets Manager's limits: role one-role: 11 read policies would be attached; "
        "IAM allows 10 managed policies per role by default"
    )
    assert mocks.created == []


def test_a_vault_policy_over_vaults_json_limit_stops_the_stack_naming_it() -> None:
    """~14,000 paths make one service's HCL pass Vault's 1 MiB JSON string limit: `stack_layout` (which
    the program calls before reading a value; the program turns its ConfigError into the one-line
    RunError tested above) refuses the stack."""
    many = Manifest(("bulk",), {f"K{i:05d}": Secret(f"K{i:05d}", f"group/k{i:05d}", ("bulk",)) for i in range(16000)})
    with pytest.raises(ConfigError) as stopped:
        stack_layout(parse_settings({"backend": "vault"}, NS), many)
    assert re.fullmatch(
        r"this stack cannot fit Vault's limits: staging-bulk-read: the policy is \d{7} bytes; Vault's default "
        r"max_json_string_value_length is 1048576 \(raise it on the listener, or split the service\)",
        str(stopped.value),
    ), str(stopped.value)


if __name__ == "__main__":
    run_child(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
