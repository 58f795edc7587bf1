"""The test engine: a `pulumi.runtime.Mocks` whose `new_resource` makes the call each resource's
provider makes on create, against the live OpenBao and moto servers, and returns the real ids and
outputs. It is a stand-in for the Pulumi CLI + provider plugins, which cannot be installed here.

Scope: it creates. Updates, deletes, diffs and refreshes are the Pulumi engine's job and are not
mirrored. Any resource type or invoke it does not know fails the program loudly
(`UnknownResourceType`), so a new resource in the program cannot slip through untested.

Provider configuration:
- Vault: like terraform-provider-vault, the address and token come from an explicit
  `pulumi:providers:vault` resource's inputs, else the stack's `vault:address` / `vault:token` config,
  else the `vault_addr` / `vault_token` the engine was built with (standing in for a deploy's
  `VAULT_ADDR` / `VAULT_TOKEN`). The real provider then mints a child token unless `skipChildToken`;
  the engine uses the token as is.
- AWS: every call goes to the moto server given to the engine, whatever endpoints or credentials the
  program's provider is configured with (the program targets real AWS; the engine *is* the provider
  here). The region comes from the provider's inputs or `aws:region` config, else `us-east-1`.

Values: secret inputs arrive wrapped in the SDK's secret signature and are unwrapped only to make the
call; outputs the providers mark sensitive (`dataJson`, `data`, `secretString`) are returned
secret-wrapped, as the real engine would keep them.
"""

import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import hvac
import pulumi

SIG = "4dabf18193072939515e22adb298388d"
"""The SDK's signature key (pulumi.runtime.rpc._special_sig_key)."""
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
"""The signature value that marks a secret (pulumi.runtime.rpc._special_secret_sig)."""

Handler = Callable[["LiveEngine", pulumi.runtime.MockResourceArgs, dict[str, Any]], tuple[str, dict[str, Any]]]


class UnknownResourceType(Exception):
    """The program registered a type (or called an invoke) the test engine does not implement."""


def unwrap(value: Any) -> Any:
    """Inputs with every secret signature removed (the plaintext the provider would receive)."""
    if isinstance(value, dict):
        if value.get(SIG) == SECRET_SIG:
            return unwrap(value["value"])
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def secret(value: Any) -> dict[str, Any]:
    return {SIG: SECRET_SIG, "value": value}


def _id_suffix() -> str:
    """terraform-plugin-sdk's `id.PrefixedUniqueId` suffix: a UTC timestamp and a counter."""
    return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + f"{time.time_ns() % 10**9:09d}{uuid.uuid4().hex[:8]}"


