"""Every deploy after the first, live (issue 8): Vault on OpenBao and AWS on moto, for `staging`
(unprotected) and `prod` (protected), through the lifecycle engine.

One journey per backend x stack, each step on the state the previous one left:
A (examples/.env.example + the committed manifest) -> B1 a value changed (rotation) -> B2 an env key
renamed, path kept -> B3 a secret moved to a new path -> B4 a secret removed -> B5 a secret added and the
readers of another changed -> A again (the revert). After every step: the gate's verdict on the step's
`preview --json`, every value read back from the backend (no data lost), and `verify --env-file` of
that step's `.env` (in-process, as CI runs it). On prod, B3, B4 and the revert delete secrets: they fail
at preview with the engine's protect error and change nothing, until deliberately allowed with
`pulumi state unprotect` (engine.unprotect) and the gate's `--allow-delete`. On AWS the revert re-adds
two secrets inside their recovery window: `adopt --restore` + `pulumi import --file` first.

verify's verdicts are collected and asserted at the end of each journey, so one run shows them all.
"""

import dataclasses
import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import hvac
import pytest

from components import naming
from components.engine import Deployment, Engine, EngineError, PreviewFailed
from components.envfile import read_env
from components.manifest import Manifest, Secret, dump, load
from tests.conftest import EXAMPLE_ENV, REPO
from tests.live.conftest import Outcome, aws_env, run_cli
from tests.live.servers import MOTO_ENV, BaoServer, Server, bao_binary, clean_env

COMMITTED = load(REPO / "secrets.manifest.yaml")
EXAMPLE = {k: e.value for k, e in read_env(EXAMPLE_ENV).items()}
SECRET_TYPES = {naming.VAULT_SECRET, naming.AWS_SECRET}


@dataclass(frozen=True)
class Stage:
    label: str
    manifest: Manifest
    env: dict[str, str]

    def values(self) -> dict[str, str]:
        """Secret path -> value, what the backend must hold after this stage."""
        return {s.path: self.env[key] for key, s in self.manifest.secrets.items()}


def _with(manifest: Manifest, **secrets: Secret | None) -> Manifest:
    changed = {k: v for k, v in {**manifest.secrets, **secrets}.items() if v is not None}
    return dataclasses.replace(manifest, secrets=changed)


def stages() -> list[Stage]:
    a = Stage("A", COMMITTED, dict(EXAMPLE))
    b1 = Stage("B1 rotation", a.manifest, {**a.env, "DATABASE_PASSWORD": "FAKE-database-password-rotated-0005"})
    key_id = COMMITTED.secrets["ALPACA_API_KEY_ID"]
    env2 = {("ALPACA_KEY_ID" if k == "ALPACA_API_KEY_ID" else k): v for k, v in b1.env.items()}
    b2 = Stage(
        "B2 key renamed, path kept",
        _with(b1.manifest, ALPACA_API_KEY_ID=None, ALPACA_KEY_ID=dataclasses.replace(key_id, key="ALPACA_KEY_ID")),
        env2,
    )
    redis = b2.manifest.secrets["REDIS_PASSWORD"]
    b3 = Stage(
        "B3 moved", _with(b2.manifest, REDIS_PASSWORD=dataclasses.replace(redis, path="cache/redis_password")), b2.env
    )
    b4 = Stage(
        "B4 removed",
        _with(b3.manifest, ALPACA_API_SECRET_KEY=None),
        {k: v for k, v in b3.env.items() if k != "ALPACA_API_SECRET_KEY"},
    )
    database = b4.manifest.secrets["DATABASE_PASSWORD"]
    b5 = Stage(
        "B5 added, readers changed",
        _with(
            b4.manifest,
            GITHUB_TOKEN=Secret("GITHUB_TOKEN", "github/token", ("orchestrator",)),
            DATABASE_PASSWORD=dataclasses.replace(database, readers=COMMITTED.services),
        ),
        {**b4.env, "GITHUB_TOKEN": "FAKE-github-token-0006"},
    )
    return [a, b1, b2, b3, b4, b5, dataclasses.replace(a, label="A again (revert)")]


