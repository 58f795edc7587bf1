"""verify's judgements without a server: Vault policy text rule by rule, IAM documents statement by
statement and by effect over tagged secrets, AppRole roles, the verdict, the options, the deadline.
(The same judgements against real servers: tests/live/test_verify_*.py.)"""

import threading
import time
from typing import Any

import pytest

from components import naming
from components.environ import aws_region
from components.layout import layout
from components.manifest import from_data, load
from components.policies import (
    iam_read_policy,
    iam_service_read_policy,
    vault_namespace_policy_hcl,
    vault_policy_hcl,
    vault_service_policy_hcl,
)
from components.verify.aws_rules import ListedSecret, Namespace, judge_policy
from components.verify.deadline import Deadline, Expired, parallel, within
from components.verify.options import VerifyOptions
from components.verify.report import CannotCheck, Findings, listing
from components.verify.vault import judge_role
from components.verify.vault_rules import PolicyText, Rule, judge_rules, parse_policy
from tests.conftest import REPO

MANIFEST = load(REPO / "secrets.manifest.yaml")
VAULT = layout(MANIFEST, "vault", "staging")
KEY_OF = {s.read_path: s.key for s in VAULT.secrets}


# --- Vault: the text the program writes is exactly its rules ------------------------------------------


def test_the_programs_own_text_parses_to_exactly_its_grants() -> None:
    for spot in VAULT.policies:
        parsed = parse_policy(vault_policy_hcl(VAULT, spot))
        assert parsed.oddities == ()
        if spot.service is None:
            assert parsed.grants() == {
                "secret/data/staging/*": frozenset({"read"}),
                "secret/metadata/staging/*": frozenset({"read", "list"}),
            }
        else:
            assert parsed.grants() == {VAULT.secret(k).read_path: frozenset({"read"}) for k in spot.keys}


SIGNAL = VAULT.policy_of("signal-service")
assert SIGNAL is not None
SIGNAL_HCL = vault_policy_hcl(VAULT, SIGNAL)
SIGNAL_RULES = parse_policy(SIGNAL_HCL)
OWN = 'path "secret/data/staging/database/password" { capabilities = ["read"] }\n'
OWN += 'path "secret/data/staging/redis/password" { capabilities = ["read"] }\n'

