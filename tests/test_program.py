"""The real `__main__.py` for each committed stack (and an aws variant of staging), under the SDK's mocks.

Expected names, paths and ARNs are written out literally from `examples/.env.example` and the committed
manifest, not recomputed with the code under test.
"""

import json
import re
from typing import Any

import pulumi
import pytest

from tests.harness import DefaultMocks, ProgramRun, Registered, run_program

SERVICES = ["signal-service", "execution-gateway", "orchestrator", "market-data-service", "risk-manager"]
PATHS = {
    "ALPACA_API_KEY_ID": "alpaca/api_key_id",
    "ALPACA_API_SECRET_KEY": "alpaca/api_secret_key",
    "DATABASE_PASSWORD": "database/password",
    "REDIS_PASSWORD": "redis/password",
}
# The committed manifest's readers, per service.
READS = {
    "signal-service": ["DATABASE_PASSWORD", "REDIS_PASSWORD"],
    "execution-gateway": ["ALPACA_API_KEY_ID", "ALPACA_API_SECRET_KEY", "DATABASE_PASSWORD", "REDIS_PASSWORD"],
    "orchestrator": ["DATABASE_PASSWORD", "REDIS_PASSWORD"],
    "market-data-service": ["ALPACA_API_KEY_ID", "ALPACA_API_SECRET_KEY", "REDIS_PASSWORD"],
    "risk-manager": ["DATABASE_PASSWORD", "REDIS_PASSWORD"],
}
EXAMPLE_VALUES = {
    "ALPACA_API_KEY_ID": "FAKE-alpaca-key-id-0001",
    "ALPACA_API_SECRET_KEY": "FAKE-alpaca-secret-key-0002",
    "DATABASE_PASSWORD": "FAKE-database-password-0003",
    "REDIS_PASSWORD": "FAKE-redis-password-0004",
}
# One unique canary per key: none may show up anywhere but the secret inputs.
CANARIES = {key: f"canary-{i}-7d3f0b9e1c" for i, key in enumerate(PATHS)}

VAULT_STORE = "secrets-migration:index:VaultSecretStore"
AWS_STORE = "secrets-migration:index:AwsSecretStore"
SECRET_V2 = "vault:kv/secretV2:SecretV2"
VAULT_POLICY = "vault:index/policy:Policy"
MOUNT = "vault:index/mount:Mount"
AWS_SECRET = "aws:secretsmanager/secret:Secret"
AWS_VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
IAM_POLICY = "aws:iam/policy:Policy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
APPROLE = "vault:appRole/authBackendRole:AuthBackendRole"
AUTH_BACKEND = "vault:index/authBackend:AuthBackend"
KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def run_with_values(stack: str, values: dict[str, str] | None = None, **config: object) -> ProgramRun:
    """Staging and prod carry no values in their stack files: they come as secret config at deploy time."""
    return run_program(stack, {"values": values or EXAMPLE_VALUES, **config}, secret_keys=["values"])


def run_aws_staging(**config: object) -> ProgramRun:
    return run_with_values("staging", backend="aws", **config)


def vault_expected(manage_mount: bool = False, approle: bool = True) -> set[tuple[str, str]]:
    """(logical name, type) of everything a Vault stack registers: secrets are named after their paths."""
    names = {("secrets", VAULT_STORE), ("secrets-namespace-read", VAULT_POLICY)}
    names |= {(f"secrets/{path}", SECRET_V2) for path in PATHS.values()}
    names |= {(f"secrets-{svc}-read", VAULT_POLICY) for svc in SERVICES}
    if approle:
        names |= {(f"secrets-{svc}-approle", APPROLE) for svc in SERVICES}
    if manage_mount:
        names.add(("secrets-mount", MOUNT))
    return names


def aws_expected(roles: dict[str, str] | None = None) -> set[tuple[str, str]]:
    names = {("secrets", AWS_STORE), ("secrets-namespace-read", IAM_POLICY)}
    names |= {(f"secrets/{path}", AWS_SECRET) for path in PATHS.values()}
    names |= {(f"secrets/{path}", AWS_VERSION) for path in PATHS.values()}
    names |= {(f"secrets-{svc}-read", IAM_POLICY) for svc in SERVICES}
    names |= {(f"secrets-{svc}-attach-{role}", ATTACHMENT) for svc, role in (roles or {}).items()}
    return names


