"""A small evaluator of one IAM identity policy: does it allow action X on resource ARN Y?

AWS's own simulator is an online API (and moto does not implement it), so `verify` and the tests
evaluate the documents themselves, with the rules of AWS's policy evaluation logic that identity
policies for secret reads need:

- a request is allowed only when some `Allow` statement matches it and no `Deny` statement does
  (an explicit Deny always wins; no match at all is the implicit deny);
- a statement matches when its `Action` (or `NotAction`) and its `Resource` (or `NotResource`) match;
- `*` matches any run of characters and `?` exactly one; actions compare case-insensitively
  (`secretsmanager:getsecretvalue` is the same action), resource ARNs case-sensitively.

Conditions: exactly the kind this project writes (attribute-based access, issue 12) is evaluated —
`StringEquals` on `aws:ResourceTag/<key>`, against the resource's tags given with the question. Any other
operator (`StringLike`, `...IfExists`, `ForAnyValue:...`), any other key, a policy variable in a value,
or a tag condition asked about without the resource's tags raises `UnsupportedCondition`: the evaluator
refuses rather than assume a condition holds (or does not), so no caller can get a verdict it did not
earn. `Principal` is out of scope (identity policies have none).
"""

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

Decision = Literal["allow", "explicit-deny", "implicit-deny"]
WILDCARDS = re.compile(r"[*?]")


class PolicyDocumentError(ValueError):
    """The document is not an IAM policy this evaluator understands (names the problem, never a value)."""


class UnsupportedCondition(PolicyDocumentError):
    """A `Condition` this evaluator does not evaluate exactly (it names the operator or key)."""


SUPPORTED_OPERATOR = "StringEquals"
RESOURCE_TAG = "aws:ResourceTag/"
"""Condition keys are case-insensitive in IAM; the prefix is compared that way."""


@lru_cache(maxsize=1024)
def _pattern(glob: str, ignore_case: bool) -> re.Pattern[str]:
    return re.compile(_regex(glob), re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _regex(glob: str) -> str:
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)


