"""The real `__main__.py` for each committed stack (and an aws variant of staging), under the SDK's mocks.

Expected names, paths and ARNs are written out literally from `examples/.env.example` and the committed
manifest, not recomputed with the code under test.
"""

import json
import re
from typing import Any

import pulumi
import pytest

from components.settings import ConfigError
from tests.harness import DefaultMocks, ProgramRun, run_program

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
KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def run_with_values(stack: str, values: dict[str, str] | None = None, **config: object) -> ProgramRun:
    """Staging and prod carry no values in their stack files: they come as secret config at deploy time."""
    return run_program(stack, {"values": values or EXAMPLE_VALUES, **config}, secret_keys=["values"])


def run_aws_staging(**config: object) -> ProgramRun:
    return run_with_values("staging", backend="aws", **config)


def vault_expected_names(manage_mount: bool = False) -> dict[str, str]:
    names = {"secrets": VAULT_STORE, "secrets-namespace-read": VAULT_POLICY}
    names.update({f"secrets-{key}": SECRET_V2 for key in PATHS})
    names.update({f"secrets-{svc}-read": VAULT_POLICY for svc in SERVICES})
    if manage_mount:
        names["secrets-mount"] = MOUNT
    return names


def aws_expected_names(roles: dict[str, str] | None = None) -> dict[str, str]:
    names = {"secrets": AWS_STORE, "secrets-namespace-read": IAM_POLICY}
    names.update({f"secrets-{key}": AWS_SECRET for key in PATHS})
    names.update({f"secrets-{key}-version": AWS_VERSION for key in PATHS})
    names.update({f"secrets-{svc}-read": IAM_POLICY for svc in SERVICES})
    names.update({f"secrets-{svc}-attach-{role}": ATTACHMENT for svc, role in (roles or {}).items()})
    return names


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
    # stack, values come from, protect
    ("local", "envFile", False),
    ("staging", "values", False),
    ("prod", "values", True),
]


def run_vault_stack(stack: str, source: str) -> ProgramRun:
    return run_program(stack) if source == "envFile" else run_with_values(stack)


@pytest.mark.parametrize(("stack", "source", "protect"), VAULT_STACKS)
def test_vault_stack_registers_exactly_the_expected_resources(stack: str, source: str, protect: bool) -> None:
    run = run_vault_stack(stack, source)
    assert {r.name: r.type for r in run.resources} == vault_expected_names()
    check_children_of_component(run)


@pytest.mark.parametrize(("stack", "source", "protect"), VAULT_STACKS)
def test_vault_secrets_are_written_at_the_runbook_paths(stack: str, source: str, protect: bool) -> None:
    run = run_vault_stack(stack, source)
    for key, path in PATHS.items():
        secret = run.named(f"secrets-{key}")
        assert secret.inputs["mount"] == "secret"
        assert secret.inputs["name"] == f"{stack}/{path}"
        assert json.loads(secret.inputs["dataJson"]) == {"value": EXAMPLE_VALUES[key]}
        assert "dataJson" in secret.secret_inputs


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


@pytest.mark.parametrize(("stack", "source", "protect"), VAULT_STACKS)
def test_protect_everything_in_prod_only(stack: str, source: str, protect: bool) -> None:
    run = run_vault_stack(stack, source)
    assert {r.name: r.protect for r in run.resources} == {r.name: protect for r in run.resources}


@pytest.mark.parametrize(("stack", "source", "protect"), VAULT_STACKS)
def test_vault_exports(stack: str, source: str, protect: bool) -> None:
    run = run_vault_stack(stack, source)
    assert set(run.exports) == {"backend", "namespace", "secretPaths", "policies", "manifestSha256"}
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
    assert {r.name: r.type for r in run.resources} == vault_expected_names(manage_mount=True)
    mount = run.named("secrets-mount")
    assert (mount.inputs["path"], mount.inputs["type"], mount.inputs["options"]) == ("kv-apps", "kv", {"version": "2"})
    assert {run.named(f"secrets-{key}").inputs["mount"] for key in PATHS} == {"kv-apps"}
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
    data = {key: json.loads(run.named(f"secrets-{key}").inputs["dataJson"])["value"] for key in PATHS}
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
    suffix = "" if backend == "vault" else "-version"
    assert carriers == {(f"secrets-{key}{suffix}", value_key) for key in PATHS}
    assert _leaks(run) == []
    out, err = capfd.readouterr()
    assert not any(c in out + err for c in CANARIES.values())