class LiveEngine(pulumi.runtime.Mocks):
    def __init__(self, *, aws_endpoint: str | None = None, vault_addr: str = "", vault_token: str = "") -> None:
        """`aws_endpoint`: the moto server every AWS call goes to. `vault_addr`/`vault_token`: the
        last fallback, in place of the VAULT_ADDR/VAULT_TOKEN environment of a real run."""
        self.aws_endpoint = aws_endpoint
        self.vault_fallback = (vault_addr, vault_token)
        self.providers: dict[str, dict[str, Any]] = {}
        """Explicit provider resources: reference (`urn::id`) -> inputs."""
        self.created: list[tuple[str, str, str]] = []
        """(type, logical name, id) of every custom resource created, in order."""
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()

    # --- the Mocks interface -----------------------------------------------------------------------

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        if not args.custom:  # component resources: the program's own, nothing to create
            return None, {}
        try:
            inputs = unwrap(args.inputs)
            if args.typ.startswith("pulumi:providers:"):
                handler: Handler = LiveEngine.provider
            elif args.typ in HANDLERS:
                handler = HANDLERS[args.typ]
            else:
                raise UnknownResourceType(f"the test engine cannot create {args.typ} ({args.name})")
            resource_id, outputs = handler(self, args, inputs)
        except BaseException as e:
            with self._lock:
                self.errors.append(e)
            raise
        with self._lock:
            self.created.append((args.typ, args.name, resource_id))
        return resource_id, outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        error = UnknownResourceType(f"the test engine does not implement the invoke {args.token}")
        self.errors.append(error)
        raise error

    # --- provider configuration ----------------------------------------------------------------------

    def provider(self, args: pulumi.runtime.MockResourceArgs, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """`pulumi:providers:*`: an explicit provider instance. Its id and inputs, kept for its resources."""
        provider_id = f"{args.name}-{uuid.uuid4()}"
        with self._lock:
            self.providers[f"{args.name}::{provider_id}"] = inputs
        return provider_id, dict(args.inputs)

    def provider_inputs(self, args: pulumi.runtime.MockResourceArgs) -> dict[str, Any]:
        if not args.provider:
            return {}
        # A provider reference is `<urn>::<id>`; the urn ends with the provider's logical name.
        urn, _, provider_id = args.provider.rpartition("::")
        return self.providers.get(f"{urn.rsplit('::', 1)[-1]}::{provider_id}", {})

    def setting(self, args: pulumi.runtime.MockResourceArgs, package: str, key: str) -> str:
        explicit = self.provider_inputs(args).get(key)
        if explicit:
            return str(explicit)
        configured = pulumi.runtime.get_config(f"{package}:{key}")
        return str(configured) if configured else ""

    def vault(self, args: pulumi.runtime.MockResourceArgs) -> Any:
        addr = self.setting(args, "vault", "address") or self.vault_fallback[0]
        token = self.setting(args, "vault", "token") or self.vault_fallback[1]
        if not addr or not token:
            raise RuntimeError("no Vault address/token: set vault:address and vault:token (secret)")
        return hvac.Client(url=addr, token=token, timeout=10)

    def aws(self, args: pulumi.runtime.MockResourceArgs, service: str) -> Any:
        if not self.aws_endpoint:
            raise RuntimeError("the test engine was given no AWS (moto) endpoint")
        region = self.setting(args, "aws", "region") or "us-east-1"
        return boto3.client(
            service,
            endpoint_url=self.aws_endpoint,
            region_name=region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


# --- one handler per resource type -------------------------------------------------------------------


def vault_mount(
    engine: LiveEngine, args: pulumi.runtime.MockResourceArgs, inputs: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """`vault:index/mount:Mount` (terraform-provider-vault `vault_mount`): POST sys/mounts/<path> with
    type, description and options; the id is the path."""
    client = engine.vault(args)
    path = inputs["path"]
    client.sys.enable_secrets_engine(
        backend_type=inputs["type"], path=path, description=inputs.get("description"), options=inputs.get("options")
    )
    accessor = client.sys.list_mounted_secrets_engines()["data"][f"{path.strip('/')}/"]["accessor"]
    return path, {**inputs, "accessor": accessor}


def vault_kv_secret_v2(
    engine: LiveEngine, args: pulumi.runtime.MockResourceArgs, inputs: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """`vault:kv/secretV2:SecretV2` (`vault_kv_secret_v2`, kvSecretV2Write): decodes `dataJson` and
    writes `{"data": <decoded>, "options": ..., "cas": ...}` to `<mount>/data/<name>`; the id and the
    `path` output are `<mount>/data/<name>`; `data` and `dataJson` are sensitive."""
    client = engine.vault(args)
    mount, name = inputs["mount"].strip("/"), inputs["name"]
    path = f"{mount}/data/{name}"
    data = json.loads(inputs["dataJson"])
    body: dict[str, Any] = {"data": data, "options": inputs.get("options") or {}}
    if inputs.get("cas") is not None:
        body["options"] = {**body["options"], "cas": int(inputs["cas"])}
    written = client.write_data(path, data=body)
    outputs = {
        **inputs,
        "path": path,
        "dataJson": secret(inputs["dataJson"]),
        "data": secret({k: str(v) for k, v in data.items()}),
        "metadata": {"version": str(written["data"]["version"])},
    }
    return path, outputs


def vault_policy(
    engine: LiveEngine, args: pulumi.runtime.MockResourceArgs, inputs: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """`vault:index/policy:Policy` (`vault_policy`, policyWrite): PUT sys/policies/acl/<name>; id = name."""
    engine.vault(args).sys.create_or_update_acl_policy(name=inputs["name"], policy=inputs["policy"])
    return inputs["name"], dict(inputs)


def aws_secret(
    engine: LiveEngine, args: pulumi.runtime.MockResourceArgs, inputs: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """`aws:secretsmanager/secret:Secret` (`aws_secretsmanager_secret`): CreateSecret with name,
    description, KMS key and tags, no value; id = the ARN. The recovery window is kept in state and
    used only on delete, so it is returned as given."""
    request: dict[str, Any] = {"Name": inputs["name"]}
    if inputs.get("description"):
        request["Description"] = inputs["description"]
    if inputs.get("kmsKeyId"):
        request["KmsKeyId"] = inputs["kmsKeyId"]
    tags = inputs.get("tags") or {}
    if tags:
        request["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    arn = engine.aws(args, "secretsmanager").create_secret(**request)["ARN"]
    window = inputs.get("recoveryWindowInDays")
    return arn, {
        **inputs,
        "arn": arn,
        "tagsAll": tags,
        "recoveryWindowInDays": 30 if window is None else window,
    }


def aws_secret_version(
    engine: LiveEngine, args: pulumi.runtime.MockResourceArgs, inputs: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """`aws:secretsmanager/secretVersion:SecretVersion` (resourceSecretVersionCreate): PutSecretValue
    with a fresh ClientRequestToken; id = `<secretId>|<versionId>` (secretVersionIDSeparator);
    `secretString` is sensitive."""
    request: dict[str, Any] = {"SecretId": inputs["secretId"], "ClientRequestToken": str(uuid.uuid4())}
    if inputs.get("secretString") is not None:
        request["SecretString"] = inputs["secretString"]
    if inputs.get("versionStages"):
        request["VersionStages"] = list(inputs["versionStages"])
    put = engine.aws(args, "secretsmanager").put_secret_value(**request)
    outputs = {
        **inputs,
        "arn": put["ARN"],
        "versionId": put["VersionId"],
        "versionStages": put.get("VersionStages", ["AWSCURRENT"]),
    }
    if "secretString" in inputs:
        outputs["secretString"] = secret(inputs["secretString"])
    return f"{inputs['secretId']}|{put['VersionId']}", outputs


def aws_iam_policy(
    engine: LiveEngine, args: pulumi.runtime.MockResourceArgs, inputs: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """`aws:iam/policy:Policy` (`aws_iam_policy`): CreatePolicy with name, path, description and the
    document (a JSON string, or an object the SDK sends as such); id = the ARN."""
    document = inputs["policy"]
    text = document if isinstance(document, str) else json.dumps(document)
    request: dict[str, Any] = {"PolicyName": inputs["name"], "PolicyDocument": text, "Path": inputs.get("path") or "/"}
    if inputs.get("description"):
        request["Description"] = inputs["description"]
    created = engine.aws(args, "iam").create_policy(**request)["Policy"]
    return created["Arn"], {
        **inputs,
        "arn": created["Arn"],
        "policyId": created["PolicyId"],
        "path": created["Path"],
        "policy": text,
        "attachmentCount": 0,
    }


def aws_role_policy_attachment(
    engine: LiveEngine, args: pulumi.runtime.MockResourceArgs, inputs: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """`aws:iam/rolePolicyAttachment:RolePolicyAttachment` (`aws_iam_role_policy_attachment`):
    AttachRolePolicy(role NAME, policy ARN); id = `id.PrefixedUniqueId("<role>-")`."""
    engine.aws(args, "iam").attach_role_policy(RoleName=inputs["role"], PolicyArn=inputs["policyArn"])
    return f"{inputs['role']}-{_id_suffix()}", dict(inputs)


HANDLERS: dict[str, Handler] = {
    "vault:index/mount:Mount": vault_mount,
    "vault:kv/secretV2:SecretV2": vault_kv_secret_v2,
    "vault:index/policy:Policy": vault_policy,
    "aws:secretsmanager/secret:Secret": aws_secret,
    "aws:secretsmanager/secretVersion:SecretVersion": aws_secret_version,
    "aws:iam/policy:Policy": aws_iam_policy,
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": aws_role_policy_attachment,
}
