"""The policy pack's rules: pure checks, the validators that apply them, and the policy objects.

`pulumi preview --policy-pack policy --policy-pack-config policy/config.<stack>.json` runs them on every
resource the program registers. The pack itself is built only in `policy/__main__.py`, because
constructing a `PolicyPack` starts a gRPC server and blocks.

Pack config is per policy (that is how `--policy-pack-config` files are shaped):
`{"secret-names": {"namespace": "staging"}, "least-privilege": {"namespace": "staging", "mount": "secret"},
"protection": {"protected": false}}`.

Messages name resources, paths, actions and config keys, never an input value: the engine hands the
validators plaintext secrets (`dataJson`, `secretString`), and a violation message is printed by the CLI.
"""

import functools
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import hcl2
from lark.exceptions import LarkError
from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from components import iam_eval, naming
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
    secret_name,
    vault_data_path,
)
from components.policies import (
    BATCH_READ,
    attachments_problem,
    policy_size_problem,
    tags_problem,
)

# The input that names each resource in its backend. Left out, the provider autonames it
# (`<logical>-1a2b3c4`), which breaks the runbook's paths and the gate's URN -> key mapping.
# The engine analyzes inputs *after* the provider's Check, which fills the autoname in; the namespace
# rule (`<ns>/...`, `<ns>-...`) is what rejects such a name there. The explicit-name check catches the
# omission wherever inputs arrive unchecked (the SDK mocks, providers that name at create time).
NAME_INPUT = {
    VAULT_SECRET: "name",
    VAULT_POLICY: "name",
    VAULT_MOUNT: "path",
    VAULT_AUTH_BACKEND: "path",
    VAULT_APPROLE: "roleName",
    AWS_SECRET: "name",
    IAM_POLICY: "name",
}
SECRET_TYPES = frozenset({VAULT_SECRET, AWS_SECRET})
# Vault policies, AppRole roles and IAM policies are cluster/account-wide and overwritten or refused by
# name: a stack may only write names that `components.naming` gives its own namespace (the mapping is
# injective, so a stack named `prod-market` cannot take prod's `prod-market-data-service-read`).
POLICY_BACKEND = {VAULT_POLICY: "vault", IAM_POLICY: "aws"}

VAULT_DATA_CAPABILITIES = frozenset({"read"})
VAULT_METADATA_CAPABILITIES = frozenset({"read", "list"})
# Lower-cased: IAM compares action names case-insensitively.
IAM_ALLOWED_ACTIONS = frozenset(
    a.lower() for a in ("secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret", BATCH_READ, "kms:Decrypt")
)
IAM_SECRET_READS = frozenset(a.lower() for a in ("secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"))
DEFAULT_MOUNT = "secret"
# The engine registers the root stack itself, and providers hold no data: `protect` cannot be set on
# the first and deleting the second deletes nothing, so the protection rule does not ask it of them.
PROTECT_EXEMPT_PREFIXES = ("pulumi:pulumi:Stack", "pulumi:providers:")
# A secret version is replaced by every rotation (`secret_string` is ForceNew) and deleting one only
# moves stage labels: protecting it would block rotations in prod and guard nothing.
PROTECT_EXEMPT_TYPES = frozenset({AWS_SECRET_VERSION})
MIN_RECOVERY_WINDOW_DAYS = 7
AWS_DEFAULT_RECOVERY_WINDOW_DAYS = 30

_HCL_OPTIONS = hcl2.SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)
_NAMESPACE_SCHEMA = {
    "type": "string",
    "pattern": "^[a-z0-9][a-z0-9-]*$",
    "description": "The stack's namespace: every secret is named `<namespace>/...`.",
}


class ConfigMissing(Exception):
    """A required pack config key is absent (the CLI validates the schema; unit tests and old CLIs may not)."""


def _namespace(args: ResourceValidationArgs) -> str:
    value = args.get_config().get("namespace")
    if not isinstance(value, str) or not value:
        raise ConfigMissing("namespace")
    return value