def test_values_are_secret_outputs_from_where_they_are_read() -> None:
    from components.settings import load_manifest, load_settings, load_values
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
    assert {r.name: r.type for r in run.resources} == aws_expected_names()
    check_children_of_component(run)
    assert not any(r.protect for r in run.resources)


def test_aws_secrets_are_named_tagged_and_versioned() -> None:
    run = run_aws_staging()
    for key, path in PATHS.items():
        secret = run.named(f"secrets-{key}")
        assert secret.inputs["name"] == f"staging/{path}"
        assert secret.inputs["tags"] == {
            "managed-by": "pulumi/secrets-migration",
            "namespace": "staging",
            "env-key": key,
        }
        assert secret.inputs["recoveryWindowInDays"] == 30
        assert "kmsKeyId" not in secret.inputs
        version = run.named(f"secrets-{key}-version")
        assert version.inputs["secretId"] == f"secrets-{key}-id"
        assert version.inputs["secretString"] == EXAMPLE_VALUES[key]
        assert version.secret_inputs == {"secretString"}


def test_aws_service_policies_allow_reads_on_exactly_their_arns() -> None:
    run = run_aws_staging()
    for service, keys in READS.items():
        policy = run.named(f"secrets-{service}-read")
        assert policy.inputs["name"] == f"staging-{service}-secrets-read"
        document = json.loads(policy.inputs["policy"])
        assert document["Version"] == "2012-10-17"
        assert document["Statement"] == [
            {
                "Sid": "ReadSecrets",
                "Effect": "Allow",
                "Action": ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"],
                "Resource": sorted(arn("staging", key) for key in keys),
            }
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
    assert {r.name: r.type for r in run.resources} == aws_expected_names(roles)
    assert {run.named(f"secrets-{key}").inputs["kmsKeyId"] for key in PATHS} == {KMS_KEY}
    assert {run.named(f"secrets-{key}").inputs["recoveryWindowInDays"] for key in PATHS} == {7}
    for service, role in roles.items():
        attachment = run.named(f"secrets-{service}-attach-{role}")
        assert attachment.inputs == {
            "role": role,
            "policyArn": f"arn:aws:iam::123456789012:policy/staging-{service}-secrets-read",
        }
    for name in [f"secrets-{svc}-read" for svc in SERVICES] + ["secrets-namespace-read"]:
        statements = json.loads(run.named(name).inputs["policy"])["Statement"]
        assert statements[1] == {
            "Sid": "DecryptSecrets",
            "Effect": "Allow",
            "Action": ["kms:Decrypt"],
            "Resource": [KMS_KEY],
        }


def test_aws_prod_protects_everything() -> None:
    run = run_with_values("prod", backend="aws")
    assert run.resources and all(r.protect for r in run.resources)


def test_preview_registers_the_same_resources() -> None:
    up, preview = (
        run_aws_staging(),
        run_program("staging", {"backend": "aws", "values": EXAMPLE_VALUES}, secret_keys=["values"], preview=True),
    )
    assert {r.name for r in preview.resources} == {r.name for r in up.resources}


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
            "must match",
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
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        run_program(stack, {"values": CANARIES, **config}, secret_keys=secret_keys, mocks=mocks)
    assert mocks.created == []
    assert not any(c in str(caught.value) for c in CANARIES.values())


def test_missing_values_error_lists_every_missing_key() -> None:
    with pytest.raises(ConfigError) as caught:
        run_program("staging", {"values": {"REDIS_PASSWORD": "x"}}, secret_keys=["values"])
    assert "ALPACA_API_KEY_ID, ALPACA_API_SECRET_KEY, DATABASE_PASSWORD (" in str(caught.value)


def test_staging_without_values_says_how_to_set_them() -> None:
    with pytest.raises(ConfigError, match=re.escape("pulumi config set --secret --path 'values.KEY'")):
        run_program("staging")


def test_oversized_iam_policy_is_warned_about(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    from components.manifest import Manifest, Secret, dump

    keys = [f"APP_SECRET_{i:03d}_PASSWORD" for i in range(80)]
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        dump(Manifest(("big",), {k: Secret(k, f"app/secret_{i:03d}", ("big",)) for i, k in enumerate(keys)})),
        encoding="utf-8",
    )
    env = tmp_path / ".env"
    env.write_text("".join(f"{k}=v{i}\n" for i, k in enumerate(keys)), encoding="utf-8")
    with caplog.at_level("WARNING"):
        run = run_program("staging", {"backend": "aws", "manifest": str(manifest), "envFile": str(env)})
    assert len(run.of_type(AWS_SECRET)) == 80
    assert "staging-big-secrets-read: the policy document is over IAM's 6144-character limit" in caplog.text


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