def registered(run: ProgramRun) -> set[tuple[str, str]]:
    return {(r.name, r.type) for r in run.resources}


def one(run: ProgramRun, type_: str, name: str) -> Registered:
    """The resource of that type and logical name (a secret's Secret and SecretVersion share a name)."""
    found = [r for r in run.of_type(type_) if r.name == name]
    assert len(found) == 1, (type_, name, len(found))
    return found[0]


def secret(run: ProgramRun, type_: str, key: str) -> Registered:
    return one(run, type_, f"secrets/{PATHS[key]}")


def hcl_paths(policy: str) -> dict[str, str]:
    """path -> capabilities, from the HCL text."""
    blocks = re.findall(r'path "([^"]+)" \{\s*capabilities = \[([^\]]*)\]\s*\}', policy)
    return {path: caps.replace('"', "").replace(" ", "") for path, caps in blocks}


def arn(ns: str, key: str) -> str:
    return f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{ns}/{PATHS[key]}-AbCdEf"


def check_children_of_component(run: ProgramRun) -> None:
    component = run.named("secrets")
    for r in run.resources:
        if r is not component:
            assert r.parent == component.urn, r.name


# --- the committed Vault stacks -------------------------------------------------------------------


VAULT_STACKS = [
    # stack, values come from, protect (local has no AppRole: vaultAppRole false in its stack file)
    ("local", "envFile", False),
    ("staging", "values", False),
    ("prod", "values", True),
]


def run_vault_stack(stack: str, source: str) -> ProgramRun:
    return run_program(stack) if source == "envFile" else run_with_values(stack)


@pytest.mark.parametrize(("stack", "source", "protect"), VAULT_STACKS)
def test_vault_stack_registers_exactly_the_expected_resources(stack: str, source: str, protect: bool) -> None:
    run = run_vault_stack(stack, source)
    assert registered(run) == vault_expected(approle=stack != "local")
    check_children_of_component(run)


@pytest.mark.parametrize(("stack", "source", "protect"), VAULT_STACKS)
def test_vault_secrets_are_written_at_the_runbook_paths(stack: str, source: str, protect: bool) -> None:
    run = run_vault_stack(stack, source)
    for key, path in PATHS.items():
        written = secret(run, SECRET_V2, key)
        assert written.inputs["mount"] == "secret"
        assert written.inputs["name"] == f"{stack}/{path}"
        assert json.loads(written.inputs["dataJson"]) == {"value": EXAMPLE_VALUES[key]}
        assert written.inputs["deleteAllVersions"] is True
        assert "dataJson" in written.secret_inputs


@pytest.mark.parametrize(("stack", "source", "protect"), VAULT_STACKS)
def test_vault_policies_name_exactly_each_services_paths(stack: str, source: str, protect: bool) -> None:
    run = run_vault_stack(stack, source)
    for service, keys in READS.items():
        policy = run.named(f"secrets-{service}-read")
        assert policy.inputs["name"] == f"{stack}-{service}-read"
        assert hcl_paths(policy.inputs["policy"]) == {f"secret/data/{stack}/{PATHS[key]}": "read" for key in keys}
    namespace = run.named("secrets-namespace-read")
    assert namespace.inputs["name"] == f"{stack}-secrets-read"
    assert hcl_paths(namespace.inputs["policy"]) == {
        f"secret/data/{stack}/*": "read",
        f"secret/metadata/{stack}/*": "read,list",
    }


@pytest.mark.parametrize(("stack", "source", "protect"), VAULT_STACKS[1:])
def test_each_service_logs_in_with_an_approle_carrying_exactly_its_policy(
    stack: str, source: str, protect: bool
) -> None:
    run = run_vault_stack(stack, source)
    for service in SERVICES:
        role = one(run, APPROLE, f"secrets-{service}-approle")
        assert role.inputs == {
            "backend": "approle",
            "roleName": f"{stack}-{service}",
            "tokenPolicies": [f"{stack}-{service}-read"],
            "tokenNoDefaultPolicy": True,
            "bindSecretId": True,
            "tokenTtl": 600,
            "tokenMaxTtl": 1800,
            "secretIdTtl": 0,
        }
    assert set(run.exports["appRoles"]) == set(SERVICES)
    assert run.exports["appRoles"]["orchestrator"]["role"] == f"{stack}-orchestrator"


