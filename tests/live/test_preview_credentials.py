"""The preview credentials of docs/ci.md (issue 9.6), applied verbatim from docs/ci/ to real servers: they
allow what a `pulumi preview --refresh=false` does and can neither read a secret's value nor write.

OpenBao: the policy file is written as an ACL policy; a token holding only it (and the child token the
Vault provider mints from it) is tried against every path a preview could misuse.

moto (its own server, because IAM enforcement applies to every request it serves): the IAM policy is
attached to a user, and `POST /moto-api/reset-auth` with 0 turns enforcement on. What moto enforces, and
so what this test can prove: the action of each request is checked against the caller's policies,
with explicit Deny winning; resources are NOT checked for Secrets Manager (every request is evaluated
against `Resource: "*"`), and `sts:GetCallerIdentity` is always allowed, as on AWS. The preview policy
denies every action on `*`, so moto's action-level evaluation is exactly what it needs. A control user
with an allow-all policy shows the denials come from the policy, not from enforcement refusing everyone.
"""

import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import hvac
import hvac.exceptions
import parliament
import pytest
import requests
from botocore.exceptions import ClientError

from tests.conftest import REPO
from tests.live.conftest import unique_namespace
from tests.live.servers import MOTO_ENV, BaoServer, Server, start_moto

VAULT_POLICY = REPO / "docs" / "ci" / "preview-vault-policy.hcl"
IAM_POLICY = REPO / "docs" / "ci" / "preview-iam-policy.json"
CANARY = f"canary-preview-{uuid.uuid4().hex[:8]}"


# --- Vault (OpenBao) --------------------------------------------------------------------------------


class VaultPreview:
    def __init__(self, bao: BaoServer, root: hvac.Client) -> None:
        self.namespace = unique_namespace()
        self.policy = f"ci-preview-{self.namespace}"
        self.path = f"{self.namespace}/database/password"
        root.sys.create_or_update_policy(self.policy, VAULT_POLICY.read_text(encoding="utf-8"))
        root.sys.create_or_update_policy(
            f"{self.namespace}-secrets-read", 'path "secret/*" { capabilities = ["read"] }'
        )
        root.secrets.kv.v2.create_or_update_secret(path=self.path, secret={"value": CANARY}, mount_point="secret")
        created = root.auth.token.create(policies=[self.policy], no_default_policy=True, ttl="10m")
        self.token = created["auth"]["client_token"]
        self.client = hvac.Client(url=bao.url, token=self.token)
        self.root = root
        self.url = bao.url


@pytest.fixture(scope="module")
def vault(bao: BaoServer, root_client: hvac.Client) -> VaultPreview:
    return VaultPreview(bao, root_client)


def test_the_token_can_do_what_the_provider_does_when_it_configures(vault: VaultPreview) -> None:
    """terraform-provider-vault meta.go: token lookup-self, then a child token (TTL 1200 s, not renewable)."""
    me = vault.client.auth.token.lookup_self()["data"]
    assert me["policies"] == [vault.policy]
    child = vault.client.auth.token.create(
        display_name="terraform", ttl="1200s", explicit_max_ttl="1200s", renewable=False
    )
    assert child["auth"]["policies"] == [vault.policy]


def _clients(vault: VaultPreview) -> list[hvac.Client]:
    """The preview token and a child token minted from it, as the provider would use."""
    child = vault.client.auth.token.create(display_name="terraform", ttl="60s")["auth"]["client_token"]
    return [vault.client, hvac.Client(url=vault.url, token=child)]


def test_no_secret_value_metadata_or_policy_can_be_read(vault: VaultPreview) -> None:
    for client in _clients(vault):
        for attempt in (
            lambda c=client: c.secrets.kv.v2.read_secret_version(
                path=vault.path, mount_point="secret", raise_on_deleted_version=True
            ),
            lambda c=client: c.secrets.kv.v2.read_secret_metadata(path=vault.path, mount_point="secret"),
            lambda c=client: c.secrets.kv.v2.list_secrets(path=vault.namespace, mount_point="secret"),
            lambda c=client: c.sys.read_policy(f"{vault.namespace}-secrets-read"),
            lambda c=client: c.sys.list_mounted_secrets_engines(),
            lambda c=client: c.read("auth/approle/role"),
        ):
            with pytest.raises(hvac.exceptions.Forbidden) as denied:
                attempt()
            assert CANARY not in str(denied.value)
        raw = requests.get(
            f"{vault.url}/v1/secret/data/{vault.path}", headers={"X-Vault-Token": client.token}, timeout=10
        )
        assert raw.status_code == 403 and CANARY not in raw.text
    capabilities = vault.root.sys.get_capabilities(
        paths=[f"secret/data/{vault.path}", f"secret/metadata/{vault.path}", "sys/policies/acl/x", "sys/mounts/x"],
        token=vault.token,
    )
    assert {path: caps for path, caps in capabilities.items() if path != "request_id" and "/" in path} == {
        f"secret/data/{vault.path}": ["deny"],
        f"secret/metadata/{vault.path}": ["deny"],
        "sys/policies/acl/x": ["deny"],
        "sys/mounts/x": ["deny"],
    }