# (label, stored text, expected status, a phrase of the detail)
VAULT_TEXTS = [
    ("as-written", SIGNAL_HCL, "OK", ""),
    ("same-rules-other-words", "\n\n".join(reversed(OWN.splitlines())), "OK", ""),
    ("outside-namespace", OWN + 'path "secret/data/prod/*" { capabilities = ["read"] }', "OVER-GRANTED", "prod/*"),
    ("sudo-on-sys", OWN + 'path "sys/*" { capabilities = ["sudo"] }', "OVER-GRANTED", '"sys/*" [sudo]'),
    (
        "another-secret",
        OWN + 'path "secret/data/staging/alpaca/api_key_id" { capabilities = ["read"] }',
        "OVER-GRANTED",
        "can also read ALPACA_API_KEY_ID",
    ),
    ("glob-in-namespace", OWN + 'path "secret/data/staging/*" { capabilities = ["read"] }', "OVER-GRANTED", "*"),
    ("segment-glob", OWN + 'path "secret/data/+/redis/password" { capabilities = ["read"] }', "OVER-GRANTED", "+"),
    (
        "extra-capability",
        OWN.replace('["read"] }\n', '["read", "update"] }\n', 1),
        "OVER-GRANTED",
        "can also update DATABASE_PASSWORD",
    ),
    (
        "repeated-attribute",
        OWN + 'path "secret/data/staging/redis/password" {\n capabilities = ["read"]\n capabilities = ["delete"]\n}',
        "OVER-GRANTED",
        "can also delete REDIS_PASSWORD",
    ),
    (
        "allowed-parameters",
        OWN + 'path "secret/data/staging/redis/password" {\n capabilities = ["read"]\n allowed_parameters = {}\n}',
        "OVER-GRANTED",
        "attribute allowed_parameters",
    ),
    *[
        (
            attribute,
            OWN + f'path "secret/data/staging/redis/password" {{\n capabilities = ["read"]\n {attribute} = "1s"\n}}',
            "OVER-GRANTED",
            f"attribute {attribute}",
        )
        for attribute in ("min_wrapping_ttl", "max_wrapping_ttl", "required_parameters", "denied_parameters")
    ],
    ("legacy-policy-field", OWN + 'path "secret/data/x" { policy = "write" }', "OVER-GRANTED", "attribute policy"),
    ("nested-block", OWN + 'path "secret/data/x" {\n capabilities = ["read"]\n x {\n }\n}', "OVER-GRANTED", "nested"),
    ("top-level-attribute", OWN + 'name = "x"', "OVER-GRANTED", "top-level attribute name"),
    ("other-block", OWN + 'sentinel "x" { capabilities = ["read"] }', "OVER-GRANTED", "block sentinel"),
    ("escaped-path", OWN + 'path "secret/data/staging/\\u0061" { capabilities = ["read"] }', "OVER-GRANTED", "plain"),
    (
        "templated-path",
        OWN + 'path "secret/data/{{identity.entity.id}}/*" { capabilities = ["read"] }',
        "OVER-GRANTED",
        "",
    ),
    ("capabilities-not-a-list", OWN + 'path "secret/data/x" { capabilities = "read" }', "OVER-GRANTED", "plain"),
    (
        "json-form",
        '{"path": {"secret/data/staging/redis/password": {"capabilities": ["read"]}}}',
        "OVER-GRANTED",
        "parsed",
    ),
    ("garbage", "path {{{", "OVER-GRANTED", "cannot be parsed"),
    ("deny-elsewhere-counts", OWN + 'path "secret/data/prod/*" { capabilities = ["deny"] }', "OVER-GRANTED", "deny"),
    ("missing-one", OWN.splitlines()[0], "DENIED", "cannot read REDIS_PASSWORD"),
    ("denied-own", OWN.replace('["read"]', '["deny"]', 1), "DENIED", "cannot read DATABASE_PASSWORD"),
    ("empty", "", "DENIED", "cannot read DATABASE_PASSWORD, REDIS_PASSWORD"),
    ("both-kinds", OWN.splitlines()[0] + '\npath "sys/*" { capabilities = ["read"] }', "OVER-GRANTED", "cannot read"),
]


@pytest.mark.parametrize(("label", "text", "status", "phrase"), VAULT_TEXTS, ids=[c[0] for c in VAULT_TEXTS])
def test_vault_policy_text_is_judged_rule_by_rule(label: str, text: str, status: str, phrase: str) -> None:
    found = judge_rules(parse_policy(text), SIGNAL_RULES, KEY_OF)
    verdict, detail = found.verdict("reads exactly its 2 secret(s)")
    assert verdict == status, (label, detail)
    assert phrase in detail


def test_the_namespace_policy_against_its_rules() -> None:
    expected = parse_policy(vault_namespace_policy_hcl("secret", "staging"))
    assert (
        judge_rules(parse_policy(vault_namespace_policy_hcl("secret", "staging")), expected, KEY_OF).verdict("")[0]
        == "OK"
    )
    wider = vault_namespace_policy_hcl("secret", "staging") + 'path "secret/data/*" { capabilities = ["read"] }'
    assert judge_rules(parse_policy(wider), expected, KEY_OF).verdict("")[0] == "OVER-GRANTED"
    no_list = 'path "secret/data/staging/*" { capabilities = ["read"] }'
    status, detail = judge_rules(parse_policy(no_list), expected, KEY_OF).verdict("")
    assert (status, detail) == ("DENIED", 'cannot list/read "secret/metadata/staging/*"')


def test_a_policy_for_a_service_that_reads_nothing_may_grant_nothing() -> None:
    found = judge_rules(parse_policy(OWN), PolicyText((), ()), KEY_OF)
    assert found.verdict("")[0] == "OVER-GRANTED"


