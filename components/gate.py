"""`python -m components gate PREVIEW_JSON [--protected] [--allow-delete PATH|NAME|KEY]...`: judge a preview.

Reads what `pulumi preview --json` prints (pkg/display/json.go `PreviewDigest`: `steps[]` with `op`, `urn`,
`oldState`/`newState`; `diagnostics[]`; `changeSummary`) and decides whether the deploy may go on:

- exit 1 on a **protected** stack when a secret (`SecretV2`, `Secret`), a policy, a role attachment or an
  AppRole role would be deleted or replaced, unless `--allow-delete` names it: by secret path
  (`redis/password`), logical name (`secrets/redis/password`, `secrets-orchestrator-read`) or, for stacks
  still on the old names, env key (`REDIS_PASSWORD`). A `SecretVersion` replacement is a rotation: it adds
  a version and the secret stays, so it never blocks;
- exit 1 on **every** stack when the KV mount or an auth mount would be deleted or replaced (that destroys
  every namespace's data in it), unless `--allow-delete` names it (`secrets-mount`, `secrets-approle`);
- exit 1 on every stack when one secret's backend name is deleted by one resource and created by another
  in the same deploy: the create runs first and the delete then removes what it wrote (Vault), or the
  create fails (AWS). That happens when stacks are upgraded to path-keyed names and a key is renamed in
  the same deploy; deploy the two separately. No flag allows it;
- exit 1 when any diagnostic has severity `error` (e.g. the engine's own protect errors);
- exit 2 when the file is not a preview digest (a real one always has `changeSummary` and the root stack's
  step), with one line naming the file.

It prints a Markdown summary for a pull-request comment, naming resource types, logical names, secret
paths and env keys only: never an input or output value (config values and inputs are never printed).
Policy-pack violations are not in the JSON; the workflow checks the preview's own exit status as well.
"""

import argparse
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components import naming
from components.errors import EXIT_CHECK_FAILED, EXIT_OK, InputError

# On a protected stack, deleting one of these loses a secret or a service's access.
PROTECTED_TYPES = frozenset(
    {
        naming.VAULT_SECRET,
        naming.AWS_SECRET,
        naming.VAULT_POLICY,
        naming.IAM_POLICY,
        naming.IAM_ATTACHMENT,
        naming.VAULT_APPROLE,
    }
)
# On any stack: a mount holds every namespace's secrets (or roles), not just this stack's.
MOUNT_TYPES = frozenset({naming.VAULT_MOUNT, naming.VAULT_AUTH_BACKEND})
# Resources whose `name` input is a secret's name in the backend.
NAMED_SECRET_TYPES = frozenset({naming.VAULT_SECRET, naming.AWS_SECRET})
# How each step op is counted. `replace` and `delete` end the life of the existing resource.
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
_SECRET_TYPES = frozenset({naming.VAULT_SECRET, naming.AWS_SECRET, naming.AWS_SECRET_VERSION})
_LEGACY_PREFIX = f"{naming.STORE}-"


@dataclass(frozen=True)
class Change:
    """One resource the preview would change, reduced to its most drastic category."""

    category: str
    type: str
    name: str
    """The logical name (last part of the URN)."""
    path: str | None
    """The secret path its logical name follows (`secrets/<path>`), for secrets and versions."""
    env_key: str | None
    """The env key of an old-style name (`secrets-<KEY>`, `secrets-<KEY>-version`)."""
    backend_name: tuple[str, ...] | None
    """(type, mount, name) of a secret's name in the backend, from its old or new inputs; never printed."""

    @property
    def label(self) -> str:
        key = self.path or self.env_key
        return f"`{key}` ({self.name})" if key else f"`{self.name}`"

    @property
    def allow_key(self) -> str:
        """What `--allow-delete` takes for it, as the FAIL message suggests."""
        return self.path or self.env_key or self.name

    def allowed_by(self, names: set[str]) -> bool:
        return bool({self.name, self.path, self.env_key} & names)


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
    """Deletes/replaces `--allow-delete` could allow."""
    same_name: list[tuple[Change, Change]]
    """(deleted, created) pairs on one backend name: never allowed."""
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
    """`secrets-DATABASE_PASSWORD` / `secrets-DATABASE_PASSWORD-version` -> `DATABASE_PASSWORD` (old names)."""
    if resource_type not in _SECRET_TYPES or not name.startswith(_LEGACY_PREFIX):
        return None
    key = name[len(_LEGACY_PREFIX) :]
    if resource_type == naming.AWS_SECRET_VERSION:
        key = key.removesuffix("-version")
    return key if key and (key[0].isalpha() or key[0] == "_") and key.replace("_", "a").isalnum() else None


def path_of(resource_type: str, name: str) -> str | None:
    return naming.path_of_logical_name(name) if resource_type in _SECRET_TYPES else None


def _state(step: dict[str, Any], key: str) -> dict[str, Any]:
    state = step.get(key)
    return state if isinstance(state, dict) else {}


def _backend_name(resource_type: str, state: dict[str, Any]) -> tuple[str, ...] | None:
    inputs = state.get("inputs")
    if resource_type not in NAMED_SECRET_TYPES or not isinstance(inputs, dict):
        return None
    name, mount = inputs.get("name"), inputs.get("mount", "")
    if not isinstance(name, str) or not isinstance(mount, str):
        return None
    return (resource_type, mount.strip("/"), name)


