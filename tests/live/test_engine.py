"""The test engine itself: each type's real call, ids shaped as the providers shape them, loud failures."""

import json
import re
import uuid

import boto3
import hvac
import pulumi
import pytest

from tests.live.engine import SECRET_SIG, SIG, LiveEngine, UnknownResourceType, secret
from tests.live.servers import BaoServer, Server

CANARY = "CANARY-engine-value-7c1e"


@pytest.fixture(autouse=True)
def no_stack_config() -> None:
    """These tests call the engine outside a program run: no stack config may linger from an earlier run."""
    pulumi.runtime.set_all_config({}, secret_keys=[])


def resource(typ: str, name: str, inputs: dict[str, object], custom: bool = True) -> pulumi.runtime.MockResourceArgs:
    return pulumi.runtime.MockResourceArgs(typ=typ, name=name, inputs=inputs, custom=custom)


def test_unknown_type_fails_loudly() -> None:
    engine = LiveEngine()
    with pytest.raises(UnknownResourceType, match="vault:index/authBackend:AuthBackend"):
        engine.new_resource(resource("vault:index/authBackend:AuthBackend", "approle", {"type": "approle"}))
    assert len(engine.errors) == 1


def test_unknown_invoke_fails_loudly() -> None:
    engine = LiveEngine()
    call = pulumi.runtime.MockCallArgs(token="aws:index/getCallerIdentity:getCallerIdentity", args={}, provider="")
    with pytest.raises(UnknownResourceType, match="getCallerIdentity"):
        engine.call(call)


def test_components_and_providers_are_accepted_without_a_call() -> None:
    engine = LiveEngine()
    assert engine.new_resource(resource("secrets-migration:index:VaultSecretStore", "secrets", {}, False)) == (
        None,
        {},
    )
    provider_id, state = engine.new_resource(resource("pulumi:providers:aws", "moto", {"region": "us-east-1"}))
    assert provider_id and state == {"region": "us-east-1"}
    assert engine.created == [("pulumi:providers:aws", "moto", provider_id)]


def test_explicit_vault_provider_is_used_for_its_resources(bao: BaoServer, root_client: hvac.Client) -> None:
    engine = LiveEngine()  # no fallback: only the provider's inputs can reach the server
    provider_id, _ = engine.new_resource(
        resource("pulumi:providers:vault", "vault", {"address": bao.url, "token": secret(bao.token)})
    )
    name = f"engine-{uuid.uuid4().hex[:8]}"
    args = resource(
        "vault:index/policy:Policy", "p", {"name": name, "policy": 'path "x/*" { capabilities = ["read"] }'}
    )
    args.provider = f"urn:pulumi:stack::project::pulumi:providers:vault::vault::{provider_id}"
    assert engine.new_resource(args)[0] == name  # vault_policy: the id is the name
    assert "x/*" in root_client.sys.read_acl_policy(name)["data"]["policy"]


def test_secret_v2_writes_decoded_data_json_and_keeps_it_secret(bao: BaoServer, root_client: hvac.Client) -> None:
    engine = LiveEngine(vault_addr=bao.url, vault_token=bao.token)
    name = f"engine/{uuid.uuid4().hex[:8]}"
    data_json = {SIG: SECRET_SIG, "value": json.dumps({"value": CANARY})}
    resource_id, state = engine.new_resource(
        resource("vault:kv/secretV2:SecretV2", "s", {"mount": "secret", "name": name, "dataJson": data_json})
    )
    assert resource_id == state["path"] == f"secret/data/{name}"
    assert state["dataJson"][SIG] == SECRET_SIG and state["data"][SIG] == SECRET_SIG
    read = root_client.secrets.kv.v2.read_secret_version(path=name, mount_point="secret", raise_on_deleted_version=True)
    assert read["data"]["data"] == {"value": CANARY}


def test_mount_creates_kv_v2(bao: BaoServer, root_client: hvac.Client) -> None:
    engine = LiveEngine(vault_addr=bao.url, vault_token=bao.token)
    path = f"kv-{uuid.uuid4().hex[:8]}"
    resource_id, state = engine.new_resource(
        resource("vault:index/mount:Mount", "m", {"path": path, "type": "kv", "options": {"version": "2"}})
    )
    assert resource_id == path and state["accessor"].startswith("kv_")
    mounted = root_client.sys.list_mounted_secrets_engines()["data"][f"{path}/"]
    assert mounted["type"] == "kv" and mounted["options"]["version"] == "2"


def test_aws_ids_are_shaped_like_the_provider_s(fresh_moto: Server) -> None:
    engine = LiveEngine(aws_endpoint=fresh_moto.url)
    arn, state = engine.new_resource(
        resource("aws:secretsmanager/secret:Secret", "s", {"name": "engine/one", "tags": {"env-key": "ONE"}})
    )
    assert arn is not None and arn == state["arn"]
    assert re.fullmatch(r"arn:aws:secretsmanager:us-east-1:\d{12}:secret:engine/one-\w{6}", arn)
    version_id, version = engine.new_resource(
        resource(
            "aws:secretsmanager/secretVersion:SecretVersion",
            "v",
            {"secretId": arn, "secretString": {SIG: SECRET_SIG, "value": CANARY}},
        )
    )
    assert version_id == f"{arn}|{version['versionId']}"  # secretVersionCreateResourceID
    assert version["secretString"][SIG] == SECRET_SIG

    iam = boto3.client(
        "iam", endpoint_url=fresh_moto.url, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )
    iam.create_role(
        RoleName="engine-role", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []})
    )
    doc = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": arn}],
    }
    policy_arn, _ = engine.new_resource(
        resource("aws:iam/policy:Policy", "p", {"name": "engine-read", "policy": json.dumps(doc)})
    )
    assert policy_arn == "arn:aws:iam::123456789012:policy/engine-read"
    attach_id, _ = engine.new_resource(
        resource(
            "aws:iam/rolePolicyAttachment:RolePolicyAttachment", "a", {"role": "engine-role", "policyArn": policy_arn}
        )
    )
    assert attach_id is not None
    assert re.fullmatch(r"engine-role-\d{14}\d{9}[0-9a-f]{8}", attach_id)  # id.PrefixedUniqueId("<role>-")
    attached = iam.list_attached_role_policies(RoleName="engine-role")["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [policy_arn]