@dataclass
class Journey:
    """One stack on one backend, deployed stage after stage through one engine (one state)."""

    backend: str
    stack: str
    engine: Engine
    cli_env: dict[str, str]
    folder: Path
    namespace: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}")
    verdicts: list[tuple[str, Outcome]] = field(default_factory=list)
    read: Callable[[str], str | None] = lambda path: None
    """Secret path -> its value in the backend (None: absent)."""
    snapshot: Callable[[], Any] = lambda: None
    """Everything this namespace has in the backend, to prove a refused deploy changed nothing."""

    @property
    def protected(self) -> bool:
        return self.stack == "prod"

    def files(self, stage: Stage) -> tuple[Path, Path]:
        folder = self.folder / stage.label.split()[0].lower()
        folder.mkdir(exist_ok=True)
        manifest, env = folder / "secrets.manifest.yaml", folder / ".env"
        manifest.write_text(dump(stage.manifest), encoding="utf-8")
        env.write_text("".join(f"{k}={v}\n" for k, v in stage.env.items()), encoding="utf-8")
        return manifest, env

    def config(self, stage: Stage) -> dict[str, object]:
        manifest, env = self.files(stage)
        config: dict[str, object] = {
            "namespace": self.namespace,
            "allowNamespaceOverride": True,
            "manifest": str(manifest),
            "envFile": str(env),
        }
        if self.backend == "aws":
            config.update({"backend": "aws", "awsRecoveryWindowInDays": 30 if self.protected else 7})
        return config

    def preview(self, stage: Stage) -> Deployment:
        return self.engine.preview(self.stack, self.config(stage))

    def up(self, stage: Stage) -> Deployment:
        return self.engine.up(self.stack, self.config(stage))

    def gate(self, digest: dict[str, Any], *allow: str) -> Outcome:
        path = self.folder / "preview.json"
        path.write_text(json.dumps(digest), encoding="utf-8")
        flags = ["--protected"] if self.protected else []
        for item in allow:
            flags += ["--allow-delete", item]
        return run_cli(self.cli_env, "gate", str(path), *flags)

    def urns(self, path: str) -> list[str]:
        """The URNs of a secret's resources (Secret/SecretV2 and, on AWS, its version)."""
        name = naming.secret_logical_name(path)
        return [r.urn for r in self.engine.state(self.stack).resources if r.name == name]

    def check(self, stage: Stage) -> None:
        """No data lost: every secret of the stage holds its value. Then verify (asserted at the end)."""
        assert {p: self.read(p) for p in stage.values()} == stage.values(), stage.label
        manifest, env = self.files(stage)
        outcome = run_cli(
            self.cli_env,
            "verify",
            "--backend",
            self.backend,
            "--namespace",
            self.namespace,
            "--manifest",
            str(manifest),
            "--env-file",
            str(env),
        )
        assert not any(v in outcome.output for v in stage.env.values() if len(v) > 8), "a value was printed"
        self.verdicts.append((stage.label, outcome))

    def deploy(self, stage: Stage, *, allow: tuple[str, ...] = ()) -> Deployment:
        """Preview, gate (must pass, with `allow`), up, check."""
        planned = self.preview(stage)
        verdict = self.gate(planned.digest, *allow)
        assert verdict.code == 0, verdict.output
        done = self.up(stage)
        self.check(stage)
        return done

    def deploy_deliberate_removal(self, stage: Stage, removed: list[str]) -> Deployment:
        """On prod: refused at preview and nothing changes; allowed after unprotect + --allow-delete."""
        before = self.snapshot()
        with pytest.raises(PreviewFailed) as refused:
            self.up(stage)
        message = str(refused.value)
        for path in removed:
            assert "cannot be deleted\nbecause it is protected" in message
            assert f"`pulumi state unprotect '{self.urns(path)[0]}'`" in message
        assert self.snapshot() == before, "a refused deploy changed the backend"
        assert self.gate(refused.value.digest).code == 1  # error diagnostics and protected deletes
        for path in removed:
            for urn in self.urns(path):
                self.engine.unprotect(urn)  # pulumi state unprotect URN
        planned = self.preview(stage)
        assert self.gate(planned.digest).code == 1, "the gate must still refuse without --allow-delete"
        return self.deploy(stage, allow=tuple(removed))

    def deploy_removal(self, stage: Stage, removed: list[str]) -> Deployment:
        """A stage that deletes secrets: straight through on staging, deliberately on prod."""
        if self.protected:
            return self.deploy_deliberate_removal(stage, removed)
        return self.deploy(stage)