def test_repeated_rules_merge_as_vault_merges_them() -> None:
    text = 'path "a" { capabilities = ["read"] }\npath "a" {\n capabilities = ["list"]\n capabilities = ["read"]\n}'
    parsed = parse_policy(text)
    assert parsed.rules == (
        Rule("a", frozenset({"read"})),
        Rule("a", frozenset({"list"})),
        Rule("a", frozenset({"read"})),
    )
    assert parsed.grants() == {"a": frozenset({"read", "list"})}


# --- AWS: documents judged statement by statement and by their effect -----------------------------------

PREFIX = "arn:aws:secretsmanager:us-east-1:123456789012:secret:"
PATTERN = PREFIX + "staging/*"
KEY = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
AWS = layout(MANIFEST, "aws", "staging")


def listed(kms: str | None = None, **extra_tags: dict[str, str]) -> tuple[ListedSecret, ...]:
    """The namespace as the program leaves it: one tag per reader (plus `extra_tags` per secret name)."""
    secrets = []
    for spot in AWS.secrets:
        tags = {naming.read_tag(r): "true" for r in spot.readers}
        tags.update(extra_tags.get(spot.path.replace("/", "_"), {}))
        secrets.append(ListedSecret(spot.name, f"{PREFIX}{spot.name}-AbCdEf", tags, kms))
    return tuple(secrets)


def namespace(secrets: tuple[ListedSecret, ...]) -> Namespace:
    return Namespace("staging", PATTERN, secrets, {s.name: s.key for s in AWS.secrets})


SVC = "signal-service"
SVC_OWN = [AWS.secret(k).name for k in ("DATABASE_PASSWORD", "REDIS_PASSWORD")]
GOOD = iam_service_read_policy(PATTERN, SVC)


def with_statement(document: dict[str, Any], statement: dict[str, Any]) -> dict[str, Any]:
    return {**document, "Statement": [*document["Statement"], statement]}


def replaced_read(document: dict[str, Any], **changes: Any) -> dict[str, Any]:
    read, *rest = document["Statement"]
    changed = {k: v for k, v in {**read, **changes}.items() if v is not None}
    return {**document, "Statement": [changed, *rest]}


