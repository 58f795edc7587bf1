"""The lifecycle engine itself, on small programs against the live OpenBao and moto: the step rules of
Pulumi's engine (protect, replace order, deletes, retainOnDelete, aliases), its `preview --json` digest,
its state, `import` and `state unprotect`, and loud failures for anything it does not implement."""

import json
import textwrap
import uuid
from pathlib import Path
from typing import Any

import boto3
import hvac
import pytest

from components.engine import Engine, EngineError, PreviewFailed, UnknownResourceType, UpdateFailed
from components.engine.program import UNKNOWN
from tests.live.servers import BaoServer, Server

CANARY = "CANARY-engine-value-7c1e"


def program(tmp_path: Path, body: str) -> Path:
    """A one-file Pulumi program in its own project directory (project name as the real one's)."""
    (tmp_path / "Pulumi.yaml").write_text("name: secrets-migration\nruntime: python\n", encoding="utf-8")
    main = tmp_path / "__main__.py"
    main.write_text("import pulumi\nimport pulumi_vault as vault\nimport pulumi_aws as aws\n" + textwrap.dedent(body))
    return main


POLICY = """
cfg = pulumi.Config()
vault.Policy(
    cfg.get("logical") or "p",
    name=cfg.require("name"),
    policy=cfg.get("text") or 'path "x/*" { capabilities = ["read"] }',
    opts=pulumi.ResourceOptions(
        protect=cfg.get_bool("protect") or False,
        retain_on_delete=cfg.get_bool("retain") or False,
        aliases=[pulumi.Alias(name=cfg.get("alias"))] if cfg.get("alias") else None,
    ),
)
"""


@pytest.fixture
def vault_engine(bao: BaoServer, tmp_path: Path) -> Engine:
    return Engine(vault_addr=bao.url, vault_token=bao.token, program=program(tmp_path, POLICY))


def policy_exists(client: hvac.Client, name: str) -> bool:
    return name in client.sys.list_policies()["data"]["policies"]


def test_protected_delete_fails_in_preview_with_the_engines_message_and_changes_nothing(
    vault_engine: Engine, root_client: hvac.Client
) -> None:
    name = f"engine-{uuid.uuid4().hex[:8]}"
    first = vault_engine.up("dev", {"name": name, "protect": True})
    urn = next(s.urn for s in first.steps if s.type == "vault:index/policy:Policy")
    with pytest.raises(PreviewFailed) as failed:
        vault_engine.up("dev", {"name": name, "logical": "renamed"})  # the old one would be deleted
    assert str(failed.value).startswith(f'resource "{urn}" cannot be deleted\nbecause it is protected.')
    assert f"`pulumi state unprotect '{urn}'`" in str(failed.value)
    assert policy_exists(root_client, name)  # nothing changed: not even the new resource was created
    assert vault_engine.state("dev").find(urn) is not None
    diagnostics = failed.value.digest["diagnostics"]
    assert [d["urn"] for d in diagnostics] == [urn]
    assert (
        diagnostics[0]["message"].startswith("error: Preview failed: resource ")
        and diagnostics[0]["severity"] == "error"
    )
    # The failed delete is shown as a step but not counted.
    assert [s["op"] for s in failed.value.digest["steps"]] == ["same", "create", "delete"]
    assert "delete" not in failed.value.digest["changeSummary"]

    vault_engine.unprotect(urn)  # pulumi state unprotect
    done = vault_engine.up("dev", {"name": name, "logical": "renamed"})
    assert ("delete", "vault:index/policy:Policy", "p") in done.changes()
    assert not policy_exists(root_client, name)  # create ran first, then the old one's delete removed the name


def test_replacement_refused_only_when_protected_in_state_and_in_program(
    vault_engine: Engine, root_client: hvac.Client
) -> None:
    name = f"engine-{uuid.uuid4().hex[:8]}"
    vault_engine.up("dev", {"name": name, "protect": True})
    with pytest.raises(PreviewFailed, match=r"unable to replace resource .*\nas it is currently marked for protection"):
        vault_engine.up("dev", {"name": f"{name}-2", "protect": True})  # `name` is ForceNew
    assert policy_exists(root_client, name) and not policy_exists(root_client, f"{name}-2")
    # Unprotecting in the program and replacing in one deploy is allowed (the engine checks old AND new).
    done = vault_engine.up("dev", {"name": f"{name}-2", "protect": False})
    assert done.changes() == [("replace", "vault:index/policy:Policy", "p")]
    assert [s.op for s in done.steps if s.name == "p"] == ["create-replacement", "replace", "delete-replaced"]
    assert policy_exists(root_client, f"{name}-2") and not policy_exists(root_client, name)