# --- the backends --------------------------------------------------------------------------------------


def vault_journey(bao: BaoServer, stack: str, folder: Path) -> Journey:
    journey = Journey("vault", stack, Engine(vault_addr=bao.url, vault_token=bao.token), bao.env, folder)
    client = hvac.Client(url=bao.url, token=bao.token)

    def read(path: str) -> str | None:
        found = client.read(f"secret/data/{journey.namespace}/{path}")
        return None if found is None else str(found["data"]["data"]["value"])

    def paths(prefix: str) -> list[str]:
        listed = client.list(f"secret/metadata/{prefix}") or {"data": {"keys": []}}
        return [p for k in listed["data"]["keys"] for p in (paths(prefix + k) if k.endswith("/") else [prefix + k])]

    def snapshot() -> Any:
        secrets = {
            p: client.read(f"secret/metadata/{p}")["data"]["current_version"] for p in paths(f"{journey.namespace}/")
        }
        policies = sorted(p for p in client.sys.list_policies()["data"]["policies"] if p.startswith(journey.namespace))
        roles = sorted((client.list("auth/approle/role") or {"data": {"keys": []}})["data"]["keys"])
        return secrets, policies, roles

    journey.read, journey.snapshot = read, snapshot
    return journey


def aws_journey(moto: Server, stack: str, folder: Path) -> Journey:
    journey = Journey("aws", stack, Engine(aws_endpoint=moto.url), aws_env(moto), folder)
    sm, iam = (boto3.client(s, endpoint_url=moto.url, **BOTO) for s in ("secretsmanager", "iam"))

    def read(path: str) -> str | None:
        try:
            return str(sm.get_secret_value(SecretId=f"{journey.namespace}/{path}")["SecretString"])
        except (sm.exceptions.ResourceNotFoundException, sm.exceptions.InvalidRequestException):
            return None

    def snapshot() -> Any:
        listed = sm.list_secrets(
            IncludePlannedDeletion=True, Filters=[{"Key": "name", "Values": [f"{journey.namespace}/"]}]
        )
        secrets = {
            s["Name"]: (
                str(s.get("DeletedDate")),
                sorted(s.get("SecretVersionsToStages", {})),
                json.dumps(s.get("Tags")),
            )
            for s in listed["SecretList"]
        }
        policies = {
            p["PolicyName"]: p["DefaultVersionId"]
            for p in iam.list_policies(Scope="Local")["Policies"]
            if p["PolicyName"].startswith(journey.namespace)
        }
        return secrets, policies

    journey.read, journey.snapshot = read, snapshot
    return journey


BOTO = {
    "region_name": MOTO_ENV["AWS_REGION"],
    "aws_access_key_id": MOTO_ENV["AWS_ACCESS_KEY_ID"],
    "aws_secret_access_key": MOTO_ENV["AWS_SECRET_ACCESS_KEY"],
}


def adopt(journey: Journey, manifest: Path, *extra: str) -> Outcome:
    return run_cli(
        journey.cli_env,
        "adopt",
        "--backend",
        journey.backend,
        "--namespace",
        journey.namespace,
        "--manifest",
        str(manifest),
        "--out",
        str(journey.folder / "import.json"),
        *extra,
    )


