"""`python -m components gate PREVIEW_JSON [--protected] [--allow-delete KEY]...`: judge a preview.

Reads what `pulumi preview --json` prints (a digest: `steps[]` with `op`, `urn`, `oldState`/`newState`;
`diagnostics[]`; `changeSummary`; keys may be missing when nothing changes) and decides whether the
deploy may go on:

- exit 1 when a protected stack would delete or replace a secret, secret version, mount or policy,
  unless `--allow-delete` names its env key (the logical names are `secrets-<KEY>` and
  `secrets-<KEY>-version`) or its logical name (`secrets-orchestrator-read`, `secrets-mount`);
- exit 1 when any diagnostic has severity `error`;
- exit 2 when the file cannot be read as a preview.

It prints a Markdown summary for a pull-request comment. It names resource types, logical names and
env keys only: never an input or output (the preview masks secrets as "[secret]", but config values
would show in plain text, so nothing from `inputs`/`outputs` is printed at all).

Policy-pack violations are not in the JSON (`pulumi preview` reports them through its exit code), so
the workflow checks the preview's own exit status as well.
"""

import argparse
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components import naming
from components.errors import EXIT_CHECK_FAILED, EXIT_OK, InputError

# What holds a secret or decides who reads it: losing one of these in prod loses data or access.
GUARDED_TYPES = frozenset(
    {
        naming.VAULT_MOUNT,
        naming.VAULT_SECRET,
        naming.VAULT_POLICY,
        naming.AWS_SECRET,
        naming.AWS_SECRET_VERSION,
        naming.IAM_POLICY,
        naming.IAM_ATTACHMENT,
    }
)
# How each step op is counted. `replace` and `delete` end the life of the existing resource (a
# replacement deletes the old one); ops not listed (same, read, refresh, ...) change nothing.
CATEGORY = {
    "create": "create",
    "import": "create",
    "update": "update",
    "replace": "replace",
    "create-replacement": "replace",
    "delete-replaced": "replace",
    "discard-replaced": "replace",
    "read-replacement": "replace",
    "import-replacement": "replace",
    "delete": "delete",
    "discard": "delete",
}
CATEGORIES = ("create", "update", "replace", "delete")
DESTRUCTIVE = ("replace", "delete")
ROOT_STACK = "pulumi:pulumi:Stack"
# The logical-name contract of the stores (naming.STORE): a secret's resources are named after its env key.
_SECRET_NAME = re.compile(re.escape(naming.STORE) + r"-(?P<key>[A-Za-z_][A-Za-z0-9_]*)(?:-version)?")
_SECRET_TYPES = frozenset({naming.VAULT_SECRET, naming.AWS_SECRET, naming.AWS_SECRET_VERSION})


@dataclass(frozen=True)
class Change:
    """One resource the preview would change, reduced to its most drastic category."""

    category: str
    type: str
    name: str
    """The logical name (last part of the URN)."""
    env_key: str | None
    """The env key the resource stores, for secrets and secret versions."""

    @property
    def label(self) -> str:
        return f"`{self.env_key}` ({self.name})" if self.env_key else f"`{self.name}`"


@dataclass(frozen=True)
class Preview:
    stack: str | None
    changes: list[Change]
    error_sources: list[str]
    """Where each `error` diagnostic came from (logical name, or the stack)."""


@dataclass(frozen=True)
class Verdict:
    ok: bool
    blocked: list[Change]
    allowed: list[Change]
    errors: list[str]


# ---------------------------------------------------------------- parse


def _urn_parts(urn: str) -> tuple[str, str, str]:
    """(stack, type, name) of `urn:pulumi:<stack>::<project>::<parent$...$type>::<name>`."""
    parts = urn.split("::", 3)
    if len(parts) != 4 or not parts[0].startswith("urn:pulumi:"):
        raise ValueError(urn)
    return parts[0].removeprefix("urn:pulumi:"), parts[2].rsplit("$", 1)[-1], parts[3]


def env_key_of(resource_type: str, name: str) -> str | None:
    """`secrets-DATABASE_PASSWORD` / `secrets-DATABASE_PASSWORD-version` -> `DATABASE_PASSWORD`."""
    if resource_type not in _SECRET_TYPES:
        return None
    match = _SECRET_NAME.fullmatch(name)
    return match["key"] if match else None


def _state_type(step: dict[str, Any]) -> str | None:
    for key in ("newState", "oldState"):
        state = step.get(key)
        if isinstance(state, dict) and isinstance(state.get("type"), str):
            return str(state["type"])
    return None


