"""The CrossGuard policy pack (`policy/`): each rule on labelled passing and failing cases, the pack as
the engine drives it, and every resource the real program registers (staging, prod, AWS) passing it."""

import json
import select
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime import proto
from pulumi.runtime.proto import analyzer_pb2_grpc
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)
from pulumi_policy.policy import _PolicyAnalyzerServicer

from components.manifest import load
from components.naming import (
    AWS_SECRET,
    AWS_SECRET_VERSION,
    IAM_ATTACHMENT,
    IAM_POLICY,
    VAULT_APPROLE,
    VAULT_AUTH_BACKEND,
    VAULT_MOUNT,
    VAULT_POLICY,
    VAULT_SECRET,
)
from components.policies import (
    iam_json,
    iam_read_policy,
    iam_service_read_policy,
    secret_arn_pattern,
    secret_tags,
    vault_namespace_policy_hcl,
    vault_service_policy_hcl,
)
from policy.rules import (
    LEAST_PRIVILEGE,
    POLICIES,
    PROTECTION,
    ROLE_ATTACHMENTS,
    SECRET_NAMES,
)
from tests.conftest import REPO

STAGING = {"namespace": "staging", "mount": "secret", "protected": False}
PROD = {"namespace": "prod", "mount": "secret", "protected": True}
CANARY = "CANARY-7f3e-not-a-real-secret"
ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:{}-AbCdEf"
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-4e5f-6789-abcd-ef0123456789"


def resource_args(
    resource_type: str,
    props: Mapping[str, Any],
    *,
    config: Mapping[str, Any],
    name: str = "secrets-ALPACA_API_KEY_ID",
    protect: bool = False,
) -> ResourceValidationArgs:
    opts = PolicyResourceOptions(protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)
    urn = f"urn:pulumi:{config.get('namespace', 'x')}::secrets-migration::{resource_type}::{name}"
    return ResourceValidationArgs(resource_type, props, urn, name, opts, None, dict(config))


def violations(policy: ResourceValidationPolicy, args: ResourceValidationArgs) -> list[str]:
    found: list[str] = []
    policy.validate(args, lambda message, urn=None: found.append(message))
    return found


# ---------------------------------------------------------------- secret-names

NAME_CASES = [
    # label, type, props, expected violation fragment (None: passes)
    ("vault-secret-in-namespace", VAULT_SECRET, {"mount": "secret", "name": "staging/alpaca/api_key_id"}, None),
    ("aws-secret-in-namespace", AWS_SECRET, {"name": "staging/database/password"}, None),
    ("vault-policy-prefixed", VAULT_POLICY, {"name": "staging-signal-service-read", "policy": ""}, None),
    ("iam-policy-prefixed", IAM_POLICY, {"name": "staging-secrets-read", "policy": "{}"}, None),
    ("iam-service-policy", IAM_POLICY, {"name": "staging-api-secrets-read", "policy": "{}"}, None),
    ("mount-with-path", VAULT_MOUNT, {"path": "secret", "type": "kv"}, None),
    ("auth-backend-with-path", VAULT_AUTH_BACKEND, {"path": "approle", "type": "approle"}, None),
    ("approle-without-name", VAULT_APPROLE, {"backend": "approle"}, "`roleName` must be set explicitly"),
    ("unnamed-type-ignored", AWS_SECRET_VERSION, {"secretId": "x"}, None),
    ("other-namespace", VAULT_SECRET, {"name": "prod/alpaca/api_key_id"}, "not under the namespace `staging/`"),
    ("prefix-without-slash", AWS_SECRET, {"name": "staging-alpaca/key"}, "not under the namespace"),
    ("longer-namespace", VAULT_SECRET, {"name": "staging2/alpaca/key"}, "not under the namespace"),
    ("namespace-only", VAULT_SECRET, {"name": "staging/"}, "not under the namespace"),
    ("dot-dot-escape", VAULT_SECRET, {"name": "staging/../prod/key"}, "`..` path segment"),
    ("empty-segment", AWS_SECRET, {"name": "staging//key"}, "empty"),
    ("vault-secret-autonamed", VAULT_SECRET, {"mount": "secret"}, "`name` must be set explicitly"),
    ("vault-secret-empty-name", VAULT_SECRET, {"name": "  "}, "`name` must be set explicitly"),
    ("aws-secret-name-prefix", AWS_SECRET, {"namePrefix": "staging/"}, "`name` must be set explicitly"),
    ("vault-policy-autonamed", VAULT_POLICY, {"policy": ""}, "`name` must be set explicitly"),
    ("iam-policy-autonamed", IAM_POLICY, {"policy": "{}"}, "`name` must be set explicitly"),
    ("mount-without-path", VAULT_MOUNT, {"type": "kv"}, "`path` must be set explicitly"),
    ("autoname-after-check", VAULT_SECRET, {"name": "secrets-ALPACA_API_KEY_ID-1a2b3c4"}, "not under the namespace"),
    ("policy-autoname-after-check", VAULT_POLICY, {"name": "secrets-namespace-read-9f8e7d6"}, "not a read-policy"),
    ("vault-policy-other-namespace", VAULT_POLICY, {"name": "prod-secrets-read"}, "not a read-policy name of"),
    ("iam-policy-unprefixed", IAM_POLICY, {"name": "secrets-read"}, "not a read-policy name"),
    # Issue 9 item 5: a prefix rule let stack `staging-x` (or namespace `p-x`) write these.
    ("prefix-of-another-namespace", VAULT_POLICY, {"name": "staging-x-api-read"}, None),
    ("vault-name-for-iam", IAM_POLICY, {"name": "staging-api-read"}, "not a read-policy name"),
    ("reserved-service-name", VAULT_POLICY, {"name": "staging-namespace-read"}, "not a read-policy name"),
]