def test_nothing_can_be_written_nor_a_stronger_token_minted(vault: VaultPreview) -> None:
    forbidden = hvac.exceptions.Forbidden
    # Vault answers 400 for these: "child policies must be subset of parent", "root or sudo privileges
    # required to create orphan token"
    refused = hvac.exceptions.InvalidRequest
    for client in _clients(vault):
        for expected, attempt in (
            (
                forbidden,
                lambda c=client: c.secrets.kv.v2.create_or_update_secret(
                    path=vault.path, secret={"value": "overwritten"}, mount_point="secret"
                ),
            ),
            (
                forbidden,
                lambda c=client: c.secrets.kv.v2.delete_metadata_and_all_versions(
                    path=vault.path, mount_point="secret"
                ),
            ),
            (
                forbidden,
                lambda c=client: c.sys.create_or_update_policy(
                    f"{vault.namespace}-x-read", 'path "*" { capabilities = ["sudo"] }'
                ),
            ),
            (forbidden, lambda c=client: c.sys.enable_secrets_engine("kv", path=f"{vault.namespace}-kv")),
            (forbidden, lambda c=client: c.write("auth/approle/role/x", token_policies="root")),
            # a child token carries at most its parent's policies, and an orphan needs sudo
            (refused, lambda c=client: c.auth.token.create(policies=[f"{vault.namespace}-secrets-read"])),
            (refused, lambda c=client: c.auth.token.create(policies=["root"])),
            (refused, lambda c=client: c.auth.token.create(no_parent=True)),
            (forbidden, lambda c=client: c.auth.token.create_orphan()),
        ):
            with pytest.raises(expected):
                attempt()
    stored = vault.root.secrets.kv.v2.read_secret_version(
        path=vault.path, mount_point="secret", raise_on_deleted_version=True
    )
    assert stored["data"]["data"] == {"value": CANARY}  # untouched


# --- AWS (moto with IAM enforcement) ------------------------------------------------------------------


def test_the_iam_policy_lints_clean_with_parliament() -> None:
    text = IAM_POLICY.read_text(encoding="utf-8")
    assert [f.issue for f in parliament.analyze_policy_string(text).findings] == []
    # the linter is real: a misspelled action is reported
    typo = text.replace('"Action": "secretsmanager:ListSecrets"', '"Action": "secretsmanager:GetSecretValu"')
    assert "UNKNOWN_ACTION" in [f.issue for f in parliament.analyze_policy_string(typo).findings]


@pytest.fixture(scope="module")
def enforcing_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_moto(tmp_path_factory.mktemp("moto-iam"))
    try:
        yield server
    finally:
        server.stop()


def _client(service: str, url: str, key_id: str, secret: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=MOTO_ENV["AWS_REGION"],
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
    )


