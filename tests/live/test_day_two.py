"""Issue 8's problems, one test each where the engine is involved, on the real program and real servers.
Each fails on the program before the fix (commit ed7b09e); the journeys in test_lifecycle.py cover the
rest of every deploy after the first."""

import dataclasses
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import boto3
import hvac
import pytest

from components import naming
from components.engine import Engine, EngineError, PreviewFailed, StackState, UpdateFailed
from components.manifest import Manifest, dump, load
from tests.conftest import EXAMPLE_ENV, REPO
from tests.live.conftest import Outcome, aws_env, legacy, run_cli, unique_namespace
from tests.live.servers import MOTO_ENV, BaoServer, Server

MANIFEST = load(REPO / "secrets.manifest.yaml")
BOTO = {
    "region_name": MOTO_ENV["AWS_REGION"],
    "aws_access_key_id": MOTO_ENV["AWS_ACCESS_KEY_ID"],
    "aws_secret_access_key": MOTO_ENV["AWS_SECRET_ACCESS_KEY"],
}


def config(namespace: str, **extra: object) -> dict[str, object]:
    return {"namespace": namespace, "allowNamespaceOverride": True, "envFile": str(EXAMPLE_ENV), **extra}


def kv_value(client: hvac.Client, mount: str, namespace: str, path: str) -> str | None:
    found = client.read(f"{mount}/data/{namespace}/{path}")
    return None if found is None else str(found["data"]["data"]["value"])


def gate(tmp_path: Path, digest: dict[str, Any], *flags: str) -> Outcome:
    path = tmp_path / "preview.json"
    path.write_text(json.dumps(digest), encoding="utf-8")
    return run_cli({}, "gate", str(path), *flags)


# --- problem 1: a same-path replacement loses the secret ------------------------------------------------


def test_a_replacement_at_the_same_path_keeps_the_secret(bao: BaoServer, root_client: hvac.Client) -> None:
    """`pulumi up --replace` (or any same-name replacement) of a SecretV2: delete first, then write, so
    the value is there afterwards (create-before-delete would delete what it just wrote)."""
    namespace = unique_namespace()
    engine = Engine(vault_addr=bao.url, vault_token=bao.token)
    first = engine.up("staging", config(namespace))
    [urn] = [s.urn for s in first.steps if s.new and s.new.inputs.get("name") == f"{namespace}/database/password"]
    again = engine.up("staging", config(namespace), replace=[urn])
    assert kv_value(root_client, "secret", namespace, "database/password") == "FAKE-database-password-0003"
    assert [s.op for s in again.steps if s.urn == urn] == ["delete-replaced", "create-replacement", "replace"]


@pytest.mark.parametrize("backend", ["vault", "aws"])
def test_existing_stacks_keep_their_secrets_when_names_follow_paths(backend: str, bao: BaoServer, moto: Server) -> None:
    """A stack deployed with the old logical names upgrades without a create, replace or delete of any
    secret: the old names are aliases."""
    namespace = unique_namespace()
    engine = Engine(vault_addr=bao.url, vault_token=bao.token, aws_endpoint=moto.url)
    settings = config(namespace, **({"backend": "aws", "awsRecoveryWindowInDays": 7} if backend == "aws" else {}))
    engine.up("staging", settings)
    engine.states["staging"] = legacy(engine.state("staging"))
    assert any(r.name == "secrets-DATABASE_PASSWORD" for r in engine.state("staging").resources)
    upgraded = engine.up("staging", settings)
    types = {naming.VAULT_SECRET, naming.AWS_SECRET, naming.AWS_SECRET_VERSION}
    assert [c for c in upgraded.changes() if c[1] in types] == []
    assert {r.name for r in engine.state("staging").resources if r.type in types} == {
        naming.secret_logical_name(s.path) for s in MANIFEST.secrets.values()
    }


