"""A small evaluator of one IAM identity policy: does it allow action X on resource ARN Y?

AWS's own simulator is an online API (and moto does not implement it), so `verify` and the tests
evaluate the documents themselves, with the rules of AWS's policy evaluation logic that identity
policies for secret reads need:

- a request is allowed only when some `Allow` statement matches it and no `Deny` statement does
  (an explicit Deny always wins; no match at all is the implicit deny);
- a statement matches when its `Action` (or `NotAction`) and its `Resource` (or `NotResource`) match;
- `*` matches any run of characters and `?` exactly one; actions compare case-insensitively
  (`secretsmanager:getsecretvalue` is the same action), resource ARNs case-sensitively.

Deliberately out of scope: `Principal` (identity policies have none) and `Condition`. A statement with
a `Condition` is treated as if the condition held, for Allow and Deny alike; the project's policies
never carry conditions, and a reader of a conditional policy must not trust this evaluator.
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
class _Statement:
    allow: bool
    action: _Element
    resource: _Element


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
    """A policy document compiled once, for many questions."""

    def __init__(self, document: Mapping[str, Any] | str) -> None:
        self.statements = [
            _Statement(s["Effect"] == "Allow", _element(s, "Action", True), _element(s, "Resource", False))
            for s in statements(document)
        ]

    def decide(self, action: str, resource: str) -> Decision:
        """AWS's decision for one request against this identity policy."""
        allowed = False
        for s in self.statements:
            if s.action.covers(action) and s.resource.covers(resource):
                if not s.allow:
                    return "explicit-deny"
                allowed = True
        return "allow" if allowed else "implicit-deny"

    def allows(self, action: str, resource: str) -> bool:
        return self.decide(action, resource) == "allow"


def decide(document: Mapping[str, Any] | str, action: str, resource: str) -> Decision:
    return Policy(document).decide(action, resource)


def allows(document: Mapping[str, Any] | str, action: str, resource: str) -> bool:
    return Policy(document).allows(action, resource)


def allowed_resources(document: Mapping[str, Any] | str, action: str, resources: Iterable[str]) -> set[str]:
    """The subset of `resources` on which `action` is allowed."""
    policy = Policy(document)
    return {r for r in resources if policy.allows(action, r)}