def test_retain_on_delete_forgets_without_calling_the_provider(vault_engine: Engine, root_client: hvac.Client) -> None:
    name = f"engine-{uuid.uuid4().hex[:8]}"
    vault_engine.up("dev", {"name": name, "retain": True})
    done = vault_engine.up("dev", {"name": f"{name}-other", "logical": "q"})
    assert ("delete", "vault:index/policy:Policy", "p") in done.changes()
    assert policy_exists(root_client, name)  # forgotten by the stack, still in Vault
    assert [r.name for r in vault_engine.state("dev").resources if r.custom] == ["q"]


def test_alias_keeps_identity(vault_engine: Engine, root_client: hvac.Client) -> None:
    name = f"engine-{uuid.uuid4().hex[:8]}"
    vault_engine.up("dev", {"name": name})
    moved = vault_engine.up("dev", {"name": name, "logical": "renamed", "alias": "p"})
    assert moved.changes() == []  # no create, no delete: the alias claims the old state
    assert [r.name for r in vault_engine.state("dev").resources if r.custom] == ["renamed"]
    assert policy_exists(root_client, name)


def test_digest_is_shaped_like_pulumi_preview_json(vault_engine: Engine) -> None:
    name = f"engine-{uuid.uuid4().hex[:8]}"
    first = vault_engine.preview("dev", {"name": name})
    assert first.digest["changeSummary"] == {"create": 2}  # the stack and the policy
    assert [s["op"] for s in first.digest["steps"]] == ["create", "create"]
    assert first.digest["steps"][1]["provider"].endswith(f"::default_7_14_0::{UNKNOWN}")  # a new default provider
    vault_engine.up("dev", {"name": name})
    same = vault_engine.preview("dev", {"name": name})
    assert same.digest["changeSummary"] == {"same": 2}
    root = same.digest["steps"][0]  # only the root stack's `same` step is shown
    assert len(same.digest["steps"]) == 1 and root["op"] == "same" and root["detailedDiff"] is None
    assert root["urn"] == "urn:pulumi:dev::secrets-migration::pulumi:pulumi:Stack::secrets-migration-dev"
    assert set(same.digest) == {"config", "steps", "duration", "changeSummary"}
    update = vault_engine.preview("dev", {"name": name, "text": 'path "y/*" { capabilities = ["read"] }'})
    step = update.digest["steps"][1]
    assert step["op"] == "update" and step["diffReasons"] == ["policy"] and "replaceReasons" not in step
    assert step["detailedDiff"] == {"policy": {"kind": "update", "inputDiff": False}}
    assert "protect" not in step["oldState"] and step["newState"]["inputs"]["name"] == name
    replace = vault_engine.preview("dev", {"name": f"{name}-2"})
    assert [s["op"] for s in replace.digest["steps"]] == ["same", "replace"]
    assert replace.digest["steps"][1]["replaceReasons"] == ["name"]
    assert replace.digest["steps"][1]["detailedDiff"]["name"]["kind"] == "update-replace"
    shown = vault_engine.preview("dev", {"name": f"{name}-2"}, show_replacement_steps=True)
    assert [s["op"] for s in shown.digest["steps"]] == ["same", "create-replacement", "replace", "delete-replaced"]
    assert shown.digest["changeSummary"] == {"same": 1, "replace": 1}


SECRET_PROGRAM = """
cfg = pulumi.Config()
vault.kv.SecretV2(
    "s",
    mount="secret",
    name=cfg.require("name"),
    data_json=pulumi.Output.secret(cfg.require("value")).apply(lambda v: '{"value": "' + v + '"}'),
    delete_all_versions=True,
    opts=pulumi.ResourceOptions(delete_before_replace=cfg.get_bool("dbr")),
)
"""


