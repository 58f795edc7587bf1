"""`components.layout` is the one place that decides a stack's shape: the program registers exactly the
layout's secrets and policies, at its names and paths, for both backends and several manifests."""

import json
import re
from pathlib import Path

import pytest

from components import naming
from components.layout import layout
from components.manifest import Manifest, Secret, dump, load
from tests.conftest import REPO
from tests.harness import ProgramRun, run_program

COMMITTED = load(REPO / "secrets.manifest.yaml")
MANIFESTS = {
    "committed": COMMITTED,
    "idle-service": Manifest(("api", "idle"), {"API_TOKEN": Secret("API_TOKEN", "api/token", ("api",))}),
    "no-secrets": Manifest(("api",), {}),
    "nested-paths": Manifest(
        ("a", "b-c"),
        {
            "X_KEY": Secret("X_KEY", "deep/er/x_key", ("a",)),
            "Y_TOKEN": Secret("Y_TOKEN", "y", ("a", "b-c")),
            "Z_SECRET": Secret("Z_SECRET", "z/secret", ()),
        },
    ),
}


def deploy(tmp_path: Path, manifest: Manifest, backend: str, mount: str = "secret") -> ProgramRun:
    path = tmp_path / "m.yaml"
    path.write_text(dump(manifest), encoding="utf-8")
    values = {key: f"v-{key}" for key in manifest.secrets}
    config: dict[str, object] = {"backend": backend, "manifest": str(path), "values": values, "vaultMount": mount}
    return run_program("staging", config, secret_keys=["values"])


def hcl_paths(hcl: str) -> set[str]:
    return set(re.findall(r'path "([^"]+)"', hcl))


@pytest.mark.parametrize("backend", ["vault", "aws"])
@pytest.mark.parametrize("label", list(MANIFESTS))
def test_the_program_registers_exactly_the_layout(tmp_path: Path, backend: str, label: str) -> None:
    manifest = MANIFESTS[label]
    plan = layout(manifest, backend, "staging", "kv-apps")  # type: ignore[arg-type]
    run = deploy(tmp_path, manifest, backend, "kv-apps")

    secret_type = naming.VAULT_SECRET if backend == "vault" else naming.AWS_SECRET
    policy_type = naming.VAULT_POLICY if backend == "vault" else naming.IAM_POLICY
    secrets = {r.name: r.inputs["name"] for r in run.of_type(secret_type)}
    assert secrets == {s.logical_name: s.name for s in plan.secrets}
    policies = {r.name: r.inputs["name"] for r in run.of_type(policy_type)}
    assert policies == {p.logical_name: p.name for p in plan.policies}
    assert run.exports["secretPaths"] == {s.key: s.location for s in plan.secrets}
    exported = {svc: ref.rsplit("/", 1)[-1] for svc, ref in run.exports["policies"].items()}
    assert exported == {p.service: p.name for p in plan.policies if p.service}

    if backend == "vault":
        for policy in plan.policies:
            hcl = next(r for r in run.of_type(policy_type) if r.name == policy.logical_name).inputs["policy"]
            expected = (
                {plan.secret(k).read_path for k in policy.keys}
                if policy.service
                else {"kv-apps/data/staging/*", "kv-apps/metadata/staging/*"}
            )
            assert hcl_paths(hcl) == expected
        roles = {r.inputs["roleName"]: r.inputs["tokenPolicies"] for r in run.of_type(naming.VAULT_APPROLE)}
        assert roles == {p.approle: [p.name] for p in plan.policies if p.approle}
    else:
        for spot in plan.secrets:
            tags = next(r for r in run.of_type(secret_type) if r.name == spot.logical_name).inputs["tags"]
            assert {naming.service_of_read_tag(t) for t in tags} - {None} == set(spot.readers)


def test_layout_rules() -> None:
    manifest = MANIFESTS["idle-service"]
    vault, aws = layout(manifest, "vault", "prod"), layout(manifest, "aws", "prod")
    assert [p.label for p in vault.policies] == ["api", "(namespace)"]  # idle reads nothing: no policy
    assert vault.secret("API_TOKEN").location == "secret/prod/api/token"
    assert vault.secret("API_TOKEN").read_path == "secret/data/prod/api/token"
    assert aws.secret("API_TOKEN").location == aws.secret("API_TOKEN").name == "prod/api/token"
    assert vault.policy_of("api") is not None and vault.policy_of("idle") is None
    assert vault.policy_name("idle") == "prod-idle-read"  # the name it would have
    assert [s.key for s in vault.readable_by("api")] == ["API_TOKEN"] and vault.readable_by("idle") == []
    empty = MANIFESTS["no-secrets"]
    assert [p.label for p in layout(empty, "vault", "prod").policies] == ["(namespace)"]
    assert layout(empty, "aws", "prod").policies == ()  # an IAM pattern needs a secret's ARN


def test_exports_name_no_value(tmp_path: Path) -> None:
    run = deploy(tmp_path, COMMITTED, "vault")
    assert not any(f"v-{key}" in json.dumps(run.exports) for key in COMMITTED.secrets)