def test_approle_options_and_managed_auth_mount() -> None:
    run = run_with_values(
        "staging",
        vaultManageAppRoleMount=True,
        vaultAppRoleMount="apps-approle",
        vaultAppRoleTokenTtl=300,
        vaultAppRoleTokenMaxTtl=900,
        vaultAppRoleSecretIdTtl=86400,
        vaultAppRoleTokenBoundCidrs=["10.0.0.0/16"],
        vaultAppRoleSecretIdBoundCidrs=["10.0.1.0/24"],
    )
    backend = one(run, AUTH_BACKEND, "secrets-approle")
    assert (backend.inputs["type"], backend.inputs["path"]) == ("approle", "apps-approle")
    role = one(run, APPROLE, "secrets-signal-service-approle")
    assert {k: role.inputs[k] for k in ("backend", "tokenTtl", "tokenMaxTtl", "secretIdTtl")} == {
        "backend": "apps-approle",
        "tokenTtl": 300,
        "tokenMaxTtl": 900,
        "secretIdTtl": 86400,
    }
    assert (role.inputs["tokenBoundCidrs"], role.inputs["secretIdBoundCidrs"]) == (["10.0.0.0/16"], ["10.0.1.0/24"])


def test_approle_off_registers_no_role() -> None:
    run = run_with_values("staging", vaultAppRole=False)
    assert run.of_type(APPROLE) == [] and run.exports["appRoles"] == {}


@pytest.mark.parametrize(("stack", "source", "protect"), VAULT_STACKS)
def test_protect_everything_in_prod_only(stack: str, source: str, protect: bool) -> None:
    run = run_vault_stack(stack, source)
    assert {r.name: r.protect for r in run.resources} == {r.name: protect for r in run.resources}


@pytest.mark.parametrize(("stack", "source", "protect"), VAULT_STACKS)
def test_vault_exports(stack: str, source: str, protect: bool) -> None:
    run = run_vault_stack(stack, source)
    assert set(run.exports) == {"backend", "namespace", "secretPaths", "policies", "manifestSha256", "appRoles"}
    assert run.exports["backend"] == "vault"
    assert run.exports["namespace"] == stack
    assert run.exports["secretPaths"] == {key: f"secret/{stack}/{path}" for key, path in PATHS.items()}
    assert run.exports["policies"] == {svc: f"{stack}-{svc}-read" for svc in SERVICES}
    assert re.fullmatch(r"[0-9a-f]{64}", run.exports["manifestSha256"])


def test_manifest_digest_is_of_the_committed_manifest(repo: Any) -> None:
    import hashlib

    expected = hashlib.sha256((repo / "secrets.manifest.yaml").read_bytes()).hexdigest()
    assert run_program("local").exports["manifestSha256"] == expected


def test_every_named_resource_has_an_explicit_name() -> None:
    for run in (run_program("local"), run_aws_staging()):
        for r in run.resources:
            if r.type in (SECRET_V2, VAULT_POLICY, AWS_SECRET, IAM_POLICY):
                assert r.inputs.get("name"), r.name


# --- vaultManageMount ------------------------------------------------------------------------------


def test_manage_mount_adds_the_kv2_mount_and_uses_it() -> None:
    run = run_with_values("staging", vaultManageMount=True, vaultMount="kv-apps")
    assert registered(run) == vault_expected(manage_mount=True)
    mount = run.named("secrets-mount")
    assert (mount.inputs["path"], mount.inputs["type"], mount.inputs["options"]) == ("kv-apps", "kv", {"version": "2"})
    assert {secret(run, SECRET_V2, key).inputs["mount"] for key in PATHS} == {"kv-apps"}
    assert set(hcl_paths(run.named("secrets-orchestrator-read").inputs["policy"])) == {
        "kv-apps/data/staging/database/password",
        "kv-apps/data/staging/redis/password",
    }
    assert run.exports["secretPaths"]["REDIS_PASSWORD"] == "kv-apps/staging/redis/password"