def parse(path: Path) -> Preview:
    """Read a `pulumi preview --json` digest; anything else is an `InputError` naming the file."""
    try:
        digest = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise InputError(f"{path}: cannot read the preview ({e.strerror or type(e).__name__})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: the preview is not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise InputError(
            f"{path}:{e.lineno}: not valid JSON ({e.msg}); expected `pulumi preview --json` output"
        ) from None
    if not isinstance(digest, dict):
        raise InputError(f"{path}: expected a JSON object from `pulumi preview --json`")
    steps, diagnostics = digest.get("steps") or [], digest.get("diagnostics") or []
    if not isinstance(steps, list) or not isinstance(diagnostics, list):
        raise InputError(f"{path}: `steps` and `diagnostics` must be lists")

    stack: str | None = None
    by_urn: dict[str, Change] = {}
    for index, step in enumerate(steps):
        op, urn = (step.get("op"), step.get("urn")) if isinstance(step, dict) else (None, None)
        if not isinstance(op, str) or not isinstance(urn, str):
            raise InputError(f"{path}: steps[{index}] needs a string `op` and `urn`")
        try:
            stack, urn_type, name = _urn_parts(urn)
        except ValueError:
            raise InputError(f"{path}: steps[{index}] has a malformed `urn`") from None
        resource_type = _state_type(step) or urn_type
        category = CATEGORY.get(op)
        if category is None or resource_type == ROOT_STACK:
            continue
        previous = by_urn.get(urn)
        # A replacement can arrive as three steps; keep one entry per resource, the most drastic.
        if previous is None or CATEGORIES.index(category) > CATEGORIES.index(previous.category):
            by_urn[urn] = Change(category, resource_type, name, env_key_of(resource_type, name))

    errors: list[str] = []
    for diagnostic in diagnostics:
        if isinstance(diagnostic, dict) and diagnostic.get("severity") == "error":
            urn = diagnostic.get("urn")
            try:
                errors.append(_urn_parts(urn)[2] if isinstance(urn, str) and urn else "the stack")
            except ValueError:
                errors.append("the stack")
    return Preview(stack, list(by_urn.values()), errors)


# ---------------------------------------------------------------- decide


def decide(preview: Preview, *, protected: bool, allow: Iterable[str]) -> Verdict:
    allowed_names = set(allow)
    at_risk = [c for c in preview.changes if protected and c.type in GUARDED_TYPES and c.category in DESTRUCTIVE]
    allowed = [c for c in at_risk if c.env_key in allowed_names or c.name in allowed_names]
    blocked = [c for c in at_risk if c not in allowed]
    return Verdict(not blocked and not preview.error_sources, blocked, allowed, preview.error_sources)


# ---------------------------------------------------------------- render


def render(preview: Preview, verdict: Verdict, *, protected: bool) -> str:
    stack = f" of `{preview.stack}`" if preview.stack else ""
    lines = [f"### Pulumi preview{stack}{' (protected)' if protected else ''}", ""]
    counts = Counter((c.type, c.category) for c in preview.changes)
    types = sorted({c.type for c in preview.changes})
    if types:
        lines += ["| Resource type | " + " | ".join(CATEGORIES) + " |", "|---|" + "---:|" * len(CATEGORIES)]
        lines += [f"| `{t}` | " + " | ".join(str(counts[t, c]) for c in CATEGORIES) + " |" for t in types]
    else:
        lines.append("No resource changes.")
    lines.append("")
    lines.append(_verdict_line(verdict, protected=protected))
    for change in verdict.blocked:
        lines.append(f"- {change.category}: {change.label} `{change.type}`")
    if verdict.blocked:
        keys = sorted({c.env_key or c.name for c in verdict.blocked})
        lines.append("")
        lines.append(
            "If this is deliberate: label the pull request "
            + ", ".join(f"`allow-delete:{k}`" for k in keys)
            + " (or run the gate with "
            + " ".join(f"`--allow-delete {k}`" for k in keys)
            + "); see docs/ci.md."
        )
    return "\n".join(lines) + "\n"


def _verdict_line(verdict: Verdict, *, protected: bool) -> str:
    reasons: list[str] = []
    if verdict.blocked:
        reasons.append(
            f"protected stack would delete or replace {len(verdict.blocked)} resource(s): "
            + ", ".join(c.label for c in verdict.blocked)
        )
    if verdict.errors:
        reasons.append(
            f"{len(verdict.errors)} error diagnostic(s) from "
            + ", ".join(f"`{e}`" for e in verdict.errors)
            + " (see the preview log)"
        )
    if reasons:
        return "**FAIL**: " + "; ".join(reasons) + "."
    if verdict.allowed:
        return (
            "**PASS**: deletes/replaces allowed by --allow-delete: " + ", ".join(c.label for c in verdict.allowed) + "."
        )
    if protected:
        return "**PASS**: no secret, version, mount or policy would be deleted or replaced, and no errors."
    return "**PASS**: no errors (stack not protected: deletes and replaces are allowed)."


# ---------------------------------------------------------------- command


def gate(path: Path, *, protected: bool, allow: Sequence[str]) -> tuple[int, str]:
    preview = parse(path)
    verdict = decide(preview, protected=protected, allow=allow)
    return (EXIT_OK if verdict.ok else EXIT_CHECK_FAILED), render(preview, verdict, protected=protected)


def run(args: argparse.Namespace) -> int:
    code, text = gate(args.preview_json, protected=args.protected, allow=args.allow_delete)
    print(text, end="")
    return code
