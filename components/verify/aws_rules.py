"""An IAM read policy judged exactly, as issue 12's attribute-based design writes it (components.policies):

- a service's policy: Allow `DescribeSecret`/`GetSecretValue` on `arn:...:secret:<ns>/*` only where
  the secret carries `aws:ResourceTag/read-<service>` = `true`; a Deny of `TagResource`/`UntagResource`;
  optionally Allow `kms:Decrypt` on the key the namespace's secrets use;
- the namespace's policy: Allow the read actions on `arn:...:secret:<ns>/*` (+ the key).

Two passes, both fail closed. First every statement of the document is judged on its own: an action
beyond the read set (or `kms:Decrypt` on a key ARN), a wildcard action in an Allow, a resource outside
the namespace, `NotAction`/`NotResource`/`Principal` or any other element, a wildcard resource without
the service's tag condition, any condition but exactly that one, a Deny with a condition that cannot be
evaluated — each is OVER-GRANTED, named in the detail. Then the policy's effect is computed with
`components.iam_eval` over every secret the namespace really has (ListSecrets, with their real tags,
including secrets the manifest does not know): a secret it can read but should not is OVER-GRANTED,
one of its own it cannot read is DENIED.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from components import iam_eval, naming
from components.policies import BATCH_READ, KMS_DECRYPT, SECRET_READ_ACTIONS, TAG_ACTIONS
from components.verify.report import Findings, listing

STATEMENT_KEYS = frozenset({"Sid", "Effect", "Action", "Resource", "Condition"})
DOCUMENT_KEYS = frozenset({"Version", "Statement", "Id"})
READ = frozenset(a.lower() for a in SECRET_READ_ACTIONS)
GET_SECRET_VALUE = "secretsmanager:GetSecretValue"
PROBE_SECRET = "verify-probe-not-in-manifest-AbCdEf"
"""A secret name (with AWS's random suffix) in the namespace that no manifest uses."""


@dataclass(frozen=True)
class ListedSecret:
    """A secret of the namespace as ListSecrets shows it (no value)."""

    name: str
    arn: str
    tags: Mapping[str, str]
    kms_key: str | None = None


@dataclass(frozen=True)
class Namespace:
    """What a policy is judged against: the namespace's secrets as they are, and the manifest's keys."""

    namespace: str
    pattern: str
    """Every secret of the namespace, as the program's policies name it (`policies.secret_arn_pattern`):
    `arn:aws:secretsmanager:us-east-1:123456789012:secret:staging/*`."""
    secrets: tuple[ListedSecret, ...]
    key_of: Mapping[str, str]
    """Secret name -> env key, for the manifest's secrets."""

    @property
    def secret_prefix(self) -> str:
        """What every ARN of the namespace starts with: the pattern without its final `*`."""
        return self.pattern.removesuffix("*")

    @cached_property
    def kms_keys(self) -> frozenset[str]:
        return frozenset(s.kms_key for s in self.secrets if s.kms_key)

    def label(self, secret: ListedSecret) -> str:
        return self.key_of.get(secret.name) or f"{secret.name} (not in the manifest)"


def judge_policy(document: Any, service: str | None, readers: Iterable[str], ns: Namespace) -> Findings:
    """`service` None: the namespace policy. `readers`: the secret names it should read (the service's
    manifest secrets; ignored for the namespace policy, which reads every secret of the namespace)."""
    found = Findings()
    try:
        statements = iam_eval.statements(document)
    except iam_eval.PolicyDocumentError as e:
        found.over.append(f"policy document not understood: {e}")
        return found
    if isinstance(document, Mapping):
        found.over += [f"document element {k} is not judged" for k in sorted(set(document) - DOCUMENT_KEYS)]
    for index, statement in enumerate(statements):
        found.over += statement_problems(statement, index, service, ns)
    try:
        policy = iam_eval.Policy(document)
    except iam_eval.PolicyDocumentError as e:  # an unsupported condition, usually named above already
        if not found.over:
            found.over.append(f"cannot be evaluated: {e}")
        return found
    should = {s.name for s in ns.secrets} if service is None else set(readers)
    found.extend(effect_problems(policy, should, service, ns))
    return found


def _strings(value: Any) -> list[str]:
    items = [value] if isinstance(value, str) else value
    return items if isinstance(items, list) and all(isinstance(i, str) for i in items) else []


def _wild(value: str) -> bool:
    return "*" in value or "?" in value


def statement_problems(statement: Mapping[str, Any], index: int, service: str | None, ns: Namespace) -> list[str]:
    sid = statement.get("Sid")
    label = f"statement {index + 1}" + (f" ({sid})" if isinstance(sid, str) and sid else "")
    problems = [f"{label} uses {k}" for k in sorted(set(statement) - STATEMENT_KEYS)]
    if statement["Effect"] == "Deny":  # a Deny only narrows; it must be one that can be evaluated exactly
        if "Condition" in statement:
            try:
                iam_eval.Policy({"Statement": [dict(statement)]})
            except iam_eval.UnsupportedCondition as e:
                problems.append(f"{label}: a Deny whose condition cannot be evaluated ({e})")
            except iam_eval.PolicyDocumentError:
                pass  # NotAction/NotResource: named above
        return problems
    actions = [a.lower() for a in _strings(statement.get("Action"))]
    resources = _strings(statement.get("Resource"))
    if BATCH_READ.lower() in actions:
        # Grants nothing by itself (AWS authorizes each secret of a batch against GetSecretValue), and it
        # exists only on Resource "*"; anything more in the same statement is judged as an over-grant.
        if set(actions) != {BATCH_READ.lower()} or resources != ["*"] or "Condition" in statement:
            problems.append(f'{label}: {BATCH_READ} must stand alone on Resource "*", without a condition')
        return problems
    beyond = [a for a in actions if a not in READ and a != KMS_DECRYPT.lower()]
    if beyond:
        problems.append(f"{label} allows {listing(beyond)} beyond the read actions")
        return problems
    condition = statement.get("Condition")
    if KMS_DECRYPT.lower() in actions:
        if len(set(actions)) > 1:
            problems.append(f"{label} mixes kms:Decrypt with secret actions")
        odd = [r for r in resources if _wild(r) or r not in ns.kms_keys]
        if odd:
            problems.append(f"{label} allows kms:Decrypt on {listing(odd)} (no secret of the namespace uses it)")
        if condition is not None:
            problems.append(f"{label}: kms:Decrypt with a condition ({_describe(condition)}) is not judged")
        return problems
    outside = [r for r in resources if not r.startswith(ns.secret_prefix)]
    if outside:
        problems.append(f"{label} allows reads on {listing(outside)}, outside {ns.pattern}")
    if service is None:
        if condition is not None:
            problems.append(f"{label}: the namespace policy has a condition ({_describe(condition)})")
    elif condition is None:
        wide = [r for r in resources if _wild(r) and r.startswith(ns.secret_prefix)]
        if wide:
            problems.append(
                f"{label} allows reads on {listing(wide)} without the {naming.read_tag(service)} tag condition"
            )
    elif not is_read_tag_condition(condition, service):
        problems.append(
            f"{label}: its condition ({_describe(condition)}) is not exactly StringEquals "
            f"{iam_eval.RESOURCE_TAG}{naming.read_tag(service)} = {naming.READ_TAG_VALUE}"
        )
    return problems


def _describe(condition: Any) -> str:
    """`StringLike aws:ResourceTag/read-x`: operators and keys, never the values."""
    if not isinstance(condition, Mapping):
        return "not an object"
    return listing(f"{op} {listing(block) if isinstance(block, Mapping) else '?'}" for op, block in condition.items())


def is_read_tag_condition(condition: Any, service: str) -> bool:
    """Exactly `{"StringEquals": {"aws:ResourceTag/read-<service>": "true"}}` (IAM keys are case-insensitive)."""
    if not isinstance(condition, Mapping) or list(condition) != ["StringEquals"]:
        return False
    block = condition["StringEquals"]
    if not isinstance(block, Mapping) or len(block) != 1:
        return False
    [(key, value)] = block.items()
    wanted = f"{iam_eval.RESOURCE_TAG}{naming.read_tag(service)}".lower()
    return str(key).lower() == wanted and _strings(value) == [naming.READ_TAG_VALUE]


def effect_problems(policy: iam_eval.Policy, should: set[str], service: str | None, ns: Namespace) -> Findings:
    """What the policy really lets its holder do on the namespace's secrets, given their tags."""
    found = Findings()
    extra: dict[str, list[str]] = {}
    missing: dict[str, list[str]] = {}
    try:
        for secret in ns.secrets:
            allowed = {a: policy.allows(a, secret.arn, secret.tags) for a in SECRET_READ_ACTIONS}
            # Name the read (GetSecretValue) first; DescribeSecret alone only when it differs from it.
            verbs = {"read": allowed[GET_SECRET_VALUE]}
            verbs.update({a.split(":")[1]: ok for a, ok in allowed.items() if ok != allowed[GET_SECRET_VALUE]})
            for verb, ok in verbs.items():
                if ok and secret.name not in should:
                    extra.setdefault(verb, []).append(ns.label(secret))
                if not ok and secret.name in should:
                    missing.setdefault(verb, []).append(ns.label(secret))
            if secret.name in should and secret.kms_key and not policy.allows(KMS_DECRYPT, secret.kms_key):
                missing.setdefault("kms:Decrypt the key of", []).append(ns.label(secret))
        if service is not None:
            probe = ListedSecret(ns.secret_prefix + PROBE_SECRET, ns.secret_prefix + PROBE_SECRET, {})
            open_to_tagging = [
                a
                for a in TAG_ACTIONS
                if any(policy.decide(a, s.arn, s.tags) != "explicit-deny" for s in (*ns.secrets, probe))
            ]
            if open_to_tagging:
                found.over.append(
                    f"does not deny {listing(open_to_tagging)} on {ns.pattern} "
                    "(whatever else the role holds could retag secrets to read them)"
                )
    except iam_eval.PolicyDocumentError as e:
        found.over.append(f"cannot be evaluated: {e}")
        return found
    found.over += [f"can also {verb} {listing(sorted(names))}" for verb, names in extra.items()]
    found.denied += [f"cannot {verb} {listing(sorted(names))}" for verb, names in missing.items()]
    return found