def test_manage_mount_false_registers_no_mount() -> None:
    run = run_with_values("staging", vaultManageMount=False)
    assert run.of_type(MOUNT) == []


# --- values: where they come from and where they never go -----------------------------------------


def test_values_config_wins_over_env_file_per_key() -> None:
    run = run_program("local", {"values": {"DATABASE_PASSWORD": CANARIES["DATABASE_PASSWORD"]}}, secret_keys=["values"])
    data = {key: json.loads(secret(run, SECRET_V2, key).inputs["dataJson"])["value"] for key in PATHS}
    assert data == {**EXAMPLE_VALUES, "DATABASE_PASSWORD": CANARIES["DATABASE_PASSWORD"]}


def _leaks(run: ProgramRun) -> list[str]:
    """Where a canary shows up outside a secret input."""
    found = []
    for r in run.resources:
        for key, value in r.inputs.items():
            text = json.dumps(value)
            if key not in r.secret_inputs and any(c in text for c in CANARIES.values()):
                found.append(f"{r.name}.{key}")
    exported = json.dumps(run.exports)
    found += [f"export {k}" for k in run.exports if any(c in exported for c in CANARIES.values())]
    return found


@pytest.mark.parametrize("backend", ["vault", "aws"])
def test_canary_values_only_in_secret_inputs(backend: str, capfd: pytest.CaptureFixture[str]) -> None:
    run = run_with_values("staging", CANARIES, backend=backend)
    carriers = {
        (r.name, key)
        for r in run.resources
        for key, value in r.inputs.items()
        if any(c in json.dumps(value) for c in CANARIES.values())
    }
    value_key = "dataJson" if backend == "vault" else "secretString"
    assert carriers == {(f"secrets/{path}", value_key) for path in PATHS.values()}
    assert _leaks(run) == []
    out, err = capfd.readouterr()
    assert not any(c in out + err for c in CANARIES.values())


def test_values_are_secret_outputs_from_where_they_are_read() -> None:
    from components.settings import load_manifest, load_settings
    from components.values import load_values
    from tests.harness import PROJECT

    pulumi.runtime.set_mocks(DefaultMocks(), project=PROJECT, stack="local")
    pulumi.runtime.set_all_config(
        {f"{PROJECT}:backend": "vault", f"{PROJECT}:envFile": "examples/.env.example"}, secret_keys=[]
    )
    settings = load_settings()
    values = load_values(settings, load_manifest(settings))
    seen: list[bool] = []

    @pulumi.runtime.test
    def check() -> pulumi.Output[Any]:
        flags = [pulumi.Output.from_input(v.is_secret()) for v in values.values()]
        return pulumi.Output.all(*flags).apply(seen.extend)

    check()
    assert seen == [True] * len(PATHS)


# --- the aws variant of staging --------------------------------------------------------------------


def test_aws_staging_registers_exactly_the_expected_resources() -> None:
    run = run_aws_staging()
    assert registered(run) == aws_expected()
    check_children_of_component(run)
    assert not any(r.protect for r in run.resources)


def test_aws_secrets_are_named_tagged_for_their_readers_and_versioned() -> None:
    run = run_aws_staging()
    for key, path in PATHS.items():
        stored = secret(run, AWS_SECRET, key)
        assert stored.inputs["name"] == f"staging/{path}"
        readers = [svc for svc, keys in READS.items() if key in keys]
        assert stored.inputs["tags"] == {
            "managed-by": "pulumi/secrets-migration",
            "namespace": "staging",
            "env-key": key,
            **{f"read-{svc}": "true" for svc in readers},
        }
        assert stored.inputs["recoveryWindowInDays"] == 30
        assert "kmsKeyId" not in stored.inputs
        version = secret(run, AWS_VERSION, key)
        assert version.inputs["secretId"] == f"secrets/{path}-id"
        assert version.inputs["secretString"] == EXAMPLE_VALUES[key]
        assert version.secret_inputs == {"secretString"}


