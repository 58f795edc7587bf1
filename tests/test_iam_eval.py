"""The IAM evaluator that `verify` and the live tests use: Allow/Deny, wildcards, Not- elements, and
exactly the resource-tag conditions the project writes (anything else refused)."""

import json

import pytest

from components.iam_eval import PolicyDocumentError, UnsupportedCondition, allowed_resources, allows, decide, matches

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:"
KEY_ID = ARN + "staging/alpaca/api_key_id-AbCdEf"
DB = ARN + "staging/database/password-GhIjKl"
PROD = ARN + "prod/alpaca/api_key_id-MnOpQr"
GET = "secretsmanager:GetSecretValue"


def policy(*statements: dict[str, object]) -> dict[str, object]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: object, resource: object) -> dict[str, object]:
    return {"Effect": "Allow", "Action": action, "Resource": resource}


def deny(action: object, resource: object) -> dict[str, object]:
    return {"Effect": "Deny", "Action": action, "Resource": resource}


@pytest.mark.parametrize(
    ("glob", "value", "expected"),
    [
        ("exact", "exact", True),
        ("exact", "exactly", False),
        ("staging/*", "staging/a/b", True),
        ("staging/*", "prod/a", False),
        ("a?c", "abc", True),
        ("a?c", "abbc", False),
        ("a.c", "abc", False),  # a dot is literal, not a regex wildcard
        ("*", "", True),
    ],
    ids=[
        "exact",
        "exact-prefix-only",
        "star-spans-slashes",
        "star-other-prefix",
        "qmark-one",
        "qmark-two",
        "dot-literal",
        "star-empty",
    ],
)
def test_wildcards(glob: str, value: str, expected: bool) -> None:
    assert matches(glob, value) is expected


CASES = [
    ("exact-allow", policy(allow(GET, KEY_ID)), GET, KEY_ID, "allow"),
    ("other-resource", policy(allow(GET, KEY_ID)), GET, DB, "implicit-deny"),
    ("other-action", policy(allow(GET, KEY_ID)), "secretsmanager:PutSecretValue", KEY_ID, "implicit-deny"),
    ("action-case-insensitive", policy(allow("SecretsManager:getsecretvalue", KEY_ID)), GET, KEY_ID, "allow"),
    ("resource-case-sensitive", policy(allow(GET, KEY_ID.upper())), GET, KEY_ID, "implicit-deny"),
    ("action-wildcard", policy(allow("secretsmanager:Get*", KEY_ID)), GET, KEY_ID, "allow"),
    (
        "service-wildcard",
        policy(allow("secretsmanager:*", KEY_ID)),
        "secretsmanager:DeleteSecret",
        KEY_ID,
        "allow",
    ),
    ("star-action", policy(allow("*", KEY_ID)), "iam:CreateUser", KEY_ID, "allow"),
    ("namespace-wildcard", policy(allow(GET, ARN + "staging/*")), GET, DB, "allow"),
    ("namespace-wildcard-prod", policy(allow(GET, ARN + "staging/*")), GET, PROD, "implicit-deny"),
    ("list-of-resources", policy(allow([GET], [KEY_ID, DB])), GET, DB, "allow"),
    ("single-statement-object", {"Statement": allow(GET, KEY_ID)}, GET, KEY_ID, "allow"),
    ("deny-wins", policy(allow(GET, "*"), deny(GET, PROD)), GET, PROD, "explicit-deny"),
    (
        "deny-wins-any-order",
        policy(deny("secretsmanager:*", PROD), allow("*", "*")),
        GET,
        PROD,
        "explicit-deny",
    ),
    ("deny-elsewhere", policy(allow(GET, "*"), deny(GET, PROD)), GET, KEY_ID, "allow"),
    ("not-action", policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}), GET, KEY_ID, "allow"),
    (
        "not-action-excluded",
        policy({"Effect": "Allow", "NotAction": "secretsmanager:*", "Resource": "*"}),
        GET,
        KEY_ID,
        "implicit-deny",
    ),
    ("not-resource", policy({"Effect": "Allow", "Action": GET, "NotResource": PROD}), GET, KEY_ID, "allow"),
    (
        "not-resource-excluded",
        policy({"Effect": "Allow", "Action": GET, "NotResource": PROD}),
        GET,
        PROD,
        "implicit-deny",
    ),
    ("empty", policy(), GET, KEY_ID, "implicit-deny"),
]


@pytest.mark.parametrize(("label", "doc", "action", "resource", "expected"), CASES, ids=[c[0] for c in CASES])
def test_decide(label: str, doc: dict[str, object], action: str, resource: str, expected: str) -> None:
    assert decide(doc, action, resource) == expected


def test_json_text_is_accepted() -> None:
    text = json.dumps(policy(allow(GET, KEY_ID)))
    assert allows(text, GET, KEY_ID)
    assert not allows(text, GET, DB)


def test_allowed_resources_is_the_allowed_subset() -> None:
    doc = policy(allow(GET, [KEY_ID, ARN + "staging/database/*"]), deny(GET, ARN + "staging/database/pass*"))
    assert allowed_resources(doc, GET, [KEY_ID, DB, PROD]) == {KEY_ID}


