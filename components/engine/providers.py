"""The provider side of the engine: for each resource type the stores register, the calls its Terraform
provider (as bridged by pulumi-vault 7.14 / pulumi-aws 7.51) makes, against a real OpenBao and moto.

Each class names the upstream file it mirrors (terraform-provider-vault v5.10.1, the version pulumi-vault
7.14 bridges; terraform-provider-aws `internal/service/...`), and declares:
- `force_new`: inputs whose change replaces the resource (the schema's `ForceNew`);
- `defaults`: schema defaults the bridge's Check fills in when the program leaves an input out;
- `computed`: Optional+Computed inputs, so leaving one out means "keep", not "clear";
- `sensitive`: outputs the provider marks sensitive (kept secret in state and in what the program sees).

Anything outside `inputs` fails loudly, as does any type without a class here.

Not mirrored: retries and propagation waits, replicas, resource policies, tags on IAM policies, custom
KV metadata; IAM's 5 s pause between CreatePolicyVersion and SetDefaultPolicyVersion.
"""

import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import boto3
import botocore.exceptions
import hvac
import hvac.exceptions

from components.engine.program import UnknownResourceType

Outputs = dict[str, Any]


class ProviderError(Exception):
    """A provider call failed; the message is the provider's, naming the resource (never a value)."""


class Api:
    """Clients for one resource's provider: an hvac client and boto3 clients (moto)."""

    def __init__(self, vault: Callable[[], hvac.Client], aws: Callable[[str], Any]) -> None:
        self._vault, self._aws = vault, aws

    @property
    def vault(self) -> hvac.Client:
        return self._vault()

    def aws(self, service: str) -> Any:
        return self._aws(service)