@pytest.fixture(scope="module")
def aws_users(enforcing_moto: Server) -> dict[str, tuple[str, str]]:
    """Users and their keys, made before enforcement starts: `preview` (the policy alone), `preview+admin`
    (the policy and an allow-all one: the Deny must still win) and `control` (allow-all only)."""
    url = enforcing_moto.url
    setup = {
        name: _client(name, url, MOTO_ENV["AWS_ACCESS_KEY_ID"], MOTO_ENV["AWS_SECRET_ACCESS_KEY"])
        for name in ("iam", "secretsmanager")
    }
    setup["secretsmanager"].create_secret(Name="prod/database/password", SecretString=CANARY)
    preview = setup["iam"].create_policy(PolicyName="ci-preview", PolicyDocument=IAM_POLICY.read_text(encoding="utf-8"))
    admin_document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    admin = setup["iam"].create_policy(PolicyName="allow-all", PolicyDocument=json.dumps(admin_document))
    grants = {
        "preview": [preview["Policy"]["Arn"]],
        "preview+admin": [preview["Policy"]["Arn"], admin["Policy"]["Arn"]],
        "control": [admin["Policy"]["Arn"]],
    }
    keys: dict[str, tuple[str, str]] = {}
    for user, arns in grants.items():
        name = user.replace("+", "-")
        setup["iam"].create_user(UserName=name)
        for arn in arns:
            setup["iam"].attach_user_policy(UserName=name, PolicyArn=arn)
        key = setup["iam"].create_access_key(UserName=name)["AccessKey"]
        keys[user] = (key["AccessKeyId"], key["SecretAccessKey"])
    requests.post(f"{url}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
    return keys


def _denied(call: Any) -> bool:
    """True when the call is refused for lack of permission (moto answers Secrets Manager's JSON protocol
    with an XML 403 that botocore does not parse, so the status code is what is reliable)."""
    try:
        call()
    except ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    return False


def _attempts(sm: Any, iam: Any) -> dict[str, Any]:
    document = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
    return {
        "GetSecretValue": lambda: sm.get_secret_value(SecretId="prod/database/password"),
        "BatchGetSecretValue": lambda: sm.batch_get_secret_value(SecretIdList=["prod/database/password"]),
        "DescribeSecret": lambda: sm.describe_secret(SecretId="prod/database/password"),
        "ListSecrets": lambda: sm.list_secrets(),
        "PutSecretValue": lambda: sm.put_secret_value(SecretId="prod/database/password", SecretString="overwritten"),
        "CreateSecret": lambda: sm.create_secret(Name=f"prod/new-{uuid.uuid4().hex[:6]}", SecretString="x"),
        "DeleteSecret": lambda: sm.delete_secret(SecretId="prod/database/password", ForceDeleteWithoutRecovery=True),
        "TagResource": lambda: sm.tag_resource(
            SecretId="prod/database/password", Tags=[{"Key": "read-x", "Value": "true"}]
        ),
        "iam:CreatePolicy": lambda: iam.create_policy(PolicyName=f"p-{uuid.uuid4().hex[:6]}", PolicyDocument=document),
        "iam:AttachUserPolicy": lambda: iam.attach_user_policy(
            UserName="preview", PolicyArn="arn:aws:iam::123456789012:policy/allow-all"
        ),
    }


@pytest.mark.parametrize("user", ["preview", "preview+admin"])
def test_the_preview_identity_can_neither_read_a_value_nor_write(
    enforcing_moto: Server, aws_users: Any, user: str
) -> None:
    key_id, secret = aws_users[user]
    sm = _client("secretsmanager", enforcing_moto.url, key_id, secret)
    iam = _client("iam", enforcing_moto.url, key_id, secret)
    allowed = [name for name, call in _attempts(sm, iam).items() if not _denied(call)]
    # Only the program's recovery-window check: names, tags and dates, never a value.
    assert allowed == ["ListSecrets"]
    listed = sm.list_secrets(IncludePlannedDeletion=True)["SecretList"]
    assert [s["Name"] for s in listed] == ["prod/database/password"]
    assert CANARY not in json.dumps(listed, default=str)
    # what the AWS provider calls when it configures (no permission needed, never deniable)
    identity = _client("sts", enforcing_moto.url, key_id, secret).get_caller_identity()
    assert identity["Arn"].endswith(f":user/{user.replace('+', '-')}")


def test_control_user_shows_enforcement_lets_a_granted_call_through(enforcing_moto: Server, aws_users: Any) -> None:
    sm = _client("secretsmanager", enforcing_moto.url, *aws_users["control"])
    assert sm.get_secret_value(SecretId="prod/database/password")["SecretString"] == CANARY
    with pytest.raises(ClientError):  # and an unknown key is refused: enforcement is on
        _client("secretsmanager", enforcing_moto.url, "AKIANOTAKEY00000000", "x").list_secrets()


def test_the_value_is_untouched(enforcing_moto: Server, aws_users: Any) -> None:
    sm = _client("secretsmanager", enforcing_moto.url, *aws_users["control"])
    described = sm.describe_secret(SecretId="prod/database/password")
    assert "DeletedDate" not in described and "read-x" not in {t["Key"] for t in described.get("Tags", [])}
    assert sm.get_secret_value(SecretId="prod/database/password")["SecretString"] == CANARY