def test_upgrading_and_renaming_a_key_in_one_deploy_is_refused_by_the_gate(
    bao: BaoServer, root_client: hvac.Client, tmp_path: Path
) -> None:
    """The alias names the old key, so a key renamed in the same deploy as the upgrade is a delete of
    `secrets-OLD` and a create of `secrets/<path>` on one backend name: the gate refuses it on every
    stack. (Deployed anyway, the create writes and the delete then removes the secret.)"""
    namespace = unique_namespace()
    engine = Engine(vault_addr=bao.url, vault_token=bao.token)
    engine.up("staging", config(namespace))
    engine.states["staging"] = legacy(engine.state("staging"))
    manifest = (REPO / "secrets.manifest.yaml").read_text().replace("DATABASE_PASSWORD:", "DB_PASSWORD:")
    env = EXAMPLE_ENV.read_text().replace("DATABASE_PASSWORD=", "DB_PASSWORD=")
    (tmp_path / "m.yaml").write_text(manifest)
    (tmp_path / ".env").write_text(env)
    renamed = config(namespace, manifest=str(tmp_path / "m.yaml"), envFile=str(tmp_path / ".env"))
    planned = engine.preview("staging", renamed)
    verdict = gate(tmp_path, planned.digest)
    assert verdict.code == 1, verdict.output
    assert "`secrets-DATABASE_PASSWORD` is deleted and `secrets/database/password` created" in verdict.stdout
    engine.up("staging", renamed)  # what the gate prevents
    assert kv_value(root_client, "secret", namespace, "database/password") is None


# --- problem 2: a rotation on a protected AWS stack ------------------------------------------------------


def test_a_rotation_deploys_on_a_protected_aws_stack(moto: Server, tmp_path: Path) -> None:
    namespace = unique_namespace()
    engine = Engine(aws_endpoint=moto.url)
    engine.up("prod", config(namespace, backend="aws"))
    rotated = EXAMPLE_ENV.read_text().replace("FAKE-redis-password-0004", "FAKE-redis-password-rotated")
    (tmp_path / ".env").write_text(rotated)
    planned = engine.preview("prod", config(namespace, backend="aws", envFile=str(tmp_path / ".env")))
    assert planned.changes() == [("replace", naming.AWS_SECRET_VERSION, "secrets/redis/password")]
    assert gate(tmp_path, planned.digest, "--protected").code == 0
    engine.up("prod", config(namespace, backend="aws", envFile=str(tmp_path / ".env")))  # no unprotect needed
    sm = boto3.client("secretsmanager", endpoint_url=moto.url, **BOTO)
    name = f"{namespace}/redis/password"
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "FAKE-redis-password-rotated"
    previous = sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")["SecretString"]
    assert previous == "FAKE-redis-password-0004"  # the old value stays in the history
    assert engine.state("prod").named(naming.AWS_SECRET, "secrets/redis/password").protect


# --- problem 3: removing, then re-adding an AWS secret inside its recovery window -------------------------


def test_re_adding_a_removed_aws_secret_goes_through_adopt(moto: Server, tmp_path: Path) -> None:
    """The revert of a removal inside the recovery window is refused at preview, before anything changes,
    with the way out; without the program's check it would fail half-way through at CreateSecret (the
    name is reserved for the window). `adopt --restore` + import + up brings the secret back."""
    namespace = unique_namespace()
    engine = Engine(aws_endpoint=moto.url)
    full = config(namespace, backend="aws", awsRecoveryWindowInDays=7)
    engine.up("staging", full)
    (tmp_path / "m.yaml").write_text(dump(without(MANIFEST, "REDIS_PASSWORD")))
    engine.up("staging", {**full, "manifest": str(tmp_path / "m.yaml")})
    before = engine.state("staging").to_json()
    way_out = (
        f"{namespace}/redis/password: scheduled for deletion (AWS keeps the name for the recovery window), "
        f"so `pulumi up` cannot create it again; run `python -m components adopt --backend aws --namespace "
        f"{namespace} --restore`, then `pulumi import --file import.json`, then `pulumi up`"
    )
    with pytest.raises(EngineError) as refused_at_preview:
        engine.preview("staging", full)
    assert str(refused_at_preview.value) == way_out
    with pytest.raises(EngineError, match="scheduled for deletion"):
        engine.up("staging", full)
    assert engine.state("staging").to_json() == before  # nothing half-applied
    unchecked = Engine(aws_endpoint=moto.url, states={"staging": StackState.from_json(before)})
    with pytest.raises(UpdateFailed, match=rf"creating Secrets Manager Secret \({namespace}/redis/password\)"):
        unchecked.up("staging", {**full, "awsCheckRecoveryWindow": False})  # what the check prevents
    env = aws_env(moto)
    refused = run_cli(env, "adopt", "--backend", "aws", "--namespace", namespace, "--out", str(tmp_path / "i.json"))
    assert refused.code == 2 and refused.stdout == ""
    assert refused.stderr == f"error: {way_out}\n"
    restored = run_cli(
        env, "adopt", "--backend", "aws", "--namespace", namespace, "--restore", "--out", str(tmp_path / "i.json")
    )
    assert restored.code == 0 and f"restored from scheduled deletion: {namespace}/redis/password" in restored.stdout
    engine.import_resources("staging", json.loads((tmp_path / "i.json").read_text()))
    done = engine.up("staging", full)
    assert not [c for c in done.changes() if c[0] in ("create", "replace", "delete") and "redis" in c[2]]
    sm = boto3.client("secretsmanager", endpoint_url=moto.url, **BOTO)
    assert sm.get_secret_value(SecretId=f"{namespace}/redis/password")["SecretString"] == "FAKE-redis-password-0004"