def matches(glob: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM wildcard match of the whole `value`: `*` any run, `?` one character."""
    return _pattern(glob, ignore_case).fullmatch(value) is not None


@dataclass(frozen=True)
class _Element:
    """One Action/NotAction or Resource/NotResource element, compiled: a set lookup for the plain
    strings and one regular expression for the wildcards, so a 1,000-ARN statement stays cheap."""

    plain: frozenset[str]
    wild: re.Pattern[str] | None
    negated: bool
    ignore_case: bool

    def covers(self, value: str) -> bool:
        key = value.lower() if self.ignore_case else value
        hit = key in self.plain or (self.wild is not None and self.wild.fullmatch(value) is not None)
        return hit != self.negated


def _element(statement: Mapping[str, Any], field: str, ignore_case: bool) -> _Element:
    negated = f"Not{field}"
    if (field in statement) == (negated in statement):
        raise PolicyDocumentError(f"a statement needs exactly one of {field} and {negated}")
    name = field if field in statement else negated
    value = statement[name]
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise PolicyDocumentError(f"{name} must be a string or a list of strings")
    plain = frozenset(i.lower() if ignore_case else i for i in items if not WILDCARDS.search(i))
    globs = [i for i in items if WILDCARDS.search(i)]
    flags = re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL
    wild = re.compile("|".join(f"(?:{_regex(g)})" for g in globs), flags) if globs else None
    return _Element(plain, wild, name == negated, ignore_case)


@dataclass(frozen=True)
class _Condition:
    """`StringEquals` on resource tags: every (tag key, allowed values) pair must hold."""

    tags: tuple[tuple[str, frozenset[str]], ...]

    def holds(self, resource_tags: Mapping[str, str] | None) -> bool:
        if resource_tags is None:
            raise UnsupportedCondition("a resource-tag condition needs the resource's tags to be evaluated")
        for tag_key, allowed in self.tags:
            # IAM compares the key case-insensitively; two tags that differ only in case would be ambiguous.
            values = [v for k, v in resource_tags.items() if k.lower() == tag_key]
            if len(values) > 1:
                raise UnsupportedCondition(f"the resource has several tags named {tag_key} (differing in case)")
            if not values or values[0] not in allowed:
                return False
        return True


def _condition(statement: Mapping[str, Any]) -> _Condition | None:
    """The statement's condition compiled, None without one; anything but the supported kind refuses."""
    if "Condition" not in statement:
        return None
    blocks = statement["Condition"]
    if not isinstance(blocks, Mapping) or not blocks:
        raise UnsupportedCondition("`Condition` must be a non-empty object")
    tags: list[tuple[str, frozenset[str]]] = []
    for operator, block in blocks.items():
        if operator != SUPPORTED_OPERATOR:
            raise UnsupportedCondition(f"condition operator {operator} is not evaluated")
        if not isinstance(block, Mapping) or not block:
            raise UnsupportedCondition(f"{operator} must map condition keys to values")
        for condition_key, value in block.items():
            if not str(condition_key).lower().startswith(RESOURCE_TAG.lower()) or len(condition_key) == len(
                RESOURCE_TAG
            ):
                raise UnsupportedCondition(f"condition key {condition_key} is not evaluated")
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
                raise UnsupportedCondition(f"{condition_key} must be a string or a list of strings")
            if any("${" in i for i in items):
                raise UnsupportedCondition(f"{condition_key} uses a policy variable")
            tags.append((condition_key[len(RESOURCE_TAG) :].lower(), frozenset(items)))
    return _Condition(tuple(tags))


@dataclass(frozen=True)
class _Statement:
    allow: bool
    action: _Element
    resource: _Element
    condition: _Condition | None

    def applies(self, action: str, resource: str, resource_tags: Mapping[str, str] | None) -> bool:
        if not (self.action.covers(action) and self.resource.covers(resource)):
            return False
        return self.condition is None or self.condition.holds(resource_tags)


def statements(document: Mapping[str, Any] | str) -> list[Mapping[str, Any]]:
    """The statements of a policy given as a dict or its JSON text (as `aws.iam.Policy` takes it).

    The one loader of IAM documents: `verify` evaluates them, the policy pack judges them.
    """
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError:
            raise PolicyDocumentError("the policy is not valid JSON") from None
    if not isinstance(document, Mapping):
        raise PolicyDocumentError("the policy is not a JSON object")
    found = document.get("Statement")
    found = [found] if isinstance(found, Mapping) else found
    if not isinstance(found, list):
        raise PolicyDocumentError("the policy has no `Statement`")
    for index, s in enumerate(found):
        if not isinstance(s, Mapping):
            raise PolicyDocumentError(f"statement {index} is not an object")
        if s.get("Effect") not in ("Allow", "Deny"):
            raise PolicyDocumentError(f"statement {s.get('Sid') or index} has no `Effect` of Allow or Deny")
    return found


class Policy:
    """A policy document compiled once, for many questions. An unsupported `Condition` anywhere in it
    raises `UnsupportedCondition` here, before any question is answered."""

    def __init__(self, document: Mapping[str, Any] | str) -> None:
        self.statements = [
            _Statement(
                s["Effect"] == "Allow", _element(s, "Action", True), _element(s, "Resource", False), _condition(s)
            )
            for s in statements(document)
        ]

    def decide(self, action: str, resource: str, resource_tags: Mapping[str, str] | None = None) -> Decision:
        """AWS's decision for one request against this identity policy. `resource_tags`: the tags of the
        resource (the request context of `aws:ResourceTag/...`); None when unknown, which refuses any
        statement with a condition that the request reaches."""
        allowed = False
        for s in self.statements:
            if s.applies(action, resource, resource_tags):
                if not s.allow:
                    return "explicit-deny"
                allowed = True
        return "allow" if allowed else "implicit-deny"

    def allows(self, action: str, resource: str, resource_tags: Mapping[str, str] | None = None) -> bool:
        return self.decide(action, resource, resource_tags) == "allow"


def decide(
    document: Mapping[str, Any] | str, action: str, resource: str, resource_tags: Mapping[str, str] | None = None
) -> Decision:
    return Policy(document).decide(action, resource, resource_tags)


def allows(
    document: Mapping[str, Any] | str, action: str, resource: str, resource_tags: Mapping[str, str] | None = None
) -> bool:
    return Policy(document).allows(action, resource, resource_tags)


def allowed_resources(
    document: Mapping[str, Any] | str, action: str, resources: Iterable[str] | Mapping[str, Mapping[str, str]]
) -> set[str]:
    """The subset of `resources` on which `action` is allowed. Give a mapping ARN -> tags when the
    policy has tag conditions."""
    policy = Policy(document)
    if isinstance(resources, Mapping):
        return {r for r, tags in resources.items() if policy.allows(action, r, tags)}
    return {r for r in resources if policy.allows(action, r)}