GET = "secretsmanager:GetSecretValue"
AWS_CASES: list[tuple[str, dict[str, Any], tuple[ListedSecret, ...], str, str]] = [
    ("as-written", GOOD, listed(), "OK", "reads exactly"),
    (
        "prod-statement",
        with_statement(GOOD, {"Effect": "Allow", "Action": GET, "Resource": PREFIX + "prod/*"}),
        listed(),
        "OVER-GRANTED",
        "outside " + PATTERN,
    ),
    (
        "iam-star",
        with_statement(GOOD, {"Effect": "Allow", "Action": "iam:*", "Resource": "*"}),
        listed(),
        "OVER-GRANTED",
        "iam:*",
    ),
    (
        "write-action",
        with_statement(GOOD, {"Effect": "Allow", "Action": "secretsmanager:PutSecretValue", "Resource": PATTERN}),
        listed(),
        "OVER-GRANTED",
        "putsecretvalue",
    ),
    (
        "wildcard-action",
        replaced_read(GOOD, Action="secretsmanager:Get*"),
        listed(),
        "OVER-GRANTED",
        "secretsmanager:get*",
    ),
    (
        "not-action",
        with_statement(GOOD, {"Effect": "Allow", "NotAction": "iam:*", "Resource": PATTERN}),
        listed(),
        "OVER-GRANTED",
        "NotAction",
    ),
    (
        "not-resource",
        with_statement(GOOD, {"Effect": "Allow", "Action": GET, "NotResource": PREFIX + "prod/*"}),
        listed(),
        "OVER-GRANTED",
        "NotResource",
    ),
    (
        "unknown-condition",
        replaced_read(GOOD, Condition={"StringLike": {f"aws:ResourceTag/read-{SVC}": "*"}}),
        listed(),
        "OVER-GRANTED",
        "condition",
    ),
    (
        "extra-condition-key",
        replaced_read(
            GOOD, Condition={"StringEquals": {f"aws:ResourceTag/read-{SVC}": "true", "aws:SourceVpc": "vpc-1"}}
        ),
        listed(),
        "OVER-GRANTED",
        "condition",
    ),
    (
        "other-services-tag",
        replaced_read(GOOD, Condition={"StringEquals": {"aws:ResourceTag/read-orchestrator": "true"}}),
        listed(),
        "OVER-GRANTED",
        "is not exactly StringEquals",
    ),
    ("no-condition", replaced_read(GOOD, Condition=None), listed(), "OVER-GRANTED", "without the read-signal-service"),
    ("resource-star", replaced_read(GOOD, Resource="*"), listed(), "OVER-GRANTED", "outside"),
    (
        "deny-with-unknown-condition",
        with_statement(
            GOOD,
            {"Effect": "Deny", "Action": GET, "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        ),
        listed(),
        "OVER-GRANTED",
        "a Deny whose condition cannot be evaluated",
    ),
    ("no-tagging-deny-gone", {**GOOD, "Statement": GOOD["Statement"][:1]}, listed(), "OVER-GRANTED", "TagResource"),
    (
        "batch-widened-with-get",
        with_statement(
            GOOD, {"Effect": "Allow", "Action": ["secretsmanager:BatchGetSecretValue", GET], "Resource": "*"}
        ),
        listed(),
        "OVER-GRANTED",
        "must stand alone",
    ),
    (
        "batch-with-a-condition",
        with_statement(
            GOOD,
            {
                "Effect": "Allow",
                "Action": "secretsmanager:BatchGetSecretValue",
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:ResourceTag/read-other": "true"}},
            },
        ),
        listed(),
        "OVER-GRANTED",
        "must stand alone",
    ),
    (
        "principal",
        with_statement(GOOD, {"Effect": "Deny", "Action": GET, "Resource": "*", "Principal": "*"}),
        listed(),
        "OVER-GRANTED",
        "Principal",
    ),
    (
        "stray-secret-tagged",
        GOOD,
        (*listed(), ListedSecret("staging/stray", PREFIX + "staging/stray-AbCdEf", {f"read-{SVC}": "true"})),
        "OVER-GRANTED",
        "can also read staging/stray (not in the manifest)",
    ),
    (
        "another-secret-tagged",
        GOOD,
        listed(alpaca_api_key_id={f"read-{SVC}": "true"}),
        "OVER-GRANTED",
        "can also read ALPACA_API_KEY_ID",
    ),
    (
        "tag-removed",
        GOOD,
        tuple(
            ListedSecret(
                s.name, s.arn, {k: v for k, v in s.tags.items() if not (k == f"read-{SVC}" and "redis" in s.name)}
            )
            for s in listed()
        ),
        "DENIED",
        "cannot read REDIS_PASSWORD",
    ),
    (
        "tag-not-true",
        GOOD,
        listed(redis_password={f"read-{SVC}": "True"}),
        "DENIED",
        "cannot read REDIS_PASSWORD",
    ),
    (
        "deny-narrowing-own",
        with_statement(GOOD, {"Effect": "Deny", "Action": GET, "Resource": PREFIX + "staging/redis/*"}),
        listed(),
        "DENIED",
        "cannot read REDIS_PASSWORD",
    ),
    ("describe-dropped", replaced_read(GOOD, Action=[GET]), listed(), "DENIED", "cannot DescribeSecret"),
    ("kms-as-written", iam_service_read_policy(PATTERN, SVC, KEY), listed(KEY), "OK", ""),
    ("kms-missing", GOOD, listed(KEY), "DENIED", "kms:Decrypt"),
    ("kms-unused-key", iam_service_read_policy(PATTERN, SVC, KEY), listed(), "OVER-GRANTED", "kms:Decrypt on"),
    (
        "kms-any-key",
        with_statement(GOOD, {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}),
        listed(KEY),
        "OVER-GRANTED",
        "kms:Decrypt on *",
    ),
    ("not-a-document", {"Version": "2012-10-17"}, listed(), "OVER-GRANTED", "not understood"),
]


@pytest.mark.parametrize(("label", "document", "secrets", "status", "phrase"), AWS_CASES, ids=[c[0] for c in AWS_CASES])
def test_iam_service_policy_is_judged_exactly(
    label: str, document: dict[str, Any], secrets: tuple[ListedSecret, ...], status: str, phrase: str
) -> None:
    found = judge_policy(document, SVC, SVC_OWN, namespace(secrets))
    verdict, detail = found.verdict("reads exactly its 2 secret(s)")
    assert verdict == status, (label, detail)
    assert phrase.lower() in detail.lower()


def test_iam_namespace_policy() -> None:
    ns = namespace((*listed(), ListedSecret("staging/stray", PREFIX + "staging/stray-AbCdEf", {})))
    assert judge_policy(iam_read_policy([PATTERN]), None, [], ns).verdict("")[0] == "OK"
    tagged = replaced_read(iam_read_policy([PATTERN]), Condition={"StringEquals": {"aws:ResourceTag/read-x": "true"}})
    assert judge_policy(tagged, None, [], ns).verdict("")[0] == "OVER-GRANTED"
    outside = iam_read_policy([PREFIX + "*"])
    assert judge_policy(outside, None, [], ns).verdict("")[0] == "OVER-GRANTED"


# --- AppRole roles ------------------------------------------------------------------------------------------

ROLE_OK = {"token_policies": [SIGNAL.name], "token_no_default_policy": True, "bind_secret_id": True}
ROLE_CASES = [
    ("as-written", ROLE_OK, "OK"),
    ("extra-policy", {**ROLE_OK, "token_policies": [SIGNAL.name, "admin"]}, "OVER-GRANTED"),
    ("default-policy", {**ROLE_OK, "token_no_default_policy": False}, "OVER-GRANTED"),
    ("no-secret-id", {**ROLE_OK, "bind_secret_id": False}, "OVER-GRANTED"),
    ("legacy-policies-field", {**ROLE_OK, "policies": [SIGNAL.name]}, "OVER-GRANTED"),
    ("other-policy", {**ROLE_OK, "token_policies": ["staging-orchestrator-read"]}, "OVER-GRANTED"),
    ("no-policy", {**ROLE_OK, "token_policies": []}, "DENIED"),
]


@pytest.mark.parametrize(("label", "data", "status"), ROLE_CASES, ids=[c[0] for c in ROLE_CASES])
def test_approle_role_carries_exactly_its_policy(label: str, data: dict[str, Any], status: str) -> None:
    assert judge_role(SVC, "staging-signal-service", SIGNAL, data).status == status


def test_missing_role_and_role_without_a_policy() -> None:
    assert judge_role(SVC, "r", SIGNAL, None).status == "DENIED"
    assert judge_role("idle", "r", None, ROLE_OK).status == "OVER-GRANTED"


# --- verdicts, options, deadline ------------------------------------------------------------------------------


def test_over_granted_outranks_denied_and_the_detail_names_both() -> None:
    found = Findings(over=["can also read A"], denied=["cannot read B"], notes=["probes skipped"])
    assert found.verdict("fine") == ("OVER-GRANTED", "can also read A; cannot read B; probes skipped")
    assert Findings(notes=["probes skipped"]).verdict("fine") == ("OK", "fine; probes skipped")


def test_long_lists_are_shortened() -> None:
    assert listing(f"K{i}" for i in range(20)) == "K0, K1, K2, K3, K4, K5, K6, K7 and 12 more"


def test_the_token_never_shows_in_the_options_repr() -> None:
    options = VerifyOptions(backend="vault", namespace="staging", vault_token="CANARY-token-8d1e")
    assert "CANARY" not in repr(options)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"namespace": "../prod"}, "--namespace"),
        ({"concurrency": 0}, "--concurrency"),
        ({"timeout": 0}, "--timeout"),
        ({"timeout": float("nan")}, "--timeout"),
        ({"vault_mount": "a b"}, "--vault-mount"),
        ({"approle_mount": "../x"}, "--approle-mount"),
    ],
)
def test_options_problems_name_the_flag(changes: dict[str, Any], problem: str) -> None:
    options = VerifyOptions(**{"backend": "vault", "namespace": "staging", **changes})
    assert (options.problem() or "").startswith(problem)


