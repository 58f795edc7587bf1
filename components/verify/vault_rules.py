"""Vault ACL policy text, read with python-hcl2 and judged rule by rule (issue 9: the verdict covers
everything a policy grants, not a sample of paths).

The policies this project writes are `path "<literal>" { capabilities = ["read", ...] }` blocks and
nothing else (components.policies). The stored text is parsed into hcl2's element tree — not the dict of
`hcl2.loads`, which keeps only the last of two attributes with one name, where Vault merges them — and
every block, attribute and string in it is judged. Anything that is not exactly that shape is an
oddity and counts as OVER-GRANTED (fail closed): another attribute (`allowed_parameters`,
`denied_parameters`, `required_parameters`, `min_wrapping_ttl`, `policy = "write"`, ...), a nested
block, a top-level attribute or block, a label or capability that is not a plain string (escapes,
`${...}` templates), and a text hcl2 cannot parse at all (Vault's JSON form included).
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass

import hcl2
from hcl2.rules.base import AttributeRule, BlockRule

from components.verify.report import Findings, listing

PLAIN_PATH = re.compile(r'"([A-Za-z0-9_.\-/*+]*)"')
"""A path label as a plain string: no escapes, templates or quotes that Vault might read otherwise."""
PLAIN_CAPABILITY = re.compile(r'"([a-z]+)"')
CAPABILITIES = "capabilities"
DENY = "deny"


@dataclass(frozen=True)
class Rule:
    path: str
    capabilities: frozenset[str]


@dataclass(frozen=True)
class PolicyText:
    rules: tuple[Rule, ...]
    oddities: tuple[str, ...]
    """Everything in the text that is not a plain `path` rule, each named."""

    def grants(self) -> dict[str, frozenset[str]]:
        """Path -> capabilities, merged over repeated blocks and attributes as Vault merges them."""
        merged: dict[str, frozenset[str]] = {}
        for rule in self.rules:
            merged[rule.path] = merged.get(rule.path, frozenset()) | rule.capabilities
        return merged


def parse_policy(text: str) -> PolicyText:
    try:
        tree = hcl2.parses(text)
    except Exception as e:  # lark's errors quote the text; name only where it failed
        line = getattr(e, "line", None)
        where = f" at line {line}" if isinstance(line, int) else ""
        return PolicyText((), (f"the policy text cannot be parsed as HCL{where} ({e.__class__.__name__})",))
    rules: list[Rule] = []
    oddities: list[str] = []
    for child in tree.body.children:
        if isinstance(child, AttributeRule):
            oddities.append(f"top-level attribute {child.identifier.serialize()}")
        elif isinstance(child, BlockRule):
            _block(child, rules, oddities)
    return PolicyText(tuple(rules), tuple(oddities))


def _block(block: BlockRule, rules: list[Rule], oddities: list[str]) -> None:
    labels = [str(label.serialize()) for label in block.labels]
    path = PLAIN_PATH.fullmatch(labels[1]) if len(labels) == 2 and labels[0] == "path" else None
    if path is None:
        oddities.append(f'block {" ".join(labels)[:80]} (only `path "..."` blocks with a plain path are judged)')
        return
    where = f'path "{path.group(1)}"'
    for item in block.body.children:
        if isinstance(item, BlockRule):
            oddities.append(f"{where}: nested block {item.labels[0].serialize()}")
        elif isinstance(item, AttributeRule):
            name = str(item.identifier.serialize())
            value = item.expression.serialize()
            if name != CAPABILITIES:
                oddities.append(f"{where}: attribute {name}")
                continue
            caps = (
                [PLAIN_CAPABILITY.fullmatch(v) if isinstance(v, str) else None for v in value]
                if isinstance(value, list)
                else [None]
            )
            if not all(caps):
                oddities.append(f"{where}: capabilities is not a list of plain strings")
                continue
            rules.append(Rule(path.group(1), frozenset(m.group(1) for m in caps if m)))


def judge_rules(stored: PolicyText, expected: PolicyText, key_of: Mapping[str, str]) -> Findings:
    """What `stored` grants beyond `expected` (OVER-GRANTED) and short of it (DENIED). `key_of` names
    the manifest secrets by read path, so details say `can also read DATABASE_PASSWORD`."""
    found = Findings(over=list(stored.oddities))
    have, want = stored.grants(), expected.grants()

    def name(path: str) -> str:
        return key_of.get(path, f'"{path}"')

    other_reads = sorted(key_of[p] for p, caps in have.items() if p not in want and p in key_of and caps == {"read"})
    if other_reads:
        found.over.append(f"can also read {listing(other_reads)}")
    extra_rules = [
        f'path "{p}" [{", ".join(sorted(caps))}]'
        for p, caps in sorted(have.items())
        if p not in want and not (p in key_of and caps == {"read"})
    ]
    if extra_rules:
        found.over.append(f"rules beyond its grants: {listing(extra_rules)}")
    wider: dict[str, list[str]] = {}
    short: dict[str, list[str]] = {}
    for p in sorted(want):
        caps = have.get(p, frozenset())
        missing = want[p] if DENY in caps else want[p] - caps
        if missing:
            short.setdefault("/".join(sorted(missing)), []).append(name(p))
        if caps - want[p] - {DENY}:
            wider.setdefault("/".join(sorted(caps - want[p] - {DENY})), []).append(name(p))
    found.over += [f"can also {caps} {listing(names)}" for caps, names in wider.items()]
    found.denied += [f"cannot {caps} {listing(names)}" for caps, names in short.items()]
    return found