# --- the journeys ------------------------------------------------------------------------------------------


@pytest.fixture(params=["vault-staging", "vault-prod", "aws-staging", "aws-prod"])
def journey(request: pytest.FixtureRequest, tmp_path: Path, bao: BaoServer, moto: Server) -> Iterator[Journey]:
    backend, stack = request.param.split("-")
    yield vault_journey(bao, stack, tmp_path) if backend == "vault" else aws_journey(moto, stack, tmp_path)


KEY_PATHS = {key: secret.path for stage in stages() for key, secret in stage.manifest.secrets.items()}


def secret_path(logical_name: str) -> str:
    """The path a secret's resource is named after (`secrets/<path>`, or the old `secrets-<KEY>[-version]`)."""
    legacy_key = logical_name.removeprefix(f"{naming.STORE}-").removesuffix("-version")
    return naming.path_of_logical_name(logical_name) or KEY_PATHS.get(legacy_key, logical_name)


def changed(done: Deployment, types: set[str]) -> list[tuple[str, str]]:
    """(op, secret path or logical name) of each change to a resource of `types`."""
    return sorted((op, secret_path(name)) for op, type_, name in done.changes() if type_ in types)


def test_every_deploy_after_the_first(journey: Journey) -> None:
    a, b1, b2, b3, b4, b5, revert = stages()
    vault, aws = journey.backend == "vault", journey.backend == "aws"

    journey.deploy(a)

    # B1: a rotation. Vault writes a new KV version in place; AWS replaces the SecretVersion, which only
    # adds a version (not protected, even on prod), and the gate lets it through.
    done = journey.deploy(b1)
    versions = changed(done, {naming.AWS_SECRET_VERSION, naming.VAULT_SECRET})
    assert versions == [("update" if vault else "replace", "database/password")]

    # B2: a renamed key keeps its path, so it keeps its resources: never a replacement (issue 8, problem 1).
    # On Vault nothing at all changes (not even a KV version).
    before = journey.snapshot()
    done = journey.deploy(b2)
    assert journey.snapshot() == before or aws
    assert changed(done, SECRET_TYPES | {naming.AWS_SECRET_VERSION}) == (
        [] if vault else [("update", "alpaca/api_key_id")]
    )

    # B3 / B4: a move and a removal delete secrets: deliberate only on prod.
    for stage, removed in ((b3, ["redis/password"]), (b4, ["alpaca/api_secret_key"])):
        done = journey.deploy_removal(stage, removed)
        assert ("delete", removed[0]) in changed(done, SECRET_TYPES)

    journey.deploy(b5)

    # The revert: back to A. On AWS, the two secrets A has again were deleted inside their recovery window:
    # the program refuses the revert at preview (nothing touched) and so does adopt, until asked to restore
    # them; then they are imported.
    if aws:
        manifest, _ = journey.files(revert)
        before = journey.snapshot()
        with pytest.raises(EngineError, match=r"scheduled for deletion .*adopt --backend aws .* --restore"):
            journey.preview(revert)
        refused = adopt(journey, manifest)
        assert refused.code == 2 and refused.stderr.count("\n") == 1 and "--restore" in refused.stderr
        assert journey.snapshot() == before and not (journey.folder / "import.json").exists()
        restored = adopt(journey, manifest, "--restore")
        assert restored.code == 0, restored.output
        spec = json.loads((journey.folder / "import.json").read_text())
        journey.engine.import_resources(journey.stack, spec)
    done = journey.deploy_removal(revert, ["github/token", "cache/redis_password"])
    if aws:
        assert not [c for c in changed(done, SECRET_TYPES) if c[0] == "create"], "the re-added secrets were adopted"

    # No IAM policy was ever replaced (its description never changes under its name: problem 5).
    assert all(not (r.type == naming.IAM_POLICY and r.delete) for r in journey.engine.state(journey.stack).resources)
    failed = [(label, o.output) for label, o in journey.verdicts if o.code != 0]
    assert not failed, failed