def test_aws_region_prefers_aws_region_as_the_aws_cli_does() -> None:
    assert aws_region({"AWS_REGION": "eu-west-2"}) == "eu-west-2"
    assert aws_region({"AWS_REGION": "eu-west-2", "AWS_DEFAULT_REGION": "eu-west-3"}) == "eu-west-2"
    assert aws_region({"AWS_DEFAULT_REGION": "eu-west-3"}) == "eu-west-3"
    assert aws_region({}) is None


def test_the_deadline_names_the_oldest_request_still_waiting() -> None:
    deadline = Deadline(0.3, "VaultConnectionError", "Vault", "http://127.0.0.1:1")
    release = threading.Event()

    def work() -> None:
        with deadline.doing("reading secret/staging/a"), deadline.doing("reading secret/staging/b"):
            release.wait(5)

    start = time.monotonic()
    with pytest.raises(CannotCheck) as caught:
        within(deadline, work)
    assert time.monotonic() - start < 1.0
    assert str(caught.value) == (
        "VaultConnectionError: Timeout: no answer from Vault at http://127.0.0.1:1 within 0.3 s "
        "(reading secret/staging/a)"
    )
    with pytest.raises(Expired), deadline.doing("reading secret/staging/c"):  # nothing starts after the deadline
        pass
    release.set()