def test_secrets_are_masked_in_the_digest_and_never_in_the_state(
    bao: BaoServer, tmp_path: Path, root_client: hvac.Client
) -> None:
    engine = Engine(vault_addr=bao.url, vault_token=bao.token, program=program(tmp_path, SECRET_PROGRAM))
    name = f"engine/{uuid.uuid4().hex[:8]}"
    first = engine.up("dev", {"name": name, "value": CANARY}, secret_keys=["value"])
    assert first.digest["steps"][1]["newState"]["inputs"]["dataJson"] == "[secret]"
    assert first.digest["config"]["secrets-migration:value"] == "[secret]"
    exported = json.dumps(engine.state("dev").to_json())
    assert CANARY not in exported and CANARY not in json.dumps(first.digest)
    read = root_client.secrets.kv.v2.read_secret_version(path=name, mount_point="secret", raise_on_deleted_version=True)
    assert read["data"]["data"] == {"value": CANARY}
    secret = engine.state("dev").named("vault:kv/secretV2:SecretV2", "s")
    assert secret.id == f"secret/data/{name}" and secret.outputs["data"] == {}  # kvSecretV2Read sets data = {}

    # A reloaded state still knows whether a value changed (salted digests), without holding it.
    reloaded = Engine(vault_addr=bao.url, vault_token=bao.token, program=engine.program)
    reloaded.states["dev"] = type(engine.state("dev")).from_json(json.loads(exported))
    assert reloaded.preview("dev", {"name": name, "value": CANARY}, secret_keys=["value"]).changes() == []
    rotated = reloaded.preview("dev", {"name": name, "value": CANARY + "-2"}, secret_keys=["value"])
    assert rotated.changes() == [("update", "vault:kv/secretV2:SecretV2", "s")]


@pytest.mark.parametrize(("dbr", "kept"), [(True, True), (False, False)], ids=["delete-before-replace", "create-first"])
def test_same_name_replacement_of_a_kv_secret(
    bao: BaoServer, tmp_path: Path, root_client: hvac.Client, dbr: bool, kept: bool
) -> None:
    """Create-before-delete at one name writes a new version, then the old one's delete removes the metadata:
    the secret is gone (lifecycle.md, reproduced). deleteBeforeReplace deletes first, then writes: kept."""
    engine = Engine(vault_addr=bao.url, vault_token=bao.token, program=program(tmp_path, SECRET_PROGRAM))
    name = f"engine/{uuid.uuid4().hex[:8]}"
    config = {"name": name, "value": CANARY, "dbr": dbr}
    first = engine.up("dev", config, secret_keys=["value"])
    urn = next(s.urn for s in first.steps if s.name == "s")
    again = engine.up("dev", config, secret_keys=["value"], replace=[urn])  # pulumi up --replace URN
    order = [s.op for s in again.steps if s.name == "s"]
    assert order == (
        ["delete-replaced", "create-replacement", "replace"]
        if dbr
        else ["create-replacement", "replace", "delete-replaced"]
    )
    assert (root_client.read(f"secret/data/{name}") is not None) is kept


def test_unknown_types_inputs_and_invokes_fail_loudly(bao: BaoServer, tmp_path: Path) -> None:
    cases = {
        "type": 'vault.Token("t", policies=["x"])',
        "input": 'vault.Policy("p", name="x", policy="#", opts=None); vault.kv.SecretV2("s", mount="secret", '
        'name="x", data_json="{}", custom_metadata={"max_versions": 2})',
        "invoke": 'vault.generic.get_secret(path="secret/x")',
    }
    for label, body in cases.items():
        folder = tmp_path / label
        folder.mkdir()
        engine = Engine(vault_addr=bao.url, vault_token=bao.token, program=program(folder, body))
        with pytest.raises(UnknownResourceType):
            engine.up("dev")
        assert all(not r.custom for r in engine.state("dev").resources), label