@pytest.mark.parametrize(
    "doc",
    [
        "not json",
        {"Version": "2012-10-17"},
        policy({"Effect": "Maybe", "Action": GET, "Resource": "*"}),
        policy({"Effect": "Allow", "Resource": "*"}),
        policy({"Effect": "Allow", "Action": GET, "NotAction": GET, "Resource": "*"}),
        policy({"Effect": "Allow", "Action": 3, "Resource": "*"}),
    ],
    ids=["not-json", "no-statement", "bad-effect", "no-action", "action-and-not-action", "action-not-string"],
)
def test_malformed_documents_are_refused(doc: object) -> None:
    with pytest.raises(PolicyDocumentError):
        decide(doc, GET, KEY_ID)  # type: ignore[arg-type]


# --- conditions: exactly the attribute-based kind this project writes; anything else is refused ----------

TAG = "aws:ResourceTag/read-signal-service"


def tagged_allow(condition: object) -> dict[str, object]:
    return policy({"Effect": "Allow", "Action": GET, "Resource": ARN + "staging/*", "Condition": condition})


@pytest.mark.parametrize(
    ("label", "condition", "tags", "expected"),
    [
        ("tag-true", {"StringEquals": {TAG: "true"}}, {"read-signal-service": "true"}, "allow"),
        ("tag-absent", {"StringEquals": {TAG: "true"}}, {"read-orchestrator": "true"}, "implicit-deny"),
        ("tag-false", {"StringEquals": {TAG: "true"}}, {"read-signal-service": "false"}, "implicit-deny"),
        ("value-case-sensitive", {"StringEquals": {TAG: "true"}}, {"read-signal-service": "True"}, "implicit-deny"),
        ("key-case-insensitive", {"StringEquals": {TAG.lower(): "true"}}, {"Read-Signal-Service": "true"}, "allow"),
        ("value-list-any", {"StringEquals": {TAG: ["yes", "true"]}}, {"read-signal-service": "true"}, "allow"),
        (
            "every-key-must-hold",
            {"StringEquals": {TAG: "true", "aws:ResourceTag/env": "staging"}},
            {"read-signal-service": "true", "env": "prod"},
            "implicit-deny",
        ),
        ("no-tags", {"StringEquals": {TAG: "true"}}, {}, "implicit-deny"),
    ],
)
def test_resource_tag_conditions_are_evaluated(
    label: str, condition: object, tags: dict[str, str], expected: str
) -> None:
    assert decide(tagged_allow(condition), GET, DB, tags) == expected


def test_a_conditional_deny_applies_only_where_it_holds() -> None:
    doc = policy(
        allow(GET, ARN + "staging/*"),
        {"Effect": "Deny", "Action": GET, "Resource": "*", "Condition": {"StringEquals": {"aws:ResourceTag/x": "1"}}},
    )
    assert decide(doc, GET, DB, {"x": "1"}) == "explicit-deny"
    assert decide(doc, GET, DB, {"x": "2"}) == "allow"


@pytest.mark.parametrize(
    "condition",
    [
        {"StringLike": {TAG: "t*"}},
        {"StringEqualsIfExists": {TAG: "true"}},
        {"ForAnyValue:StringEquals": {TAG: "true"}},
        {"StringNotEquals": {TAG: "false"}},
        {"StringEquals": {"aws:PrincipalTag/team": "a"}},
        {"StringEquals": {"aws:SourceVpc": "vpc-1"}},
        {"StringEquals": {"aws:ResourceTag/": "true"}},
        {"StringEquals": {TAG: "${aws:username}"}},
        {"StringEquals": {TAG: 1}},
        {"Bool": {"aws:SecureTransport": "true"}},
        {},
        "StringEquals",
    ],
    ids=lambda c: str(c)[:40],
)
def test_any_other_condition_is_refused_not_assumed(condition: object) -> None:
    with pytest.raises(UnsupportedCondition):
        decide(tagged_allow(condition), GET, DB, {"read-signal-service": "true"})


def test_a_tag_condition_without_the_resources_tags_is_refused() -> None:
    with pytest.raises(UnsupportedCondition, match="needs the resource's tags"):
        allows(tagged_allow({"StringEquals": {TAG: "true"}}), GET, DB)
    # A statement the request does not reach needs no tags.
    assert not allows(tagged_allow({"StringEquals": {TAG: "true"}}), GET, PROD)


def test_tags_differing_only_in_case_are_ambiguous() -> None:
    with pytest.raises(UnsupportedCondition, match="differing in case"):
        decide(
            tagged_allow({"StringEquals": {TAG: "true"}}),
            GET,
            DB,
            {"read-signal-service": "true", "READ-signal-service": "x"},
        )


def test_allowed_resources_takes_each_resources_tags() -> None:
    doc = tagged_allow({"StringEquals": {TAG: "true"}})
    assert allowed_resources(doc, GET, {KEY_ID: {"read-signal-service": "true"}, DB: {}}) == {KEY_ID}