NAMESPACE_PATTERN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:staging/*"


def test_aws_service_policies_read_only_secrets_tagged_for_the_service() -> None:
    run = run_aws_staging()
    for service in READS:
        policy = run.named(f"secrets-{service}-read")
        assert policy.inputs["name"] == f"staging-{service}-secrets-read"
        assert policy.inputs["description"] == f"Read {service}'s secrets in staging (secrets-migration)"
        document = json.loads(policy.inputs["policy"])
        assert document["Version"] == "2012-10-17"
        assert document["Statement"] == [
            {
                "Sid": "ReadTaggedSecrets",
                "Effect": "Allow",
                "Action": ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"],
                "Resource": NAMESPACE_PATTERN,
                "Condition": {"StringEquals": {f"aws:ResourceTag/read-{service}": "true"}},
            },
            {"Sid": "BatchRead", "Effect": "Allow", "Action": "secretsmanager:BatchGetSecretValue", "Resource": "*"},
            {
                "Sid": "NoTagChanges",
                "Effect": "Deny",
                "Action": ["secretsmanager:TagResource", "secretsmanager:UntagResource"],
                "Resource": "*",
            },
        ]
    namespace = json.loads(run.named("secrets-namespace-read").inputs["policy"])
    assert run.named("secrets-namespace-read").inputs["name"] == "staging-secrets-read"
    assert namespace["Statement"][0]["Resource"] == ["arn:aws:secretsmanager:us-east-1:123456789012:secret:staging/*"]
    assert run.exports["policies"] == {
        svc: f"arn:aws:iam::123456789012:policy/staging-{svc}-secrets-read" for svc in SERVICES
    }
    assert run.exports["secretPaths"] == {key: f"staging/{path}" for key, path in PATHS.items()}
    assert run.exports["backend"] == "aws"


def test_aws_options_reach_the_resources() -> None:
    roles = {"signal-service": "signal-task", "risk-manager": "risk-task"}
    run = run_aws_staging(awsKmsKeyId=KMS_KEY, awsRecoveryWindowInDays=7, awsServiceRoles=roles)
    assert registered(run) == aws_expected(roles)
    assert {secret(run, AWS_SECRET, key).inputs["kmsKeyId"] for key in PATHS} == {KMS_KEY}
    assert {secret(run, AWS_SECRET, key).inputs["recoveryWindowInDays"] for key in PATHS} == {7}
    for service, role in roles.items():
        attachment = run.named(f"secrets-{service}-attach-{role}")
        assert attachment.inputs == {
            "role": role,
            "policyArn": f"arn:aws:iam::123456789012:policy/staging-{service}-secrets-read",
        }
    for name in [f"secrets-{svc}-read" for svc in SERVICES] + ["secrets-namespace-read"]:
        statements = json.loads(run.named(name).inputs["policy"])["Statement"]
        assert statements[-1] == {
            "Sid": "DecryptSecrets",
            "Effect": "Allow",
            "Action": ["kms:Decrypt"],
            "Resource": [KMS_KEY],
        }


def test_aws_prod_protects_everything_but_the_versions_a_rotation_replaces() -> None:
    run = run_with_values("prod", backend="aws")
    assert {(r.type, r.protect) for r in run.resources} == {
        (AWS_STORE, True),
        (AWS_SECRET, True),
        (IAM_POLICY, True),
        (AWS_VERSION, False),
    }


def test_preview_registers_the_same_resources() -> None:
    up, preview = (
        run_aws_staging(),
        run_program("staging", {"backend": "aws", "values": EXAMPLE_VALUES}, secret_keys=["values"], preview=True),
    )
    assert registered(preview) == registered(up)


# --- config errors stop the program before anything of the store is registered ---------------------


class RecordingMocks(DefaultMocks):
    def __init__(self) -> None:
        self.created: list[str] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.created.append(args.name)
        return super().new_resource(args)


@pytest.mark.parametrize(
    ("label", "stack", "config", "secret_keys", "message"),
    [
        ("unknown-backend", "staging", {"backend": "gcp"}, ["values"], "unknown backend"),
        (
            "namespace-pattern",
            "staging",
            {"namespace": "Staging", "allowNamespaceOverride": True},
            ["values"],
            "lower-case letters and digits",
        ),
        (
            "namespace-with-dash",
            "staging",
            {"namespace": "prod-market", "allowNamespaceOverride": True},
            ["values"],
            "no '-': it separates the namespace in policy names",
        ),
        ("namespace-not-stack", "staging", {"namespace": "prod"}, ["values"], "allowNamespaceOverride"),
        ("window-range", "staging", {"backend": "aws", "awsRecoveryWindowInDays": 3}, ["values"], "between 7 and 30"),
        ("window-0-prod", "prod", {"backend": "aws", "awsRecoveryWindowInDays": 0}, ["values"], "not allowed in prod"),
        ("plain-values", "staging", {}, [], "pulumi config set --secret --path 'values.KEY'"),
        ("missing-values", "staging", {"values": {"REDIS_PASSWORD": "x"}}, ["values"], "ALPACA_API_KEY_ID, ALPACA_"),
    ],
)
def test_config_error_registers_nothing(
    label: str, stack: str, config: dict[str, object], secret_keys: list[str], message: str
) -> None:
    mocks = RecordingMocks()
    with pytest.raises(pulumi.RunError, match=re.escape(message)) as caught:
        run_program(stack, {"values": CANARIES, **config}, secret_keys=secret_keys, mocks=mocks)
    assert mocks.created == []
    assert not any(c in str(caught.value) for c in CANARIES.values())


def test_missing_values_error_lists_every_missing_key() -> None:
    with pytest.raises(pulumi.RunError) as caught:
        run_program("staging", {"values": {"REDIS_PASSWORD": "x"}}, secret_keys=["values"])
    assert "ALPACA_API_KEY_ID, ALPACA_API_SECRET_KEY, DATABASE_PASSWORD (" in str(caught.value)


def test_staging_without_values_says_how_to_set_them() -> None:
    with pytest.raises(pulumi.RunError, match=re.escape("pulumi config set --secret --path 'values.KEY'")):
        run_program("staging")


def _big_stack(tmp_path: Any, secrets: int, services: int, readers: int) -> dict[str, object]:
    """A manifest of `secrets` secrets read by the first `readers` of `services` services, and its .env."""
    from components.manifest import Manifest, Secret, dump

    names = [f"svc-{i:02d}" for i in range(services)]
    keys = [f"APP_SECRET_{i:04d}_PASSWORD" for i in range(secrets)]
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        dump(
            Manifest(
                tuple(names), {k: Secret(k, f"app/secret_{i:04d}", tuple(names[:readers])) for i, k in enumerate(keys)}
            )
        ),
        encoding="utf-8",
    )
    env = tmp_path / ".env"
    env.write_text("".join(f"{k}=v{i}\n" for i, k in enumerate(keys)), encoding="utf-8")
    return {"backend": "aws", "manifest": str(manifest), "envFile": str(env)}


def test_a_service_reading_many_secrets_gets_a_constant_size_policy(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Exact-ARN policies passed IAM's 6,144-character limit at ~60-70 secrets; tag-based ones never grow."""
    from components.policies import iam_policy_size

    with caplog.at_level("WARNING"):
        run = run_program("staging", _big_stack(tmp_path, secrets=200, services=1, readers=1))
    assert len(run.of_type(AWS_SECRET)) == 200
    document = run.named("secrets-svc-00-read").inputs["policy"]
    assert iam_policy_size(document) < 700
    assert caplog.text == ""


def test_a_secret_with_more_readers_than_aws_tags_stops_the_program_naming_it(tmp_path: Any) -> None:
    mocks = RecordingMocks()
    with pytest.raises(pulumi.RunError, match=r"staging/app/secret_0000: needs 51 tags \(48 readers\)") as caught:
        run_program("staging", _big_stack(tmp_path, secrets=2, services=48, readers=48), mocks=mocks)
    assert "\n" not in str(caught.value)
    assert mocks.created == []


@pytest.mark.parametrize("backend", ["vault", "aws"])
def test_a_service_that_reads_nothing_gets_no_policy(backend: str, tmp_path: Any) -> None:
    from components.manifest import Manifest, Secret, dump

    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        dump(Manifest(("api", "idle"), {"API_TOKEN": Secret("API_TOKEN", "api/token", ("api",))})), encoding="utf-8"
    )
    run = run_program(
        "staging",
        {"backend": backend, "manifest": str(manifest), "values": {"API_TOKEN": "t"}},
        secret_keys=["values"],
    )
    assert "secrets-api-read" in run.names()
    assert "secrets-idle-read" not in run.names()
    assert set(run.exports["policies"]) == {"api"}