def aws_client(endpoint: str, region: str, service: str) -> Any:
    return boto3.client(
        service, endpoint_url=endpoint, region_name=region, aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def _aws_code(error: Exception) -> str:
    if isinstance(error, botocore.exceptions.ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return ""


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


class Provider:
    type: ClassVar[str]
    source: ClassVar[str]
    inputs: ClassVar[frozenset[str]]
    force_new: ClassVar[frozenset[str]]
    defaults: ClassVar[Mapping[str, Any]] = {}
    computed: ClassVar[frozenset[str]] = frozenset()
    sensitive: ClassVar[frozenset[str]] = frozenset()

    def check(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """The bridge's Check: refuse inputs this engine does not implement, fill in schema defaults."""
        unknown = sorted(set(inputs) - self.inputs)
        if unknown:
            raise UnknownResourceType(f"the engine does not implement {self.type} input(s): {', '.join(unknown)}")
        return {**self.defaults, **inputs}

    def same(self, key: str, old: Any, new: Any) -> bool:
        """Whether an input is unchanged (the schema's DiffSuppressFunc where there is one)."""
        return bool(old == new)

    def create(self, api: Api, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        raise NotImplementedError

    def update(self, api: Api, id_: str, old: dict[str, Any], new: dict[str, Any]) -> tuple[str, Outputs]:
        """`old` holds the previous inputs (secrets sealed: compare, never send)."""
        raise UnknownResourceType(f"the engine does not implement updating {self.type}")

    def delete(self, api: Api, id_: str, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        raise NotImplementedError

    def read(self, api: Api, id_: str) -> tuple[dict[str, Any], Outputs] | None:
        """(inputs, outputs) as `pulumi import` records them; None when the resource does not exist."""
        raise UnknownResourceType(f"the engine does not implement importing {self.type}")


def _changed(old: Mapping[str, Any], new: Mapping[str, Any], *keys: str) -> bool:
    return any(old.get(k) != new.get(k) for k in keys)


# --- Vault -----------------------------------------------------------------------------------------------


class VaultMount(Provider):
    type = "vault:index/mount:Mount"
    source = "terraform-provider-vault vault/resource_mount.go"
    inputs = frozenset({"path", "type", "description", "options", "local", "sealWrap", "externalEntropyAccess"})
    # A `path` change is not ForceNew: updateMount remounts (sys/remount).
    force_new = frozenset({"type", "local", "sealWrap", "externalEntropyAccess"})
    defaults: ClassVar[Mapping[str, Any]] = {"externalEntropyAccess": False}
    computed = frozenset({"sealWrap"})

    def create(self, api: Api, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        path = inputs["path"]
        api.vault.sys.enable_secrets_engine(
            backend_type=inputs["type"],
            path=path,
            description=inputs.get("description", ""),
            options=inputs.get("options"),
            local=bool(inputs.get("local", False)),
            seal_wrap=bool(inputs.get("sealWrap", False)),
        )
        return path, self._outputs(api, path, inputs)

    def update(self, api: Api, id_: str, old: dict[str, Any], new: dict[str, Any]) -> tuple[str, Outputs]:
        path = id_
        if old.get("path") != new["path"]:
            api.vault.sys.move_backend(id_, new["path"])  # Sys().Remount
            path = new["path"]
        tune: dict[str, Any] = {"options": new.get("options") or {}}
        if _changed(old, new, "description"):
            tune["description"] = new.get("description", "")
        api.vault.sys.tune_mount_configuration(path, **tune)
        return path, self._outputs(api, path, new)

    def delete(self, api: Api, id_: str, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        api.vault.sys.disable_secrets_engine(id_)  # unmount: every secret under it is destroyed

    def read(self, api: Api, id_: str) -> tuple[dict[str, Any], Outputs] | None:
        mount = api.vault.sys.list_mounted_secrets_engines()["data"].get(f"{id_.strip('/')}/")
        if mount is None:
            return None
        inputs = {
            "path": id_,
            "type": mount["type"],
            "description": mount.get("description", ""),
            "options": mount.get("options") or {},
            "local": mount.get("local", False),
            "sealWrap": mount.get("seal_wrap", False),
        }
        return inputs, {**inputs, "accessor": mount["accessor"]}

    def _outputs(self, api: Api, path: str, inputs: dict[str, Any]) -> Outputs:
        read = self.read(api, path)
        assert read is not None
        return {**inputs, **read[1]}


class VaultAuthBackend(Provider):
    type = "vault:index/authBackend:AuthBackend"
    source = "terraform-provider-vault vault/resource_auth_backend.go"
    inputs = frozenset({"type", "path", "description", "local"})
    # `path` is not ForceNew on Vault >= 1.10 (getMountCustomizeDiffFunc): a change is util.Remount.
    force_new = frozenset({"type", "local"})
    computed = frozenset({"path"})

    def create(self, api: Api, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        path = inputs.get("path") or inputs["type"]
        api.vault.sys.enable_auth_method(
            method_type=inputs["type"],
            path=path,
            description=inputs.get("description", ""),
            local=bool(inputs.get("local", False)),
        )
        return path, self._outputs(api, path, inputs)

    def update(self, api: Api, id_: str, old: dict[str, Any], new: dict[str, Any]) -> tuple[str, Outputs]:
        path = new.get("path") or id_
        if path != id_:
            api.vault.sys.move_backend(f"auth/{id_}", f"auth/{path}")
        if _changed(old, new, "description"):
            api.vault.sys.tune_auth_method(path, description=new.get("description", ""))
        return path, self._outputs(api, path, new)

    def delete(self, api: Api, id_: str, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        api.vault.sys.disable_auth_method(id_)  # every role (and secret_id) in it is destroyed

    def read(self, api: Api, id_: str) -> tuple[dict[str, Any], Outputs] | None:
        method = api.vault.sys.list_auth_methods()["data"].get(f"{id_.strip('/')}/")
        if method is None:
            return None
        inputs = {
            "type": method["type"],
            "path": id_,
            "description": method.get("description", ""),
            "local": method.get("local", False),
        }
        return inputs, {**inputs, "accessor": method["accessor"]}

    def _outputs(self, api: Api, path: str, inputs: dict[str, Any]) -> Outputs:
        read = self.read(api, path)
        assert read is not None
        return {**inputs, **read[1]}


class VaultPolicy(Provider):
    type = "vault:index/policy:Policy"
    source = "terraform-provider-vault vault/resource_policy.go"
    inputs = frozenset({"name", "policy"})
    force_new = frozenset({"name"})

    def create(self, api: Api, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        # allow_overwrite defaults to true: an existing policy of that name is overwritten, as policyCreate does.
        api.vault.sys.create_or_update_policy(name=inputs["name"], policy=inputs["policy"])  # Sys().PutPolicy
        return inputs["name"], dict(inputs)

    def update(self, api: Api, id_: str, old: dict[str, Any], new: dict[str, Any]) -> tuple[str, Outputs]:
        return self.create(api, new)

    def delete(self, api: Api, id_: str, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        api.vault.sys.delete_policy(id_)

    def read(self, api: Api, id_: str) -> tuple[dict[str, Any], Outputs] | None:
        try:
            rules = api.vault.sys.read_policy(id_)["data"]["rules"]
        except hvac.exceptions.InvalidPath:
            return None
        inputs = {"name": id_, "policy": rules}
        return inputs, dict(inputs)


_KV_V2_ID = re.compile(r"^(?P<mount>.+?)/data/(?P<name>.+)$")


class VaultKvSecretV2(Provider):
    type = "vault:kv/secretV2:SecretV2"
    source = "terraform-provider-vault vault/resource_kv_secret_v2.go"
    inputs = frozenset({"mount", "name", "dataJson", "cas", "options", "deleteAllVersions", "disableRead"})
    force_new = frozenset({"mount", "name"})
    defaults: ClassVar[Mapping[str, Any]] = {"deleteAllVersions": False, "disableRead": False}
    sensitive = frozenset({"dataJson"})  # `data` is sensitive too, but always {} (kvSecretV2Read)

    def create(self, api: Api, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        """kvSecretV2Write: PUT <mount>/data/<name> {"data", "cas", "options"}; create and update alike."""
        path = f"{inputs['mount'].strip('/')}/data/{inputs['name']}"
        body = {"data": json.loads(inputs["dataJson"]), "cas": int(inputs.get("cas") or 0)}
        body["options"] = inputs.get("options") or {}
        api.vault.write_data(path, data=body)
        read = self.read(api, path)
        assert read is not None
        return path, {**inputs, **read[1]}

    def update(self, api: Api, id_: str, old: dict[str, Any], new: dict[str, Any]) -> tuple[str, Outputs]:
        return self.create(api, new)

    def delete(self, api: Api, id_: str, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        """DELETE <mount>/metadata/<name> (every version, the path itself) with delete_all_versions,
        else DELETE <mount>/data/<name> (a soft delete of the latest version)."""
        base = "metadata" if inputs.get("deleteAllVersions") else "data"
        api.vault.delete(f"{inputs['mount'].strip('/')}/{base}/{inputs['name']}")

    def read(self, api: Api, id_: str) -> tuple[dict[str, Any], Outputs] | None:
        """kvSecretV2Read: `data` is always `{}` and `data_json` is never read back (value drift is invisible)."""
        match = _KV_V2_ID.match(id_)
        if match is None:
            raise ProviderError(f"unable to read mount from ID {id_}")
        found = api.vault.read(id_)
        if found is None:
            return None
        metadata = found["data"].get("metadata") or {}
        inputs = {"mount": match["mount"], "name": match["name"]}
        outputs = {**inputs, "path": id_, "data": {}, "metadata": {k: _string(v) for k, v in metadata.items()}}
        return inputs, outputs


def _string(value: Any) -> str:
    """serializeDataMapToString: Vault's metadata as the provider stores it (strings)."""
    if isinstance(value, str):
        return value
    return (
        json.dumps(value)
        if isinstance(value, dict | list)
        else str(value).lower()
        if isinstance(value, bool)
        else str(value)
    )


_TOKEN_FIELDS = frozenset(
    {
        "tokenPolicies",
        "tokenTtl",
        "tokenMaxTtl",
        "tokenNoDefaultPolicy",
        "tokenBoundCidrs",
        "tokenPeriod",
        "tokenType",
        "tokenNumUses",
        "tokenExplicitMaxTtl",
    }
)
_ROLE_FIELDS = frozenset({"bindSecretId", "secretIdBoundCidrs", "secretIdNumUses", "secretIdTtl", "localSecretIds"})
_SET_FIELDS = ("tokenPolicies", "tokenBoundCidrs", "secretIdBoundCidrs")  # TypeSet: order does not count


class VaultAppRoleRole(Provider):
    type = "vault:appRole/authBackendRole:AuthBackendRole"
    source = "terraform-provider-vault vault/resource_approle_auth_backend_role.go"
    inputs = frozenset({"backend", "roleName", "roleId"}) | _TOKEN_FIELDS | _ROLE_FIELDS
    force_new = frozenset({"backend", "roleName"})
    defaults: ClassVar[Mapping[str, Any]] = {"backend": "approle", "bindSecretId": True, "localSecretIds": False}
    computed = frozenset({"roleId"})

    def check(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        checked = super().check(inputs)
        for key in _SET_FIELDS:
            if isinstance(checked.get(key), list):
                checked[key] = sorted(checked[key])
        return checked

    @staticmethod
    def path(backend: str, role: str) -> str:
        return f"auth/{backend.strip('/')}/role/{role.strip('/')}"

    def create(self, api: Api, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        """Every field set; `local_secret_ids` only when true (Vault refuses it on an existing role)."""
        path = self.path(inputs["backend"], inputs["roleName"])
        fields = {k: v for k, v in inputs.items() if not (k == "localSecretIds" and not v)}
        return path, self._write(api, path, fields, inputs)

    def update(self, api: Api, id_: str, old: dict[str, Any], new: dict[str, Any]) -> tuple[str, Outputs]:
        """Only the fields that changed (approleAuthBackendRoleUpdateFields, updateTokenFields)."""
        return id_, self._write(api, id_, {k: v for k, v in new.items() if old.get(k) != v}, new)

    def _write(self, api: Api, path: str, fields: dict[str, Any], inputs: dict[str, Any]) -> Outputs:
        data = {_snake(k): v for k, v in fields.items() if k in _TOKEN_FIELDS | _ROLE_FIELDS and v is not None}
        for key, value in data.items():
            if isinstance(value, float) and value.is_integer():
                data[key] = int(value)  # numbers arrive from the SDK as floats
        api.vault.write_data(path, data=data)
        if fields.get("roleId"):
            api.vault.write_data(f"{path}/role-id", data={"role_id": fields["roleId"]})
        read = self.read(api, path)
        assert read is not None
        return {**inputs, **read[1]}

    def delete(self, api: Api, id_: str, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        api.vault.delete(id_)

    def read(self, api: Api, id_: str) -> tuple[dict[str, Any], Outputs] | None:
        match = re.fullmatch(r"auth/(?P<backend>.+)/role/(?P<role>[^/]+)", id_)
        if match is None:
            raise ProviderError(f"invalid path {id_!r} for AppRole auth backend role")
        found = api.vault.read(id_)
        if found is None:
            return None
        data = found["data"]
        inputs: dict[str, Any] = {"backend": match["backend"], "roleName": match["role"]}
        for key in sorted(_TOKEN_FIELDS | _ROLE_FIELDS):
            if _snake(key) in data:
                inputs[key] = data[_snake(key)]
        role_id = api.vault.read(f"{id_}/role-id")["data"]["role_id"]
        return inputs, {**inputs, "roleId": role_id}


# --- AWS --------------------------------------------------------------------------------------------------


class AwsSecret(Provider):
    type = "aws:secretsmanager/secret:Secret"
    source = "terraform-provider-aws internal/service/secretsmanager/secret.go"
    inputs = frozenset(
        {"name", "namePrefix", "description", "kmsKeyId", "recoveryWindowInDays", "tags", "forceOverwriteReplicaSecret"}
    )
    force_new = frozenset({"name", "namePrefix"})
    defaults: ClassVar[Mapping[str, Any]] = {"recoveryWindowInDays": 30, "forceOverwriteReplicaSecret": False}

    def create(self, api: Api, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        if "name" not in inputs:
            raise UnknownResourceType(f"the engine does not implement autonaming {self.type}")
        request: dict[str, Any] = {
            "Name": inputs["name"],
            "ClientRequestToken": str(uuid.uuid4()),
            "Description": inputs.get("description", ""),
            "ForceOverwriteReplicaSecret": bool(inputs["forceOverwriteReplicaSecret"]),
        }
        if inputs.get("tags"):
            request["Tags"] = [{"Key": k, "Value": v} for k, v in inputs["tags"].items()]
        if inputs.get("kmsKeyId"):
            request["KmsKeyId"] = inputs["kmsKeyId"]
        try:
            arn = api.aws("secretsmanager").create_secret(**request)["ARN"]
        except botocore.exceptions.ClientError as e:
            # The provider retries only while AWS says "scheduled for deletion", then fails the same way.
            raise ProviderError(f"creating Secrets Manager Secret ({inputs['name']}): {e}") from None
        return arn, self._outputs(api, arn, inputs)

    def update(self, api: Api, id_: str, old: dict[str, Any], new: dict[str, Any]) -> tuple[str, Outputs]:
        client = api.aws("secretsmanager")
        if _changed(old, new, "description", "kmsKeyId"):
            request = {
                "SecretId": id_,
                "ClientRequestToken": str(uuid.uuid4()),
                "Description": new.get("description", ""),
            }
            if new.get("kmsKeyId"):
                request["KmsKeyId"] = new["kmsKeyId"]
            client.update_secret(**request)
        old_tags, new_tags = old.get("tags") or {}, new.get("tags") or {}
        # Transparent tagging (tags.go): untag what went away, tag what is new or changed.
        removed = sorted(set(old_tags) - set(new_tags))
        if removed:
            client.untag_resource(SecretId=id_, TagKeys=removed)
        added = {k: v for k, v in new_tags.items() if old_tags.get(k) != v}
        if added:
            client.tag_resource(SecretId=id_, Tags=[{"Key": k, "Value": v} for k, v in added.items()])
        return id_, self._outputs(api, id_, new)

    def delete(self, api: Api, id_: str, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        """DeleteSecret with the recovery window, or ForceDeleteWithoutRecovery when it is 0."""
        window = int(inputs.get("recoveryWindowInDays", 30))
        request: dict[str, Any] = {"SecretId": id_}
        if window == 0:
            request["ForceDeleteWithoutRecovery"] = True
        else:
            request["RecoveryWindowInDays"] = window
        try:
            api.aws("secretsmanager").delete_secret(**request)
        except botocore.exceptions.ClientError as e:
            if _aws_code(e) != "ResourceNotFoundException":
                raise ProviderError(f"deleting Secrets Manager Secret ({id_}): {e}") from None

    def read(self, api: Api, id_: str) -> tuple[dict[str, Any], Outputs] | None:
        """findSecretByID: a secret scheduled for deletion (DeletedDate set) counts as not found."""
        try:
            found = api.aws("secretsmanager").describe_secret(SecretId=id_)
        except botocore.exceptions.ClientError as e:
            if _aws_code(e) == "ResourceNotFoundException":
                return None
            raise
        if found.get("DeletedDate"):
            return None
        tags = {t["Key"]: t["Value"] for t in found.get("Tags") or []}
        inputs: dict[str, Any] = {"name": found["Name"], "tags": tags}
        if found.get("Description"):
            inputs["description"] = found["Description"]
        if found.get("KmsKeyId"):
            inputs["kmsKeyId"] = found["KmsKeyId"]
        return inputs, {**inputs, "arn": found["ARN"], "tagsAll": tags}

    def _outputs(self, api: Api, arn: str, inputs: dict[str, Any]) -> Outputs:
        read = self.read(api, arn)
        assert read is not None
        return {**inputs, **read[1]}


class AwsSecretVersion(Provider):
    type = "aws:secretsmanager/secretVersion:SecretVersion"
    source = "terraform-provider-aws internal/service/secretsmanager/secret_version.go"
    inputs = frozenset({"secretId", "secretString", "versionStages"})
    force_new = frozenset({"secretId", "secretString"})
    computed = frozenset({"versionStages"})
    sensitive = frozenset({"secretString"})

    def create(self, api: Api, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        request: dict[str, Any] = {"SecretId": inputs["secretId"], "ClientRequestToken": str(uuid.uuid4())}
        if inputs.get("secretString") is not None:
            request["SecretString"] = inputs["secretString"]
        if inputs.get("versionStages"):
            request["VersionStages"] = list(inputs["versionStages"])
        try:
            put = api.aws("secretsmanager").put_secret_value(**request)
        except botocore.exceptions.ClientError as e:
            raise ProviderError(f"putting Secrets Manager Secret ({inputs['secretId']}) value: {e}") from None
        id_ = f"{inputs['secretId']}|{put['VersionId']}"  # secretVersionCreateResourceID
        read = self.read(api, id_)
        assert read is not None
        return id_, {**inputs, **read[1]}

    def delete(self, api: Api, id_: str, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        """Only removes the version's stage labels other than AWSCURRENT (which AWS cannot remove): the
        value stays in the secret's history. The labels are those in state, not re-read."""
        secret_id, version_id = id_.split("|", 1)
        for stage in outputs.get("versionStages") or []:
            if stage == "AWSCURRENT":
                continue
            try:
                api.aws("secretsmanager").update_secret_version_stage(
                    SecretId=secret_id, VersionStage=stage, RemoveFromVersionId=version_id
                )
            except botocore.exceptions.ClientError as e:
                if _aws_code(e) in ("ResourceNotFoundException", "InvalidRequestException"):
                    return  # the secret is gone or scheduled for deletion
                raise ProviderError(f"deleting Secrets Manager Secret Version ({id_}) stage ({stage}): {e}") from None

    def read(self, api: Api, id_: str) -> tuple[dict[str, Any], Outputs] | None:
        secret_id, sep, version_id = id_.partition("|")
        if not sep or not secret_id or not version_id:
            raise ProviderError(f"unexpected format of ID ({id_}), expected SecretID|VersionID")
        try:
            found = api.aws("secretsmanager").get_secret_value(SecretId=secret_id, VersionId=version_id)
        except botocore.exceptions.ClientError as e:
            if _aws_code(e) in ("ResourceNotFoundException", "InvalidRequestException"):
                return None
            raise
        inputs = {"secretId": secret_id, "secretString": found.get("SecretString")}
        outputs = {**inputs, "arn": found["ARN"], "versionId": found["VersionId"]}
        outputs["versionStages"] = list(found.get("VersionStages") or [])
        return inputs, outputs


def _policy_document(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class IamPolicy(Provider):
    type = "aws:iam/policy:Policy"
    source = "terraform-provider-aws internal/service/iam/policy.go"
    inputs = frozenset({"name", "namePrefix", "description", "path", "policy"})
    force_new = frozenset({"name", "namePrefix", "path", "description"})
    defaults: ClassVar[Mapping[str, Any]] = {"path": "/"}

    def same(self, key: str, old: Any, new: Any) -> bool:
        if key == "policy":  # verify.SuppressEquivalentPolicyDiffs
            return bool(_policy_document(old) == _policy_document(new))
        return super().same(key, old, new)

    def create(self, api: Api, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        if "name" not in inputs:
            raise UnknownResourceType(f"the engine does not implement autonaming {self.type}")
        try:
            created = api.aws("iam").create_policy(
                PolicyName=inputs["name"],
                PolicyDocument=_normalized(inputs["policy"]),
                Path=inputs["path"],
                Description=inputs.get("description", ""),
            )["Policy"]
        except botocore.exceptions.ClientError as e:
            raise ProviderError(f"creating IAM Policy ({inputs['name']}): {e}") from None
        return created["Arn"], self._outputs(api, created["Arn"], inputs)

    def update(self, api: Api, id_: str, old: dict[str, Any], new: dict[str, Any]) -> tuple[str, Outputs]:
        """A new default version (the oldest non-default pruned first when there are 5)."""
        iam = api.aws("iam")
        versions = iam.list_policy_versions(PolicyArn=id_)["Versions"]
        if len(versions) >= 5:
            oldest = min((v for v in versions if not v["IsDefaultVersion"]), key=lambda v: v["CreateDate"])
            iam.delete_policy_version(PolicyArn=id_, VersionId=oldest["VersionId"])
        created = iam.create_policy_version(
            PolicyArn=id_, PolicyDocument=_normalized(new["policy"]), SetAsDefault=False
        )
        iam.set_default_policy_version(PolicyArn=id_, VersionId=created["PolicyVersion"]["VersionId"])
        return id_, self._outputs(api, id_, new)

    def delete(self, api: Api, id_: str, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        iam = api.aws("iam")
        try:
            for version in iam.list_policy_versions(PolicyArn=id_)["Versions"]:
                if not version["IsDefaultVersion"]:
                    iam.delete_policy_version(PolicyArn=id_, VersionId=version["VersionId"])
            iam.delete_policy(PolicyArn=id_)
        except botocore.exceptions.ClientError as e:
            if _aws_code(e) != "NoSuchEntity":
                raise ProviderError(f"deleting IAM Policy ({id_}): {e}") from None

    def read(self, api: Api, id_: str) -> tuple[dict[str, Any], Outputs] | None:
        iam = api.aws("iam")
        try:
            policy = iam.get_policy(PolicyArn=id_)["Policy"]
            version = iam.get_policy_version(PolicyArn=id_, VersionId=policy["DefaultVersionId"])["PolicyVersion"]
        except botocore.exceptions.ClientError as e:
            if _aws_code(e) == "NoSuchEntity":
                return None
            raise
        inputs: dict[str, Any] = {
            "name": policy["PolicyName"],
            "path": policy["Path"],
            "policy": _normalized(version["Document"]),
        }
        if policy.get("Description"):
            inputs["description"] = policy["Description"]
        outputs = {**inputs, "arn": policy["Arn"], "policyId": policy["PolicyId"]}
        outputs["attachmentCount"] = policy.get("AttachmentCount", 0)
        return inputs, outputs

    def _outputs(self, api: Api, arn: str, inputs: dict[str, Any]) -> Outputs:
        read = self.read(api, arn)
        assert read is not None
        return {**read[1], **inputs}


def _normalized(document: Any) -> str:
    """structure.NormalizeJsonString: the document as compact JSON (boto3 may hand back a dict)."""
    return json.dumps(_policy_document(document), separators=(",", ":"))


class IamRolePolicyAttachment(Provider):
    type = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
    source = "terraform-provider-aws internal/service/iam/role_policy_attachment.go"
    inputs = frozenset({"role", "policyArn"})
    force_new = frozenset({"role", "policyArn"})

    def create(self, api: Api, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        try:
            api.aws("iam").attach_role_policy(RoleName=inputs["role"], PolicyArn=inputs["policyArn"])
        except botocore.exceptions.ClientError as e:
            raise ProviderError(f"attaching policy {inputs['policyArn']} to IAM Role {inputs['role']}: {e}") from None
        # id.PrefixedUniqueId("<role>-"): a UTC timestamp and a counter.
        suffix = time.strftime("%Y%m%d%H%M%S", time.gmtime()) + f"{time.time_ns() % 10**9:09d}{uuid.uuid4().hex[:8]}"
        return f"{inputs['role']}-{suffix}", dict(inputs)

    def delete(self, api: Api, id_: str, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        try:
            api.aws("iam").detach_role_policy(RoleName=inputs["role"], PolicyArn=inputs["policyArn"])
        except botocore.exceptions.ClientError as e:
            if _aws_code(e) != "NoSuchEntity":
                raise ProviderError(
                    f"removing policy {inputs['policyArn']} from IAM Role {inputs['role']}: {e}"
                ) from None


PROVIDERS: dict[str, Provider] = {
    p.type: p
    for p in (
        VaultMount(),
        VaultAuthBackend(),
        VaultPolicy(),
        VaultKvSecretV2(),
        VaultAppRoleRole(),
        AwsSecret(),
        AwsSecretVersion(),
        IamPolicy(),
        IamRolePolicyAttachment(),
    )
}


def provider_for(type_: str) -> Provider:
    provider = PROVIDERS.get(type_)
    if provider is None:
        raise UnknownResourceType(f"the engine does not implement the resource type {type_}")
    return provider