def test_aws_secret_lifecycle_calls(moto: Server, tmp_path: Path) -> None:
    """Secret: tags updated in place; SecretVersion: a new value replaces the version and the old value
    stays in the secret's history; delete honours the recovery window."""
    body = """
    cfg = pulumi.Config()
    s = aws.secretsmanager.Secret("s", name=cfg.require("name"), tags={"k": cfg.require("tag")},
                                  recovery_window_in_days=cfg.require_int("window"))
    if cfg.get_bool("keep") is not False:
        aws.secretsmanager.SecretVersion("s", secret_id=s.id, secret_string=pulumi.Output.secret(cfg.require("value")))
    """
    engine = Engine(aws_endpoint=moto.url, program=program(tmp_path, body))
    sm = boto3.client(
        "secretsmanager",
        endpoint_url=moto.url,
        region_name="us-east-1",
        aws_access_key_id="t",
        aws_secret_access_key="t",
    )
    name = f"engine/{uuid.uuid4().hex[:8]}"
    config: dict[str, Any] = {"name": name, "tag": "a", "window": 7, "value": CANARY}
    engine.up("dev", config, secret_keys=["value"])
    arn = engine.state("dev").named("aws:secretsmanager/secret:Secret", "s").id
    assert (
        arn.startswith("arn:aws:secretsmanager:us-east-1:")
        and sm.get_secret_value(SecretId=name)["SecretString"] == CANARY
    )

    rotated = engine.up("dev", {**config, "tag": "b", "value": CANARY + "-2"}, secret_keys=["value"])
    assert sorted(rotated.changes()) == [
        ("replace", "aws:secretsmanager/secretVersion:SecretVersion", "s"),
        ("update", "aws:secretsmanager/secret:Secret", "s"),
    ]
    assert sm.describe_secret(SecretId=name)["Tags"] == [{"Key": "k", "Value": "b"}]
    versions = sm.list_secret_version_ids(SecretId=name)["Versions"]
    assert sorted(tuple(v["VersionStages"]) for v in versions) == [("AWSCURRENT",), ("AWSPREVIOUS",)]
    assert CANARY not in json.dumps(engine.state("dev").to_json()) + json.dumps(rotated.digest)

    # Another stack creating that name (as after the runbook's create-secret by hand) fails as AWS does.
    (tmp_path / "twin").mkdir()
    twin = Engine(aws_endpoint=moto.url, program=program(tmp_path / "twin", body))
    with pytest.raises(UpdateFailed, match=rf"creating Secrets Manager Secret \({name}\): .*ResourceExistsException"):
        twin.up("dev", config, secret_keys=["value"])

    dropped = engine.up("dev", {**config, "tag": "b", "keep": False}, secret_keys=["value"])
    assert dropped.changes() == [("delete", "aws:secretsmanager/secretVersion:SecretVersion", "s")]
    assert sm.get_secret_value(SecretId=name)["SecretString"] == CANARY + "-2"  # only stage labels go
    gone = engine.up("dev", {**config, "tag": "b", "keep": False, "name": f"{name}-b"}, secret_keys=["value"])
    assert ("replace", "aws:secretsmanager/secret:Secret", "s") in gone.changes()
    assert sm.describe_secret(SecretId=name)["DeletedDate"]  # scheduled for deletion (7 days), not gone


def test_iam_description_change_under_a_fixed_name_fails_as_aws_does(moto: Server, tmp_path: Path) -> None:
    """Issue 8 problem 5: `description` is ForceNew, so the replacement creates the new policy first, and
    IAM refuses a second policy of that name. The program keeps descriptions fixed per name (naming.py)."""
    body = """
    cfg = pulumi.Config()
    aws.iam.Policy("p", name=cfg.require("name"), description=cfg.require("description"),
                   policy='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}')
    """
    engine = Engine(aws_endpoint=moto.url, program=program(tmp_path, body))
    name = f"engine-{uuid.uuid4().hex[:8]}"
    engine.up("dev", {"name": name, "description": "one"})
    planned = engine.preview("dev", {"name": name, "description": "two"})
    assert planned.changes() == [("replace", "aws:iam/policy:Policy", "p")]
    with pytest.raises(UpdateFailed, match=rf"creating IAM Policy \({name}\): .*EntityAlreadyExists"):
        engine.up("dev", {"name": name, "description": "two"})
    iam = boto3.client(
        "iam", endpoint_url=moto.url, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )
    arn = engine.state("dev").named("aws:iam/policy:Policy", "p").id
    assert iam.get_policy(PolicyArn=arn)["Policy"]["Description"] == "one"  # the old one is untouched


def test_import_reads_the_resource_and_skips_what_the_stack_has(vault_engine: Engine, root_client: hvac.Client) -> None:
    name = f"engine-{uuid.uuid4().hex[:8]}"
    root_client.sys.create_or_update_policy(name=name, policy='path "x/*" { capabilities = ["read"] }')
    spec = {"resources": [{"type": "vault:index/policy:Policy", "name": "p", "id": name}]}
    steps = vault_engine.import_resources("dev", spec)
    assert [(s.op, s.name) for s in steps] == [("import", "p")]
    assert vault_engine.state("dev").named("vault:index/policy:Policy", "p").protect  # `pulumi import` protects
    assert vault_engine.import_resources("dev", spec) == []  # already there with that id
    assert vault_engine.preview("dev", {"name": name}).changes() == []  # the program matches what was read
    with pytest.raises(EngineError, match="does not exist"):
        vault_engine.import_resources(
            "dev", {"resources": [{"type": "vault:index/policy:Policy", "name": "q", "id": "nope-" + name}]}
        )
    with pytest.raises(EngineError, match="No such resource"):
        vault_engine.unprotect("urn:pulumi:dev::secrets-migration::vault:index/policy:Policy::nope")