@pytest.mark.parametrize(
    ("resource_type", "props", "expected"), [c[1:] for c in NAME_CASES], ids=[c[0] for c in NAME_CASES]
)
def test_secret_names(resource_type: str, props: dict[str, Any], expected: str | None) -> None:
    found = violations(SECRET_NAMES, resource_args(resource_type, props, config=STAGING))
    if expected is None:
        assert found == []
    else:
        assert len(found) == 1 and expected in found[0], found


def test_missing_namespace_config_is_a_violation_naming_the_key() -> None:
    found = violations(SECRET_NAMES, resource_args(VAULT_SECRET, {"name": "staging/a"}, config={}))
    assert len(found) == 1 and "pack config `namespace` is not set" in found[0]


# ---------------------------------------------------------------- least-privilege: Vault HCL


def _block(path: str, *caps: str) -> str:
    return f'path "{path}" {{\n  capabilities = [{", ".join(json.dumps(c) for c in caps)}]\n}}\n'


VAULT_CASES = [
    (
        "service-policy-builder",
        vault_service_policy_hcl("staging", ["secret/data/staging/alpaca/api_key_id", "secret/data/staging/redis/pw"]),
        None,
    ),
    ("namespace-policy-builder", vault_namespace_policy_hcl("secret", "staging"), None),
    ("runbook-one-liner", 'path "secret/data/staging/alpaca/api_key_id" { capabilities = ["read"] }', None),
    ("no-paths", "# nothing granted\n", None),
    ("star-capability", _block("secret/data/staging/*", "*"), "grants `*`"),
    ("sudo", _block("secret/data/staging/a", "read", "sudo"), "grants `sudo`"),
    ("write-on-data", _block("secret/data/staging/a", "create", "update"), "grants `create`, `update`"),
    ("list-on-data", _block("secret/data/staging/*", "list"), "grants `list`"),
    ("delete-on-metadata", _block("secret/metadata/staging/*", "list", "delete"), "grants `delete`"),
    ("other-namespace", _block("secret/data/prod/a", "read"), "is outside"),
    ("whole-mount", _block("secret/*", "read"), "is outside"),
    ("namespace-glob-prefix", _block("secret/data/staging*", "read"), "is outside"),
    ("other-mount", _block("kv/data/staging/a", "read"), "is outside"),
    ("sys-path", _block("sys/policies/acl/*", "read"), "is outside"),
    ("dot-dot", _block("secret/data/staging/../prod/a", "read"), "is outside"),
    ("second-block-widens", _block("secret/data/staging/a", "read") + _block("auth/token/create", "update"), "outside"),
    (
        "extra-attribute",
        'path "secret/data/staging/a" {\n  capabilities = ["read"]\n  allowed_parameters = {}\n}\n',
        "must set only `capabilities`",
    ),
    ("legacy-policy-syntax", 'path "secret/data/staging/a" {\n  policy = "write"\n}\n', "must set only `capabilities`"),
    ("capabilities-string", 'path "secret/data/staging/a" {\n  capabilities = "read"\n}\n', "list of strings"),
    ("top-level-attribute", 'name = "x"\n' + _block("secret/data/staging/a", "read"), "unexpected top-level `name`"),
    ("not-hcl", 'path "secret/data/staging/a" { capabilities = ["read"', "not valid HCL"),
]