# --- the runbook's way of creating secrets, then adopt ------------------------------------------------------


def test_secrets_created_by_hand_on_vault_are_adopted(bao: BaoServer, tmp_path: Path) -> None:
    """Phase 2 by hand (`bao kv put`), then adopt -> `pulumi import --file` -> `pulumi up`. Vault's provider
    cannot read `data_json` back, so the up after the import shows an update of each imported secret
    (dataJson, deleteAllVersions): it writes the same value again as a new KV version."""
    journey = vault_journey(bao, "staging", tmp_path)
    a = stages()[0]
    for key, secret in a.manifest.secrets.items():
        done = subprocess.run(
            [bao_binary(), "kv", "put", f"secret/{journey.namespace}/{secret.path}", f"value={a.env[key]}"],
            env=clean_env({"VAULT_ADDR": bao.url, "VAULT_TOKEN": bao.token}),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
    manifest, _ = journey.files(a)
    found = adopt(journey, manifest)
    assert found.code == 0, found.output
    assert f"Found 4 of 4 secrets in Vault (namespace {journey.namespace})" in found.stdout
    assert "Found 0 of 6 policies" in found.stdout
    spec = json.loads((tmp_path / "import.json").read_text())
    assert spec["resources"][0] == {"type": naming.VAULT_STORE_TYPE, "name": "secrets", "component": True}
    assert {(r["type"], r["name"], r["id"]) for r in spec["resources"][1:]} == {
        (naming.VAULT_SECRET, f"secrets/{s.path}", f"secret/data/{journey.namespace}/{s.path}")
        for s in a.manifest.secrets.values()
    }
    journey.engine.import_resources("staging", spec)
    planned = journey.preview(a)
    secrets = [(step.op, step.diffs) for step in planned.steps if step.type == naming.VAULT_SECRET]
    assert secrets == [("update", ["dataJson", "deleteAllVersions"])] * 4
    assert not [c for c in planned.changes() if c[0] in ("replace", "delete")]
    journey.deploy(a)
    assert journey.verdicts[-1][1].code == 0, journey.verdicts[-1][1].output
    assert journey.engine.preview("staging", journey.config(a)).changes() == []  # settled


def test_secrets_created_by_hand_on_aws_are_adopted(fresh_moto: Server, tmp_path: Path) -> None:
    """Phase 2 by hand (`aws secretsmanager create-secret --name ... --secret-string ...`), then adopt ->
    import -> up. The value matches, so the imported version stays; the secrets get the program's
    description and tags in place, and the policies are created."""
    journey = aws_journey(fresh_moto, "staging", tmp_path)
    a = stages()[0]
    sm = boto3.client("secretsmanager", endpoint_url=fresh_moto.url, **BOTO)
    for key, secret in a.manifest.secrets.items():
        sm.create_secret(Name=f"{journey.namespace}/{secret.path}", SecretString=a.env[key])
    manifest, _ = journey.files(a)
    found = adopt(journey, manifest)
    assert found.code == 0, found.output
    spec = json.loads((tmp_path / "import.json").read_text())
    versions = [r for r in spec["resources"] if r["type"] == naming.AWS_SECRET_VERSION]
    assert len(versions) == 4 and all(
        r["id"].startswith("arn:aws:secretsmanager:") and "|" in r["id"] for r in versions
    )
    journey.engine.import_resources("staging", spec)
    planned = journey.preview(a)
    assert changed(planned, {naming.AWS_SECRET_VERSION}) == []  # the values match: no new version
    assert {op for op, _ in changed(planned, {naming.AWS_SECRET})} == {"update"}
    assert {op for op, _ in changed(planned, {naming.IAM_POLICY})} == {"create"}
    journey.deploy(a)
    assert journey.verdicts[-1][1].code == 0, journey.verdicts[-1][1].output