def test_iam_policy_updates_prune_old_versions_and_attachments_detach(moto: Server, tmp_path: Path) -> None:
    """policy.go: an update is a new default version, the oldest non-default pruned at IAM's limit of 5;
    role_policy_attachment.go: removing the attachment detaches the policy."""
    body = """
    cfg = pulumi.Config()
    p = aws.iam.Policy("p", name=cfg.require("name"), description="fixed",
                       policy='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject",'
                              '"Resource":"arn:aws:s3:::' + cfg.require("bucket") + '/*"}]}')
    if cfg.get("role"):
        aws.iam.RolePolicyAttachment("a", role=cfg.require("role"), policy_arn=p.arn)
    """
    engine = Engine(aws_endpoint=moto.url, program=program(tmp_path, body))
    iam = boto3.client(
        "iam", endpoint_url=moto.url, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )
    role, name = f"role-{uuid.uuid4().hex[:8]}", f"engine-{uuid.uuid4().hex[:8]}"
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))
    for bucket in range(7):
        engine.up("dev", {"name": name, "bucket": f"b{bucket}", "role": role})
    arn = engine.state("dev").named("aws:iam/policy:Policy", "p").id
    versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
    assert len(versions) == 5
    default = next(v["VersionId"] for v in versions if v["IsDefaultVersion"])
    document = iam.get_policy_version(PolicyArn=arn, VersionId=default)["PolicyVersion"]["Document"]
    assert "arn:aws:s3:::b6/*" in json.dumps(document)
    assert [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]] == [arn]
    done = engine.up("dev", {"name": name, "bucket": "b6"})
    assert done.changes() == [("delete", "aws:iam/rolePolicyAttachment:RolePolicyAttachment", "a")]
    assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []


def test_mounts_tune_remount_and_unmount(bao: BaoServer, tmp_path: Path, root_client: hvac.Client) -> None:
    """resource_mount.go / resource_auth_backend.go: a path change is a remount (an update, the data moves
    along), a description change a tune; deleting unmounts (which the program never lets a deploy do)."""
    body = """
    cfg = pulumi.Config()
    if cfg.get_bool("present") is not False:
        vault.Mount("m", path=cfg.require("kv"), type="kv", options={"version": "2"}, description=cfg.require("text"))
        vault.AuthBackend("a", type="approle", path=cfg.require("auth"), description=cfg.require("text"))
    """
    engine = Engine(vault_addr=bao.url, vault_token=bao.token, program=program(tmp_path, body))
    kv, auth = f"kv{uuid.uuid4().hex[:8]}", f"ar{uuid.uuid4().hex[:8]}"
    engine.up("dev", {"kv": kv, "auth": auth, "text": "one"})
    root_client.secrets.kv.v2.create_or_update_secret(path="x", secret={"value": CANARY}, mount_point=kv)
    moved = engine.up("dev", {"kv": f"{kv}b", "auth": f"{auth}b", "text": "two"})
    assert sorted(moved.changes()) == [
        ("update", "vault:index/authBackend:AuthBackend", "a"),
        ("update", "vault:index/mount:Mount", "m"),
    ]
    mounts, auths = root_client.sys.list_mounted_secrets_engines()["data"], root_client.sys.list_auth_methods()["data"]
    assert f"{kv}/" not in mounts and mounts[f"{kv}b/"]["description"] == "two"
    assert f"{auth}/" not in auths and auths[f"{auth}b/"]["description"] == "two"
    assert root_client.read(f"{kv}b/data/x")["data"]["data"] == {"value": CANARY}
    engine.up("dev", {"present": False})
    assert f"{kv}b/" not in root_client.sys.list_mounted_secrets_engines()["data"]
    assert f"{auth}b/" not in root_client.sys.list_auth_methods()["data"]