def test_within_returns_results_and_passes_errors_through() -> None:
    deadline = Deadline(5, "E", "Vault", "x")
    assert within(deadline, lambda: 42) == 42
    with pytest.raises(CannotCheck, match="boom"):
        within(deadline, lambda: (_ for _ in ()).throw(CannotCheck("boom")))


def test_parallel_keeps_order_and_stops_at_the_first_error() -> None:
    assert parallel(lambda n: n * n, list(range(50)), 7) == [n * n for n in range(50)]
    started: list[int] = []

    def work(n: int) -> int:
        started.append(n)
        if n == 0:
            raise ValueError("first")
        time.sleep(0.01)
        return n

    with pytest.raises(ValueError, match="first"):
        parallel(work, list(range(100)), 2)
    assert len(started) < 100


def test_layout_of_a_service_without_secrets_has_no_policy() -> None:
    manifest = from_data({"version": 1, "services": ["idle", "busy"], "secrets": {"A_TOKEN": {"readers": ["busy"]}}})
    plan = layout(manifest, "vault", "staging")
    assert plan.policy_of("idle") is None
    assert vault_service_policy_hcl("staging", ["secret/data/staging/a/token"]).count("path ") == 1


def test_a_request_that_timed_out_is_named_even_if_the_deadline_fires_later() -> None:
    """A read's own timeout and the deadline fire together; the line names the read, not whatever
    else happens to be in flight when the caller gives up."""
    deadline = Deadline(0.3, "VaultConnectionError", "Vault", "http://127.0.0.1:1")
    release = threading.Event()

    def read() -> None:
        with deadline.doing("reading secret/staging/redis/password"):
            time.sleep(0.2)
        raise deadline.timed_out("reading secret/staging/redis/password")

    def other() -> None:
        time.sleep(0.1)
        with deadline.doing("reading sys/auth"):
            release.wait(5)

    with pytest.raises(CannotCheck, match=r"\(reading secret/staging/redis/password\)$"):
        within(deadline, lambda: parallel(lambda f: f(), [read, other], 2))
    release.set()