@pytest.mark.parametrize(("hcl", "expected"), [c[1:] for c in VAULT_CASES], ids=[c[0] for c in VAULT_CASES])
def test_vault_policy_least_privilege(hcl: str, expected: str | None) -> None:
    props = {"name": "staging-signal-service-read", "policy": hcl}
    found = violations(LEAST_PRIVILEGE, resource_args(VAULT_POLICY, props, config=STAGING))
    if expected is None:
        assert found == []
    else:
        assert found and expected in found[0], found


def test_vault_policy_honours_the_configured_mount() -> None:
    hcl = vault_namespace_policy_hcl("kv", "staging")
    props = {"name": "staging-secrets-read", "policy": hcl}
    assert violations(LEAST_PRIVILEGE, resource_args(VAULT_POLICY, props, config={**STAGING, "mount": "kv"})) == []
    assert violations(LEAST_PRIVILEGE, resource_args(VAULT_POLICY, props, config=STAGING))  # default `secret`


# ---------------------------------------------------------------- least-privilege: IAM JSON

SERVICE_ARNS = [ARN.format("staging/alpaca/api_key_id"), ARN.format("staging/database/password")]


def _statement(**fields: Any) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", **fields}]}


IAM_CASES: list[tuple[str, Any, str | None]] = [
    ("builder-json-string", iam_json(iam_read_policy(SERVICE_ARNS)), None),
    ("builder-dict", iam_read_policy(SERVICE_ARNS), None),
    ("builder-with-kms-key", iam_json(iam_read_policy(SERVICE_ARNS, KEY_ARN)), None),
    ("namespace-wildcard", iam_read_policy([secret_arn_pattern(SERVICE_ARNS[0], "staging")]), None),
    ("single-statement-object", {"Statement": {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": KEY_ARN}}, None),
    ("action-case-insensitive", _statement(Action="SecretsManager:getSecretValue", Resource=SERVICE_ARNS), None),
    ("deny-anything", {"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}, None),
    ("service-wildcard", _statement(Action="secretsmanager:*", Resource=SERVICE_ARNS), "allows `secretsmanager:*`"),
    ("write-action", _statement(Action=["secretsmanager:PutSecretValue"], Resource=SERVICE_ARNS), "PutSecretValue"),
    ("other-service", _statement(Action="iam:PassRole", Resource=SERVICE_ARNS), "allows `iam:PassRole`"),
    ("resource-star", _statement(Action="secretsmanager:GetSecretValue", Resource="*"), 'Resource: "*"'),
    ("star-in-list", _statement(Action="kms:Decrypt", Resource=[KEY_ARN, "*"]), 'Resource: "*"'),
    ("not-action", _statement(NotAction="iam:*", Resource=SERVICE_ARNS), "uses `NotAction`"),
    ("not-resource", _statement(Action="secretsmanager:GetSecretValue", NotResource="x"), "uses `NotResource`"),
    (
        "other-namespace-arn",
        _statement(Action="secretsmanager:GetSecretValue", Resource=ARN.format("prod/database/password")),
        "not a secret under `staging/`",
    ),
    (
        "any-secret-in-account",
        _statement(Action="secretsmanager:GetSecretValue", Resource="arn:aws:secretsmanager:*:*:secret:*"),
        "not a secret under `staging/`",
    ),
    ("kms-on-any-key", _statement(Action="kms:Decrypt", Resource="arn:aws:kms:us-east-1:1:key/*"), "or a KMS key"),
    ("no-effect", {"Statement": [{"Action": "kms:Decrypt", "Resource": KEY_ARN}]}, "no `Effect`"),
    ("no-statement", {"Version": "2012-10-17"}, "no `Statement`"),
    ("not-json", '{"Statement": [', "not valid JSON"),
    ("batch-alone-on-star", _statement(Action="secretsmanager:BatchGetSecretValue", Resource="*"), None),
    (
        "batch-with-get-on-star",
        _statement(Action=["secretsmanager:BatchGetSecretValue", "secretsmanager:GetSecretValue"], Resource="*"),
        "must stand alone",
    ),
    ("too-big", iam_read_policy([ARN.format(f"staging/s{i:03d}") for i in range(120)]), "IAM allows 6144"),
]


@pytest.mark.parametrize(("document", "expected"), [c[1:] for c in IAM_CASES], ids=[c[0] for c in IAM_CASES])
def test_iam_namespace_policy_least_privilege(document: Any, expected: str | None) -> None:
    props = {"name": "staging-secrets-read", "policy": document}
    found = violations(LEAST_PRIVILEGE, resource_args(IAM_POLICY, props, config=STAGING))
    if expected is None:
        assert found == []
    else:
        assert found and expected in found[0], found


PATTERN = secret_arn_pattern(SERVICE_ARNS[0], "staging")
TAGGED = iam_service_read_policy(PATTERN, "signal-service")


def _with_read(**changes: Any) -> dict[str, Any]:
    document = json.loads(json.dumps(TAGGED))
    document["Statement"][0].update(changes)
    return {k: v for k, v in document.items()}


SERVICE_IAM_CASES: list[tuple[str, Any, str | None]] = [
    ("builder", TAGGED, None),
    ("builder-with-kms", iam_service_read_policy(PATTERN, "signal-service", KEY_ARN), None),
    ("exact-arns-no-condition", iam_read_policy(SERVICE_ARNS), "must read only secrets tagged `read-signal-service`"),
    (
        "another-services-tag",
        _with_read(Condition={"StringEquals": {"aws:ResourceTag/read-orchestrator": "true"}}),
        "must read only secrets tagged",
    ),
    (
        "extra-condition-key",
        _with_read(
            Condition={"StringEquals": {"aws:ResourceTag/read-signal-service": "true", "aws:SourceIp": "1.2.3.4"}}
        ),
        "must read only secrets tagged",
    ),
    ("resource-star-with-tag", _with_read(Resource="*"), 'Resource: "*"'),
    ("tagging-allowed", _with_read(Action=["secretsmanager:TagResource"]), "allows `secretsmanager:TagResource`"),
]


@pytest.mark.parametrize(
    ("document", "expected"), [c[1:] for c in SERVICE_IAM_CASES], ids=[c[0] for c in SERVICE_IAM_CASES]
)
def test_iam_service_policy_reads_only_what_is_tagged_for_the_service(document: Any, expected: str | None) -> None:
    props = {"name": "staging-signal-service-secrets-read", "policy": document}
    found = violations(LEAST_PRIVILEGE, resource_args(IAM_POLICY, props, config=STAGING))
    if expected is None:
        assert found == []
    else:
        assert found and expected in found[0], found


# ---------------------------------------------------------------- least-privilege: AppRole roles and read tags

GOOD_ROLE = {
    "backend": "approle",
    "roleName": "staging-signal-service",
    "tokenPolicies": ["staging-signal-service-read"],
    "tokenNoDefaultPolicy": True,
    "bindSecretId": True,
}
APPROLE_CASES: list[tuple[str, dict[str, Any], str | None]] = [
    ("exactly-its-policy", GOOD_ROLE, None),
    ("default-policy-too", {**GOOD_ROLE, "tokenNoDefaultPolicy": False}, "token_no_default_policy"),
    (
        "namespace-policy-too",
        {**GOOD_ROLE, "tokenPolicies": ["staging-signal-service-read", "staging-secrets-read"]},
        "must carry exactly the policy staging-signal-service-read",
    ),
    ("another-services-policy", {**GOOD_ROLE, "tokenPolicies": ["staging-orchestrator-read"]}, "exactly the policy"),
    ("no-secret-id", {**GOOD_ROLE, "bindSecretId": False}, "bind_secret_id"),
    ("other-namespace", {**GOOD_ROLE, "roleName": "prod-signal-service"}, "not a service role of namespace"),
]


@pytest.mark.parametrize(("props", "expected"), [c[1:] for c in APPROLE_CASES], ids=[c[0] for c in APPROLE_CASES])
def test_approle_roles_carry_exactly_their_services_policy(props: dict[str, Any], expected: str | None) -> None:
    found = violations(LEAST_PRIVILEGE, resource_args(VAULT_APPROLE, props, config=STAGING))
    if expected is None:
        assert found == []
    else:
        assert found and expected in found[0], found


TAG_CASES: list[tuple[str, Any, str | None]] = [
    ("program-tags", secret_tags("staging", "K", ["api", "worker"]), None),
    ("no-tags", None, None),
    ("read-tag-not-true", {**secret_tags("staging", "K", ["api"]), "read-api": "yes"}, "must be `true`"),
    ("read-tag-bad-service", {"read-Bad_Name": "true"}, "invalid service name"),
    ("other-namespace-tag", secret_tags("prod", "K", ["api"]), "names another namespace"),
    ("too-many-readers", secret_tags("staging", "K", [f"s{i}" for i in range(48)]), "Secrets Manager allows 50"),
]


@pytest.mark.parametrize(("tags", "expected"), [c[1:] for c in TAG_CASES], ids=[c[0] for c in TAG_CASES])
def test_read_tags_on_aws_secrets(tags: Any, expected: str | None) -> None:
    props = {"name": "staging/a/b", **({"tags": tags} if tags is not None else {})}
    found = violations(LEAST_PRIVILEGE, resource_args(AWS_SECRET, props, config=STAGING))
    if expected is None:
        assert found == []
    else:
        assert found and expected in found[0], found


# ---------------------------------------------------------------- role-attachments (stack-wide)


def _attachments(roles: list[str]) -> Any:
    from pulumi_policy import PolicyResource, StackValidationArgs

    resources = [
        PolicyResource(
            IAM_ATTACHMENT, {"role": role, "policyArn": f"arn:{i}"}, f"urn:{i}", f"a{i}", None, None, None, [], {}
        )
        for i, role in enumerate(roles)
    ]
    return StackValidationArgs(resources, {})


def test_no_role_gets_more_than_ten_policies() -> None:
    found: list[str] = []
    ROLE_ATTACHMENTS.validate(_attachments(["a"] * 10 + ["b"]), lambda message, urn=None: found.append(message))
    assert found == []
    ROLE_ATTACHMENTS.validate(_attachments(["a"] * 11), lambda message, urn=None: found.append(message))
    assert found == ["role a: 11 read policies would be attached; IAM allows 10 managed policies per role by default"]


# ---------------------------------------------------------------- protection

PROTECTION_CASES = [
    # label, config, type, props, protect, expected
    ("prod-protected-secret", PROD, VAULT_SECRET, {"name": "prod/a"}, True, None),
    ("staging-unprotected", STAGING, VAULT_SECRET, {"name": "staging/a"}, False, None),
    ("prod-unprotected-secret", PROD, VAULT_SECRET, {"name": "prod/a"}, False, "`protect` is not set"),
    ("prod-unprotected-policy", PROD, VAULT_POLICY, {"name": "prod-x"}, False, "`protect` is not set"),
    ("prod-unprotected-attachment", PROD, IAM_ATTACHMENT, {"role": "r"}, False, "`protect` is not set"),
    ("prod-unprotected-component", PROD, "secrets-migration:index:AwsSecretStore", {}, False, "`protect` is not set"),
    ("prod-version-exempt", PROD, AWS_SECRET_VERSION, {"secretId": "x"}, False, None),
    ("prod-unprotected-approle", PROD, VAULT_APPROLE, {"roleName": "prod-a"}, False, "`protect` is not set"),
    ("prod-provider-exempt", PROD, "pulumi:providers:vault", {}, False, None),
    ("prod-root-stack-exempt", PROD, "pulumi:pulumi:Stack", {}, False, None),
    ("prod-window-default", PROD, AWS_SECRET, {"name": "prod/a"}, True, None),
    ("prod-window-30", PROD, AWS_SECRET, {"name": "prod/a", "recoveryWindowInDays": 30.0}, True, None),
    ("prod-window-7", PROD, AWS_SECRET, {"name": "prod/a", "recoveryWindowInDays": 7.0}, True, None),
    ("prod-window-0", PROD, AWS_SECRET, {"name": "prod/a", "recoveryWindowInDays": 0.0}, True, "at least 7"),
    ("prod-window-6", PROD, AWS_SECRET, {"name": "prod/a", "recoveryWindowInDays": 6}, True, "at least 7"),
    ("staging-window-0", STAGING, AWS_SECRET, {"name": "staging/a", "recoveryWindowInDays": 0.0}, False, None),
    ("protected-unset", {"namespace": "prod"}, VAULT_SECRET, {"name": "prod/a"}, True, "`protected` is not set"),
]


@pytest.mark.parametrize(
    ("config", "resource_type", "props", "protect", "expected"),
    [c[1:] for c in PROTECTION_CASES],
    ids=[c[0] for c in PROTECTION_CASES],
)
def test_protection(
    config: dict[str, Any], resource_type: str, props: dict[str, Any], protect: bool, expected: str | None
) -> None:
    found = violations(PROTECTION, resource_args(resource_type, props, config=config, protect=protect))
    if expected is None:
        assert found == []
    else:
        assert len(found) == 1 and expected in found[0], found


def test_policies_are_mandatory_with_config_schemas() -> None:
    assert [p.name for p in POLICIES] == ["secret-names", "least-privilege", "protection", "role-attachments"]
    assert all(p.enforcement_level == EnforcementLevel.MANDATORY for p in POLICIES)
    assert SECRET_NAMES.config_schema.required == ["namespace"]
    assert LEAST_PRIVILEGE.config_schema.properties["mount"]["default"] == "secret"
    assert PROTECTION.config_schema.properties["protected"]["type"] == "boolean"


# ---------------------------------------------------------------- the pack as the engine drives it


def _struct(data: Mapping[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(dict(data))
    return s


def _pack_config(stack: str) -> dict[str, dict[str, Any]]:
    loaded: dict[str, dict[str, Any]] = json.loads((REPO / "policy" / f"config.{stack}.json").read_text())
    return loaded


def _configure_request(stack: str) -> Any:
    request = proto.ConfigureAnalyzerRequest()
    for policy, props in _pack_config(stack).items():
        # As the CLI sends it: the file's properties plus each policy's own enforcement level.
        config = proto.PolicyConfig(enforcementLevel=proto.MANDATORY, properties=_struct(props))
        request.policyConfig[policy].CopyFrom(config)
    return request


def _servicer(stack: str) -> _PolicyAnalyzerServicer:
    servicer = _PolicyAnalyzerServicer("secrets-migration", "0.1.0", POLICIES, EnforcementLevel.MANDATORY)
    servicer.Configure(_configure_request(stack), None)
    return servicer


def _secret(value: Any) -> dict[str, Any]:
    """A secret property as the engine sends it to an analyzer (`KeepSecrets: true`)."""
    return {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": value}


def _analyze_request(resource_type: str, name: str, props: Mapping[str, Any]) -> Any:
    return proto.AnalyzeRequest(
        type=resource_type,
        name=name,
        urn=f"urn:pulumi:stack::secrets-migration::secrets-migration:index:VaultSecretStore${resource_type}::{name}",
        properties=_struct(props),
        options=proto.AnalyzerResourceOptions(protect=False),
    )


def _analyze(servicer: _PolicyAnalyzerServicer, resource_type: str, name: str, props: Mapping[str, Any]) -> Any:
    return servicer.Analyze(_analyze_request(resource_type, name, props), None)


def test_engine_shaped_analyze_reports_mandatory_violations_without_values() -> None:
    servicer = _servicer("prod")
    response = _analyze(
        servicer,
        VAULT_SECRET,
        "secrets-DATABASE_PASSWORD",
        {"mount": "secret", "name": "staging/database/password", "dataJson": _secret(json.dumps({"value": CANARY}))},
    )
    by_policy = {d.policyName: d for d in response.diagnostics}
    assert set(by_policy) == {"secret-names", "protection"}
    assert all(d.enforcementLevel == proto.MANDATORY for d in response.diagnostics)
    assert "not under the namespace `prod/`" in by_policy["secret-names"].message
    assert "`protect` is not set" in by_policy["protection"].message
    assert CANARY not in str(response)


def test_engine_shaped_analyze_passes_a_good_resource_and_reads_the_stack_config_file() -> None:
    response = _analyze(
        _servicer("staging"),
        VAULT_POLICY,
        "secrets-namespace-read",
        {"name": "staging-secrets-read", "policy": vault_namespace_policy_hcl("secret", "staging")},
    )
    assert list(response.diagnostics) == []


def test_unknown_values_during_preview_are_advisory_not_violations() -> None:
    unknown = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # how the engine encodes an unknown
    response = _analyze(
        _servicer("staging"), IAM_POLICY, "secrets-namespace-read", {"name": "staging-secrets-read", "policy": unknown}
    )
    assert [d.enforcementLevel for d in response.diagnostics] == [proto.ADVISORY]
    assert "during preview" in response.diagnostics[0].message


def test_pack_serves_the_analyzer_protocol_when_started_like_the_cli_does() -> None:
    """`policy/__main__.py` run from the pack directory prints its port and answers the engine over gRPC."""
    process = subprocess.Popen(
        [sys.executable, "__main__.py"], cwd=REPO / "policy", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 30)
        assert ready, "the pack printed no port within 30 s"
        line = process.stdout.readline()
        assert line.strip().isdigit(), process.stderr.read() if process.stderr else line
        with grpc.insecure_channel(f"127.0.0.1:{int(line)}") as channel:
            stub = analyzer_pb2_grpc.AnalyzerStub(channel)
            info = stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=10)
            assert info.name == "secrets-migration"
            assert {p.name: p.enforcementLevel for p in info.policies} == {
                "secret-names": proto.MANDATORY,
                "least-privilege": proto.MANDATORY,
                "protection": proto.MANDATORY,
                "role-attachments": proto.MANDATORY,
            }
            stub.Configure(_configure_request("staging"), timeout=10)
            response = stub.Analyze(
                _analyze_request(VAULT_SECRET, "secrets-REDIS_PASSWORD", {"mount": "secret", "name": "redis/pw"}),
                timeout=10,
            )
        assert [d.policyName for d in response.diagnostics] == ["secret-names"]
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_pack_files_are_consistent() -> None:
    for stack, protected in (("local", False), ("staging", False), ("prod", True)):
        config = _pack_config(stack)
        assert set(config) == {p.name for p in POLICIES if p.config_schema is not None}
        assert config["secret-names"]["namespace"] == config["least-privilege"]["namespace"] == stack
        assert config["protection"]["protected"] is protected
    main = (REPO / "policy" / "__main__.py").read_text()
    assert "PolicyPack(" in main
    assert all("PolicyPack(" not in p.read_text() for p in (REPO / "policy").glob("*.py") if p.name != "__main__.py")
    yaml_text = (REPO / "policy" / "PulumiPolicy.yaml").read_text()
    assert "name: python" in yaml_text


# ---------------------------------------------------------------- the real program's resources


def _program_resources(stack: str, extra: Mapping[str, object]) -> list[Any]:
    from tests.harness import run_program  # imports pulumi's mocks; only these tests need it

    values = {key: f"{CANARY}-{key}" for key in load(REPO / "secrets.manifest.yaml").secrets}
    return run_program(stack, {"values": values, **extra}, secret_keys=["values"]).resources


def _check_all(resources: list[Any], stack: str) -> list[str]:
    config = _pack_config(stack)
    found: list[str] = []
    for r in resources:
        for policy in POLICIES:
            if isinstance(policy, ResourceValidationPolicy):
                args = resource_args(r.type, r.inputs, config=config[policy.name], name=r.name, protect=r.protect)
                found += violations(policy, args)
    return found


AWS: dict[str, object] = {"backend": "aws", "awsServiceRoles": {"signal-service": "signal-role"}}
PROGRAM_CASES: list[tuple[str, str, dict[str, object]]] = [
    ("staging-vault", "staging", {}),
    ("prod-vault", "prod", {}),
    ("staging-aws", "staging", AWS),
    ("prod-aws-with-kms", "prod", {**AWS, "awsKmsKeyId": KEY_ARN}),
    ("staging-vault-managed-mount", "staging", {"vaultManageMount": True}),
]


@pytest.fixture(scope="module")
def program_runs() -> dict[str, list[Any]]:
    return {label: _program_resources(stack, extra) for label, stack, extra in PROGRAM_CASES}


@pytest.mark.parametrize(("label", "stack"), [(c[0], c[1]) for c in PROGRAM_CASES], ids=[c[0] for c in PROGRAM_CASES])
def test_every_resource_the_program_registers_passes(
    program_runs: dict[str, list[Any]], label: str, stack: str
) -> None:
    resources = program_runs[label]
    types = {r.type for r in resources}
    assert types & {VAULT_SECRET, AWS_SECRET} and types & {VAULT_POLICY, IAM_POLICY}  # the rules had work to do
    assert _check_all(resources, stack) == []


def _tampered(resources: list[Any], name: str, **changes: Any) -> list[Any]:
    from dataclasses import replace

    return [replace(r, **changes) if r.name == name else r for r in resources]


def test_tampered_program_resources_are_caught(program_runs: dict[str, list[Any]]) -> None:
    staging, prod, aws = program_runs["staging-vault"], program_runs["prod-vault"], program_runs["staging-aws"]
    policy = next(r for r in staging if r.name == "secrets-signal-service-read")
    widened = {**policy.inputs, "policy": policy.inputs["policy"] + _block("secret/data/prod/*", "read")}
    assert _check_all(_tampered(staging, policy.name, inputs=widened), "staging") == [
        f'{policy.name}: path "secret/data/prod/*" is outside `secret/data/staging/` and `secret/metadata/staging/`'
    ]

    secret = next(r for r in staging if r.name == "secrets/database/password")
    moved = {**secret.inputs, "name": "prod/database/password"}
    found = _check_all(_tampered(staging, secret.name, inputs=moved), "staging")
    assert found == [f"{secret.name}: name `prod/database/password` is not under the namespace `staging/`"]

    unprotected = _check_all(_tampered(prod, "secrets/redis/password", protect=False), "prod")
    assert unprotected == ["secrets/redis/password: `protect` is not set on a protected stack"]

    iam = next(r for r in aws if r.name == "secrets-orchestrator-read")
    document = json.loads(iam.inputs["policy"])
    document["Statement"][0]["Resource"] = "*"
    found = _check_all(_tampered(aws, iam.name, inputs={**iam.inputs, "policy": json.dumps(document)}), "staging")
    assert found and all('Resource: "*"' in f for f in found)

    role = next(r for r in prod if r.type == VAULT_APPROLE)
    widened_role = {**role.inputs, "tokenPolicies": [*role.inputs["tokenPolicies"], "prod-secrets-read"]}
    assert _check_all(_tampered(prod, role.name, inputs=widened_role), "prod") == [
        f"{role.name}: role `{role.inputs['roleName']}` must carry exactly the policy {role.inputs['tokenPolicies'][0]}"
    ]

    assert not any(CANARY in message for message in found + unprotected)
