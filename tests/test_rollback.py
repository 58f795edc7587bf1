"""Rollback is a stack revert (docs/runbook.md): the stack at manifest v1, then v2 (one secret added, one
path changed), then v1 again (what `git revert` + `pulumi up` hands the program) declares exactly v1's
resources: same types, logical names, inputs, secretness and protection, and the same exports.

Runs the real `__main__.py` under the SDK's mocks (tests/harness.py), for the staging stack (Vault) and
its aws variant. The manifest is a file in a temporary folder, rewritten in place as a revert would.
"""

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pulumi import RunError

from components.manifest import Manifest, Secret, dump, load
from tests.conftest import REPO
from tests.harness import ProgramRun, run_program

V1 = load(REPO / "secrets.manifest.yaml")
ADDED = "GITHUB_TOKEN"
MOVED = "DATABASE_PASSWORD"
MOVED_TO = "database/primary_password"
V1_VALUES = {key: f"fake-rollback-{i}-c0ffee" for i, key in enumerate(sorted(V1.secrets))}
V2_VALUES = {**V1_VALUES, ADDED: "fake-rollback-added-c0ffee"}

# Services whose read policy names the moved secret, plus signal-service, which reads the added one.
POLICIES_CHANGED = {f"secrets-{svc}-read" for svc in V1.services if svc in V1.secrets[MOVED].readers}
POLICIES_CHANGED.add("secrets-signal-service-read")


def manifest_v2() -> Manifest:
    secrets = dict(V1.secrets)
    secrets[MOVED] = replace(secrets[MOVED], path=MOVED_TO)
    secrets[ADDED] = Secret(ADDED, "github/token", ("signal-service",))
    return replace(V1, secrets=secrets)


Snapshot = list[tuple[str, str, Any, list[str], bool, str, str]]


def snapshot(run: ProgramRun) -> Snapshot:
    """Everything the engine would diff on, in a stable order."""
    rows = [(r.type, r.name, r.inputs, sorted(r.secret_inputs), r.protect, r.parent, r.urn) for r in run.resources]
    return sorted(rows, key=lambda row: row[1])


def by_name(run: ProgramRun) -> dict[str, Any]:
    """Resources with one logical name per type: policies, roles and the component (not secrets)."""
    return {r.name: r for r in run.resources if not r.name.startswith("secrets/")}


class Stack:
    """One stack whose manifest file changes between runs, as commits and reverts change it."""

    def __init__(self, tmp_path: Path, backend: str) -> None:
        self.manifest = tmp_path / "secrets.manifest.yaml"
        self.backend = backend

    def up(self, manifest: Manifest, values: dict[str, str]) -> ProgramRun:
        self.manifest.write_text(dump(manifest), encoding="utf-8")
        config = {"backend": self.backend, "manifest": str(self.manifest), "values": values}
        return run_program("staging", config, secret_keys=["values"])


@pytest.mark.parametrize("backend", ["vault", "aws"])
def test_revert_to_v1_declares_exactly_v1(tmp_path: Path, backend: str) -> None:
    stack = Stack(tmp_path, backend)
    r1 = stack.up(V1, V1_VALUES)
    r2 = stack.up(manifest_v2(), V2_VALUES)
    r3 = stack.up(V1, V1_VALUES)

    # v1 -> v2: a secret's resources are named after its path, so the moved secret is a new resource
    # (created first, then the old one deleted: never a replacement at one name) and the added one appears.
    def keyed(run: ProgramRun) -> set[tuple[str, str]]:
        return {(r.name, r.type) for r in run.resources}

    types = {r.type for r in r1.resources if r.name.startswith("secrets/")}
    assert keyed(r2) - keyed(r1) == {(f"secrets/{p}", t) for p in ("github/token", MOVED_TO) for t in types}
    assert keyed(r1) - keyed(r2) == {("secrets/database/password", t) for t in types}

    one, two = by_name(r1), by_name(r2)
    vault_type = "vault:kv/secretV2:SecretV2"
    value_carrier = vault_type if backend == "vault" else "aws:secretsmanager/secretVersion:SecretVersion"
    old = next(r for r in r1.resources if r.name == "secrets/database/password" and r.type == value_carrier)
    new = next(r for r in r2.resources if r.name == f"secrets/{MOVED_TO}" and r.type == value_carrier)
    assert ("dataJson" if backend == "vault" else "secretString") in old.secret_inputs  # values flow as secrets
    if backend == "vault":
        assert (old.inputs["name"], new.inputs["name"]) == ("staging/database/password", f"staging/{MOVED_TO}")
        assert old.inputs["dataJson"] == new.inputs["dataJson"]
    changed = {name for name in one if name in two and one[name].inputs != two[name].inputs}
    # Vault policies list the paths; AWS policies are tag-based, so only the tags of the readers change there.
    assert changed == (POLICIES_CHANGED if backend == "vault" else set())
    assert r2.exports["secretPaths"][ADDED].endswith("staging/github/token")
    assert r2.exports["manifestSha256"] != r1.exports["manifestSha256"]

    # v2 -> v1 (the revert): exactly R1 again.
    assert snapshot(r3) == snapshot(r1)
    assert r3.exports == r1.exports


@pytest.mark.parametrize("backend", ["vault", "aws"])
def test_reverting_the_manifest_alone_is_refused_by_key_name(tmp_path: Path, backend: str) -> None:
    """A revert that restores the manifest but leaves `values.GITHUB_TOKEN` in the stack config is
    refused by name (no value), not half-applied: revert both, or `pulumi config rm --path`."""
    stack = Stack(tmp_path, backend)
    stack.up(manifest_v2(), V2_VALUES)
    with pytest.raises(RunError) as refused:
        stack.up(V1, V2_VALUES)
    message = str(refused.value)
    assert ADDED in message and "not in the manifest" in message
    assert all(value not in message for value in V2_VALUES.values())