def without(manifest: Manifest, key: str) -> Manifest:
    return dataclasses.replace(manifest, secrets={k: v for k, v in manifest.secrets.items() if k != key})


# --- problem 4: a managed mount is never deleted by an ordinary deploy ----------------------------------------


def test_managed_mounts_are_never_deleted_by_a_deploy(bao: BaoServer, root_client: hvac.Client, tmp_path: Path) -> None:
    namespace, mount, approle = unique_namespace(), f"kv{uuid.uuid4().hex[:8]}", f"ar{uuid.uuid4().hex[:8]}"
    engine = Engine(vault_addr=bao.url, vault_token=bao.token)
    managed = config(
        namespace, vaultMount=mount, vaultManageMount=True, vaultAppRoleMount=approle, vaultManageAppRoleMount=True
    )
    engine.up("staging", managed)
    unmanaged = {**managed, "vaultManageMount": False, "vaultManageAppRoleMount": False}
    planned = engine.preview("staging", unmanaged)
    engine.up("staging", unmanaged)  # retainOnDelete: forgotten by the stack, not unmounted
    assert f"{mount}/" in root_client.sys.list_mounted_secrets_engines()["data"]
    assert kv_value(root_client, mount, namespace, "database/password") == "FAKE-database-password-0003"
    assert f"{approle}/" in root_client.sys.list_auth_methods()["data"]
    assert root_client.read(f"auth/{approle}/role/{namespace}-orchestrator") is not None
    assert sorted(c for c in planned.changes() if c[0] == "delete") == [
        ("delete", naming.VAULT_AUTH_BACKEND, "secrets-approle"),
        ("delete", naming.VAULT_MOUNT, "secrets-mount"),
    ]
    verdict = gate(tmp_path, planned.digest)  # staging: not protected, still refused
    assert verdict.code == 1 and "`--allow-delete secrets-approle` `--allow-delete secrets-mount`" in verdict.stdout


# --- problem 7: one Vault address for deploy and verify ------------------------------------------------------


def test_deploy_and_verify_take_the_vault_address_from_the_environment(bao: BaoServer) -> None:
    """The committed staging stack, deployed with only VAULT_ADDR/VAULT_TOKEN (no `vault:address` in the
    stack file: the provider would prefer it), then verified with the same variables."""
    namespace = unique_namespace()
    Engine(vault_addr=bao.url, vault_token=bao.token).up("staging", config(namespace))
    outcome = run_cli(bao.env, "verify", "--backend", "vault", "--namespace", namespace, "--env-file", str(EXAMPLE_ENV))
    assert outcome.code == 0, outcome.output


# --- problem 8: a plain leaf under `values` ----------------------------------------------------------------------


def test_a_plain_values_leaf_stops_the_deploy_before_anything_changes(
    bao: BaoServer, root_client: hvac.Client, tmp_path: Path
) -> None:
    """`pulumi config set --path values.REDIS_PASSWORD x` (no --secret) next to secret leaves: the program
    stops naming the key, and nothing reaches Vault."""
    for name in ("Pulumi.yaml", "__main__.py", "secrets.manifest.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    stack_file = (REPO / "Pulumi.staging.yaml").read_text()
    stack_file += (
        "  secrets-migration:values:\n    DATABASE_PASSWORD:\n      secure: v1:AAAA\n    REDIS_PASSWORD: plain\n"
    )
    (tmp_path / "Pulumi.staging.yaml").write_text(stack_file)
    namespace = unique_namespace()
    engine = Engine(vault_addr=bao.url, vault_token=bao.token, program=tmp_path / "__main__.py")
    values = {"DATABASE_PASSWORD": "FAKE-x-1", "REDIS_PASSWORD": "FAKE-x-2"}
    with pytest.raises(EngineError, match="stored in plain text: REDIS_PASSWORD") as failed:
        engine.up("staging", config(namespace, values=values), secret_keys=["values"])
    assert not isinstance(failed.value, PreviewFailed) and "FAKE-x" not in str(failed.value)
    assert root_client.list(f"secret/metadata/{namespace}/") is None