def _load(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"{path}: cannot read the preview ({e.strerror or type(e).__name__})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: the preview is not UTF-8 text") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(
            f"{path}:{e.lineno}: not valid JSON ({e.msg}); expected `pulumi preview --json` output"
        ) from None
    except RecursionError:
        raise InputError(f"{path}: JSON nested too deeply; expected `pulumi preview --json` output") from None
    except ValueError:  # e.g. an integer longer than Python converts (4,300 digits)
        raise InputError(
            f"{path}: JSON with a number too long to read; expected `pulumi preview --json` output"
        ) from None


def parse(path: Path) -> Preview:
    """Read a `pulumi preview --json` digest; anything else is an `InputError` naming the file."""
    digest = _load(path)
    not_a_preview = f"{path}: not a `pulumi preview --json` digest"
    if not isinstance(digest, dict):
        raise InputError(f"{path}: expected a JSON object from `pulumi preview --json`")
    steps, diagnostics = digest.get("steps") or [], digest.get("diagnostics") or []
    if not isinstance(steps, list) or not isinstance(diagnostics, list):
        raise InputError(f"{path}: `steps` and `diagnostics` must be lists")
    if not isinstance(digest.get("changeSummary"), dict):
        raise InputError(f"{not_a_preview} (no `changeSummary`)")

    stack: str | None = None
    root_seen = False
    by_urn: dict[str, Change] = {}
    for index, step in enumerate(steps):
        op, urn = (step.get("op"), step.get("urn")) if isinstance(step, dict) else (None, None)
        if not isinstance(op, str) or not isinstance(urn, str):
            raise InputError(f"{path}: steps[{index}] needs a string `op` and `urn`")
        try:
            stack, resource_type, name = _urn_parts(urn)
        except ValueError:
            raise InputError(f"{path}: steps[{index}] has a malformed `urn`") from None
        category = CATEGORY.get(op)
        if resource_type == ROOT_STACK:
            root_seen = True
            continue
        if category is None:
            continue
        state = _state(step, "oldState" if category == "delete" else "newState")
        previous = by_urn.get(urn)
        # A replacement can arrive as three steps; keep one entry per resource, the most drastic.
        if previous is None or CATEGORIES.index(category) > CATEGORIES.index(previous.category):
            by_urn[urn] = Change(
                category,
                resource_type,
                name,
                path_of(resource_type, name),
                env_key_of(resource_type, name),
                _backend_name(resource_type, state),
            )
    if not root_seen:
        raise InputError(f"{not_a_preview} (no step for the root stack `{ROOT_STACK}`)")

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
    allow_names = set(allow)
    at_risk = [
        c
        for c in preview.changes
        if c.category in DESTRUCTIVE and (c.type in MOUNT_TYPES or (protected and c.type in PROTECTED_TYPES))
    ]
    allowed = [c for c in at_risk if c.allowed_by(allow_names)]
    blocked = [c for c in at_risk if c not in allowed]
    created = {c.backend_name: c for c in preview.changes if c.category == "create" and c.backend_name}
    same_name = [
        (c, created[c.backend_name]) for c in preview.changes if c.category == "delete" and c.backend_name in created
    ]
    ok = not blocked and not same_name and not preview.error_sources
    return Verdict(ok, blocked, same_name, allowed, preview.error_sources)


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
    for deleted, created in verdict.same_name:
        lines.append(
            f"- `{deleted.name}` is deleted and `{created.name}` created on the same backend name: the delete "
            "would remove what the create writes. Deploy the upgrade and the rename separately."
        )
    if verdict.blocked:
        keys = sorted({c.allow_key for c in verdict.blocked})
        unprotect = (
            " unprotect those resources (`pulumi state unprotect URN`, docs/runbook.md) and" if protected else ""
        )
        lines.append("")
        lines.append(
            f"If this is deliberate:{unprotect} label the pull request "
            + ", ".join(f"`allow-delete:{k}`" for k in keys)
            + " (or run the gate with "
            + " ".join(f"`--allow-delete {k}`" for k in keys)
            + "); see docs/ci.md."
        )
    return "\n".join(lines) + "\n"


def _verdict_line(verdict: Verdict, *, protected: bool) -> str:
    reasons: list[str] = []
    if verdict.blocked:
        where = "a protected stack" if protected else "this stack"
        reasons.append(
            f"{where} would delete or replace {len(verdict.blocked)} resource(s): "
            + ", ".join(c.label for c in verdict.blocked)
        )
    if verdict.same_name:
        reasons.append(
            f"{len(verdict.same_name)} secret(s) deleted and created again under one backend name in one deploy: "
            + ", ".join(f"`{created.path or created.name}`" for _, created in verdict.same_name)
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
        return "**PASS**: no secret, mount or policy would be deleted or replaced, and no errors."
    return "**PASS**: no mount would be deleted or replaced, and no errors (stack not protected)."


# ---------------------------------------------------------------- command


def gate(path: Path, *, protected: bool, allow: Sequence[str]) -> tuple[int, str]:
    preview = parse(path)
    verdict = decide(preview, protected=protected, allow=allow)
    return (EXIT_OK if verdict.ok else EXIT_CHECK_FAILED), render(preview, verdict, protected=protected)


def run(args: argparse.Namespace) -> int:
    code, text = gate(args.preview_json, protected=args.protected, allow=args.allow_delete)
    print(text, end="")
    return code