def _mount(args: ResourceValidationArgs) -> str:
    value = args.get_config().get("mount", DEFAULT_MOUNT)
    return value if isinstance(value, str) and value else DEFAULT_MOUNT


Validator = Callable[[ResourceValidationArgs, ReportViolation], None]


def _with_config(validate: Validator) -> Validator:
    """A missing pack config key is a violation that says which key, not a crash of the analyzer."""

    @functools.wraps(validate)
    def wrapper(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        try:
            validate(args, report_violation)
        except ConfigMissing as e:
            report_violation(
                f"pack config `{e}` is not set: pass --policy-pack-config policy/config.<stack>.json", None
            )

    return wrapper


# ---------------------------------------------------------------- pure checks (no Pulumi types)


def secret_name_problems(name: str, namespace: str) -> list[str]:
    """A secret's name must be `<namespace>/<path>` with a non-empty path and no `.`/`..` segment."""
    prefix = secret_name(namespace, "")
    if not name.startswith(prefix) or name == prefix:
        return [f"name `{name}` is not under the namespace `{prefix}`"]
    if any(segment in ("", ".", "..") for segment in name[len(prefix) :].split("/")):
        return [f"name `{name}` has an empty, `.` or `..` path segment"]
    return []


def policy_name_problems(backend: str, name: str, namespace: str) -> list[str]:
    """A policy's name must be one `components.naming` gives this namespace (a service's or its own)."""
    parsed = naming.parse_policy_name(backend, name)
    if parsed is None or parsed[0] != namespace:
        return [f"name `{name}` is not a read-policy name of namespace `{namespace}`"]
    return []


def approle_problems(props: Mapping[str, Any], namespace: str) -> list[str]:
    """A service's AppRole carries exactly its read policy: no `default` policy, no other, a secret_id needed."""
    role = props.get("roleName")
    parsed = naming.parse_approle_role(role) if isinstance(role, str) else None
    if parsed is None or parsed[0] != namespace:
        return [f"role `{role}` is not a service role of namespace `{namespace}`"]
    expected = [naming.vault_service_policy(namespace, parsed[1])]
    problems = []
    if props.get("tokenPolicies") != expected:
        problems.append(f"role `{role}` must carry exactly the policy {expected[0]}")
    if props.get("tokenNoDefaultPolicy") is not True:
        problems.append(f"role `{role}` must set token_no_default_policy (the `default` policy grants more)")
    if props.get("bindSecretId") is False:
        problems.append(f"role `{role}` must require a secret_id (bind_secret_id)")
    return problems


def secret_tag_problems(tags: Any, namespace: str) -> list[str]:
    """An AWS secret's tags decide who reads it: `read-<service>` = `true` only, within AWS's limits."""
    if tags is None:
        return []
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        return ["`tags` must map tag keys to strings"]
    problems = [
        f"tag `{k}` grants read to an invalid service name"
        for k in tags
        if k.startswith(naming.READ_TAG_PREFIX) and naming.service_of_read_tag(k) is None
    ]
    problems += [
        f"tag `{k}` must be `{naming.READ_TAG_VALUE}`"
        for k, v in tags.items()
        if naming.service_of_read_tag(k) and v != naming.READ_TAG_VALUE
    ]
    if tags.get(naming.NAMESPACE_TAG, namespace) != namespace:
        problems.append(f"tag `{naming.NAMESPACE_TAG}` names another namespace")
    limit = tags_problem("the secret", tags)
    return problems + ([limit] if limit else [])


def vault_policy_problems(hcl: str, mount: str, namespace: str) -> list[str]:
    """Only `read` on `<mount>/data/<ns>/...` and `read`/`list` on `<mount>/metadata/<ns>/...`.

    Parsed with python-hcl2, not regexes: a second `path` block, an odd attribute or a string where a
    list belongs all show up as structure.
    """
    try:
        document = hcl2.loads(hcl, serialization_options=_HCL_OPTIONS)
    except (LarkError, ValueError) as e:
        return [f"the policy is not valid HCL ({type(e).__name__})"]
    problems = [
        f"unexpected top-level `{key}` (a Vault ACL policy holds only `path` blocks)"
        for key in document
        if key != "path"
    ]
    data_prefix = vault_data_path(mount, namespace, "")
    allowed = {
        data_prefix: VAULT_DATA_CAPABILITIES,
        # KV v2 keeps versions and listing under `metadata/` beside `data/`.
        f"{mount}/metadata/{namespace}/": VAULT_METADATA_CAPABILITIES,
    }
    blocks = document.get("path", [])
    for block in blocks if isinstance(blocks, list) else [blocks]:
        for path, body in block.items() if isinstance(block, dict) else []:
            problems += _vault_path_problems(str(path), body, allowed)
    return problems


def _vault_path_problems(path: str, body: Any, allowed: Mapping[str, frozenset[str]]) -> list[str]:
    prefix = next((p for p in allowed if path.startswith(p)), None)
    if prefix is None or ".." in path.split("/"):
        return [f'path "{path}" is outside ' + " and ".join(f"`{p}`" for p in allowed)]
    if not isinstance(body, dict) or set(body) != {"capabilities"}:
        keys = sorted(body) if isinstance(body, dict) else []
        return [f'path "{path}" must set only `capabilities` (found: {", ".join(keys) or "nothing"})']
    capabilities = body["capabilities"]
    if not isinstance(capabilities, list) or not all(isinstance(c, str) for c in capabilities):
        return [f'path "{path}": `capabilities` must be a list of strings']
    extra = sorted(set(capabilities) - allowed[prefix])
    if extra:
        grant = " and ".join(f"`{c}`" for c in sorted(allowed[prefix]))
        return [f'path "{path}" grants {", ".join(f"`{c}`" for c in extra)}; only {grant} is allowed there']
    return []


def _secret_arn_re(namespace: str) -> re.Pattern[str]:
    return re.compile(rf"arn:[^:]+:secretsmanager:[^:]*:[^:]*:secret:{re.escape(namespace)}/.+")


_KMS_KEY_ARN = re.compile(r"arn:[^:]+:kms:[^:]+:[^:]+:key/[^*?]+")


def iam_policy_problems(document: Any, namespace: str, service: str | None = None) -> list[str]:
    """Allow only the read actions, on this namespace's secret ARNs (and KMS key ARNs for `kms:Decrypt`);
    `Resource: "*"` only for BatchGetSecretValue (which AWS authorizes per secret against
    GetSecretValue); never `NotAction`/`NotResource`; within IAM's size limit. A service's policy
    (`service` given) must condition every secret read on the tag `read-<service>` = `true` and
    nothing else. `document` is the JSON string or the dict `aws.iam.Policy(policy=...)` takes."""
    try:
        statements = iam_eval.statements(document)
    except iam_eval.PolicyDocumentError as e:
        return [str(e)]
    if not statements:  # allows nothing, but AWS refuses it; say so before a deploy does
        return ["the policy has no `Statement`"]
    problems: list[str] = []
    for index, statement in enumerate(statements):
        label = f"statement {statement.get('Sid') or index}"
        problems += [
            f"{label} uses `{key}`" for key in ("NotAction", "NotResource", "NotPrincipal") if key in statement
        ]
        if statement["Effect"] == "Allow":  # a Deny narrows access; only what is allowed must be least privilege
            problems += _allow_problems(label, statement, namespace, service)
    text = document if isinstance(document, str) else json.dumps(document)
    size = policy_size_problem("the policy", text)
    return problems + ([size] if size else [])


def _strings(value: Any) -> list[str] | None:
    items = [value] if isinstance(value, str) else value
    return items if isinstance(items, list) and all(isinstance(i, str) for i in items) else None


def _allow_problems(label: str, statement: Mapping[str, Any], namespace: str, service: str | None) -> list[str]:
    actions, resources = _strings(statement.get("Action")), _strings(statement.get("Resource"))
    if actions is None or resources is None or not actions or not resources:
        return [f"{label} needs `Action` and `Resource` as strings or lists of strings"]
    problems = [f"{label} allows `{a}`" for a in actions if a.lower() not in IAM_ALLOWED_ACTIONS]
    lowered = {a.lower() for a in actions}
    if BATCH_READ.lower() in lowered:
        if lowered != {BATCH_READ.lower()} or resources != ["*"] or "Condition" in statement:
            problems.append(f'{label}: `{BATCH_READ}` must stand alone, on `Resource: "*"`, without a condition')
        return problems
    if "*" in resources:
        problems.append(f'{label} allows on `Resource: "*"`')
    if service is not None and lowered & IAM_SECRET_READS:
        expected = {"StringEquals": {f"aws:ResourceTag/{naming.read_tag(service)}": naming.READ_TAG_VALUE}}
        if statement.get("Condition") != expected:
            problems.append(f"{label} must read only secrets tagged `{naming.read_tag(service)}` (its Condition)")
    patterns = []
    if any(a.lower().startswith("secretsmanager:") for a in actions):
        patterns.append(_secret_arn_re(namespace))
    if "kms:decrypt" in (a.lower() for a in actions):
        patterns.append(_KMS_KEY_ARN)
    problems += [
        f"{label} names `{r}`, not a secret under `{namespace}/` or a KMS key"
        for r in resources
        if r != "*" and patterns and not any(p.fullmatch(r) for p in patterns)
    ]
    return problems


# ---------------------------------------------------------------- validators (one rule each)


def validate_explicit_name(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Every named resource type carries its backend name explicitly: no autonaming."""
    key = NAME_INPUT.get(args.resource_type)
    if key is None:
        return
    value = args.props.get(key)
    if not isinstance(value, str) or not value.strip():
        report_violation(f"{args.name}: `{key}` must be set explicitly (otherwise the provider autonames it)", None)


@_with_config
def validate_namespaced_name(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Secrets are named `<namespace>/<path>`; policies and roles as naming.py names this namespace's."""
    if args.resource_type not in SECRET_TYPES | set(POLICY_BACKEND):
        return
    namespace = _namespace(args)
    name = args.props.get("name")
    if not isinstance(name, str) or not name.strip():
        return  # validate_explicit_name reports it
    if args.resource_type in SECRET_TYPES:
        problems = secret_name_problems(name, namespace)
    else:
        problems = policy_name_problems(POLICY_BACKEND[args.resource_type], name, namespace)
    for problem in problems:
        report_violation(f"{args.name}: {problem}", None)


@_with_config
def validate_vault_policy(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """A Vault policy grants read (and list on metadata) under `<mount>/{data,metadata}/<ns>/` only."""
    if args.resource_type != VAULT_POLICY:
        return
    hcl = args.props.get("policy")
    problems = (
        vault_policy_problems(hcl, _mount(args), _namespace(args))
        if isinstance(hcl, str)
        else ["`policy` is not an HCL string"]
    )
    for problem in problems:
        report_violation(f"{args.name}: {problem}", None)


@_with_config
def validate_iam_policy(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """An IAM policy allows only reading this namespace's secrets; a service's, only those tagged for it."""
    if args.resource_type != IAM_POLICY:
        return
    name = args.props.get("name")
    parsed = naming.parse_policy_name("aws", name) if isinstance(name, str) else None
    service = parsed[1] if parsed else None
    for problem in iam_policy_problems(args.props.get("policy"), _namespace(args), service):
        report_violation(f"{args.name}: {problem}", None)


@_with_config
def validate_approle(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """A service's AppRole role carries exactly its read policy and nothing more."""
    if args.resource_type != VAULT_APPROLE:
        return
    for problem in approle_problems(args.props, _namespace(args)):
        report_violation(f"{args.name}: {problem}", None)


@_with_config
def validate_secret_tags(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """An AWS secret's read tags name valid services and fit AWS's tag limits."""
    if args.resource_type != AWS_SECRET:
        return
    for problem in secret_tag_problems(args.props.get("tags"), _namespace(args)):
        report_violation(f"{args.name}: {problem}", None)


def _protected(args: ResourceValidationArgs) -> bool:
    value = args.get_config().get("protected")
    if not isinstance(value, bool):
        raise ConfigMissing("protected")
    return value


@_with_config
def validate_protect(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """On a protected stack every resource (but the root stack and providers) has `protect` set."""
    if (
        not _protected(args)
        or args.resource_type.startswith(PROTECT_EXEMPT_PREFIXES)
        or args.resource_type in PROTECT_EXEMPT_TYPES
    ):
        return
    if not args.opts.protect:
        report_violation(f"{args.name}: `protect` is not set on a protected stack", None)


@_with_config
def validate_recovery_window(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """On a protected stack a deleted secret stays recoverable for at least 7 days (absent: AWS's 30)."""
    if args.resource_type != AWS_SECRET or not _protected(args):
        return
    days = args.props.get("recoveryWindowInDays", AWS_DEFAULT_RECOVERY_WINDOW_DAYS)
    if days is None:
        days = AWS_DEFAULT_RECOVERY_WINDOW_DAYS
    if isinstance(days, bool) or not isinstance(days, int | float) or days < MIN_RECOVERY_WINDOW_DAYS:
        report_violation(
            f"{args.name}: `recoveryWindowInDays` must be at least {MIN_RECOVERY_WINDOW_DAYS} on a protected stack",
            None,
        )


# ---------------------------------------------------------------- the policies the pack enforces

SECRET_NAMES = ResourceValidationPolicy(
    name="secret-names",
    description="Secrets are named `<namespace>/<path>`, policies and roles as the namespace's own, nothing autonamed.",
    validate=[validate_explicit_name, validate_namespaced_name],
    enforcement_level=EnforcementLevel.MANDATORY,
    config_schema=PolicyConfigSchema(properties={"namespace": _NAMESPACE_SCHEMA}, required=["namespace"]),
)

LEAST_PRIVILEGE = ResourceValidationPolicy(
    name="least-privilege",
    description="Read policies, roles and read tags grant only reading this namespace's secrets, within AWS's limits.",
    validate=[validate_vault_policy, validate_iam_policy, validate_approle, validate_secret_tags],
    enforcement_level=EnforcementLevel.MANDATORY,
    config_schema=PolicyConfigSchema(
        properties={
            "namespace": _NAMESPACE_SCHEMA,
            "mount": {"type": "string", "default": DEFAULT_MOUNT, "description": "The KV v2 mount path."},
        },
        required=["namespace"],
    ),
)

PROTECTION = ResourceValidationPolicy(
    name="protection",
    description="On a protected stack every resource is protected and deleted secrets stay recoverable.",
    validate=[validate_protect, validate_recovery_window],
    enforcement_level=EnforcementLevel.MANDATORY,
    config_schema=PolicyConfigSchema(
        properties={"protected": {"type": "boolean", "description": "The stack is protected (prod)."}},
        required=["protected"],
    ),
)


def validate_role_attachments(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """No role gets more managed policies from this stack than IAM's default quota allows."""
    per_role: dict[str, int] = {}
    for resource in args.resources:
        role = resource.props.get("role") if resource.resource_type == IAM_ATTACHMENT else None
        if isinstance(role, str):
            per_role[role] = per_role.get(role, 0) + 1
    for role, count in sorted(per_role.items()):
        problem = attachments_problem(role, count)
        if problem:
            report_violation(problem, None)


ROLE_ATTACHMENTS = StackValidationPolicy(
    name="role-attachments",
    description="No IAM role gets more managed policies than IAM's default quota of 10.",
    validate=validate_role_attachments,
    enforcement_level=EnforcementLevel.MANDATORY,
)

POLICIES: list[ResourceValidationPolicy | StackValidationPolicy] = [
    SECRET_NAMES,
    LEAST_PRIVILEGE,
    PROTECTION,
    ROLE_ATTACHMENTS,
]
