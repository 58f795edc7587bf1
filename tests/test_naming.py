"""`components.naming`: every backend name is injective over all valid names, and parses back.

Issue 9 item 5: `<ns>-<svc>-read` used to be ambiguous (service `secrets` = the namespace policy; namespace
`p-x` + service `api` = namespace `p` + service `x-api`; service `namespace` duplicated a URN). These
properties are what the policy pack relies on to refuse a stack writing another stack's names.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from components import naming

NAMESPACES = st.from_regex(naming.NAMESPACE_PATTERN, fullmatch=True)
SERVICES = st.from_regex(r"[a-z0-9]{1,8}(-[a-z0-9]{1,8}){0,3}", fullmatch=True).filter(
    lambda s: naming.name_problem("service", s) is None
)
BACKENDS = st.sampled_from(["vault", "aws"])
OWNER = st.tuples(NAMESPACES, st.one_of(st.none(), SERVICES))


def policy(backend: str, owner: tuple[str, str | None]) -> str:
    namespace, service = owner
    if service is None:
        return naming.namespace_policy(backend, namespace)
    return naming.service_policy(backend, namespace, service)


@given(BACKENDS, OWNER, OWNER)
def test_policy_names_are_injective(backend: str, a: tuple[str, str | None], b: tuple[str, str | None]) -> None:
    if a != b:
        assert policy(backend, a) != policy(backend, b)


@given(BACKENDS, OWNER)
def test_policy_names_parse_back(backend: str, owner: tuple[str, str | None]) -> None:
    assert naming.parse_policy_name(backend, policy(backend, owner)) == owner


@given(NAMESPACES, SERVICES, NAMESPACES, SERVICES)
def test_approle_roles_are_injective_and_parse_back(ns_a: str, svc_a: str, ns_b: str, svc_b: str) -> None:
    assert naming.parse_approle_role(naming.approle_role(ns_a, svc_a)) == (ns_a, svc_a)
    if (ns_a, svc_a) != (ns_b, svc_b):
        assert naming.approle_role(ns_a, svc_a) != naming.approle_role(ns_b, svc_b)


@given(SERVICES, SERVICES)
def test_read_tags_and_logical_names_are_injective(a: str, b: str) -> None:
    assert naming.service_of_read_tag(naming.read_tag(a)) == a
    if a != b:
        assert naming.read_tag(a) != naming.read_tag(b)
        assert naming.policy_logical_name(a) != naming.policy_logical_name(b)
    assert naming.policy_logical_name(a) != naming.policy_logical_name(None)


@pytest.mark.parametrize(
    ("label", "kind", "name", "message"),
    [
        ("service-secrets", "service", "secrets", "reserved"),
        ("service-namespace", "service", "namespace", "reserved"),
        ("namespace-with-dash", "namespace", "p-x", "no '-'"),
        ("stack-prod-market", "namespace", "prod-market", "no '-'"),
        ("namespace-upper", "namespace", "Prod", "lower-case"),
        ("namespace-too-long", "namespace", "a" * 33, "1-32"),
        ("service-double-dash", "service", "a--b", "single inner"),
        ("service-trailing-dash", "service", "api-", "single inner"),
        ("service-too-long", "service", "a" * 65, "at most 64"),
    ],
)
def test_names_that_would_collide_are_refused(label: str, kind: str, name: str, message: str) -> None:
    problem = naming.name_problem(kind, name)
    assert problem is not None and message in problem


@pytest.mark.parametrize(
    ("backend", "name", "parsed"),
    [
        ("vault", "p-x-api-read", ("p", "x-api")),  # `p-x` is no namespace: one reading only
        ("vault", "prod-market-data-service-read", ("prod", "market-data-service")),
        ("vault", "staging-secrets-read", ("staging", None)),
        ("aws", "staging-secrets-read", ("staging", None)),
        ("aws", "staging-api-read", None),  # a Vault-shaped name is not an AWS one
        ("vault", "staging-read", None),
        ("vault", "Staging-api-read", None),
        ("vault", "staging-namespace-read", None),  # `namespace` is reserved
        ("aws", "staging-x--y-secrets-read", None),
    ],
)
def test_names_parse_to_exactly_one_owner(backend: str, name: str, parsed: tuple[str, str | None] | None) -> None:
    assert naming.parse_policy_name(backend, name) == parsed


def test_existing_names_are_unchanged() -> None:
    """Stacks deployed before the injective scheme keep every name: nothing is replaced on upgrade."""
    assert naming.vault_service_policy("staging", "signal-service") == "staging-signal-service-read"
    assert naming.vault_namespace_policy("staging") == "staging-secrets-read"
    assert naming.aws_service_policy("prod", "risk-manager") == "prod-risk-manager-secrets-read"
    assert naming.aws_namespace_policy("prod") == "prod-secrets-read"
    assert naming.policy_logical_name("orchestrator") == "secrets-orchestrator-read"
    assert naming.policy_logical_name(None) == "secrets-namespace-read"
    assert naming.legacy_secret_logical_name("DATABASE_PASSWORD") == "secrets-DATABASE_PASSWORD"
    assert naming.legacy_version_logical_name("DATABASE_PASSWORD") == "secrets-DATABASE_PASSWORD-version"
