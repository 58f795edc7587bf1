"""What `verify` found, and how it is shown: the rows, the verdict, the table and the JSON.

A row's DETAIL names keys, paths, policy names and rule text, never a value or a digest of one.
"""

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

from components.errors import InputError
from components.layout import SecretSpot

SecretStatus = Literal["OK", "MISSING", "MISMATCH"]
GrantStatus = Literal["OK", "DENIED", "OVER-GRANTED"]

NAMESPACE_ROW = "(namespace)"
"""The service column of the namespace-wide read policy's row."""
LISTED = 8
"""Items named in one detail before `and N more`."""


@dataclass(frozen=True)
class SecretResult:
    key: str
    location: str
    """Where it lives, as the backend's CLI takes it: `secret/staging/alpaca/api_key_id` or the AWS name."""
    status: SecretStatus
    detail: str = ""


@dataclass(frozen=True)
class PolicyResult:
    service: str
    policy: str
    status: GrantStatus
    detail: str = ""


@dataclass(frozen=True)
class RoleResult:
    """One service's Vault AppRole login role."""

    service: str
    role: str
    status: GrantStatus
    detail: str = ""


@dataclass(frozen=True)
class Report:
    backend: str
    namespace: str
    secrets: list[SecretResult]
    policies: list[PolicyResult]
    roles: list[RoleResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What was not checked and why (never silent): printed above the summary."""

    @property
    def ok(self) -> bool:
        rows: list[SecretResult | PolicyResult | RoleResult] = [*self.secrets, *self.policies, *self.roles]
        return all(r.status == "OK" for r in rows)


@dataclass(frozen=True)
class Fetched:
    """One secret as read back: absent, or the SHA-256 of its value (the value itself is dropped)."""

    digest: str | None = None
    problem: str = ""
    """Why it counts as MISSING (or MISMATCH when a digest is absent but the secret exists)."""
    exists: bool = True


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def secret_result(spot: SecretSpot, fetched: Fetched, expected: dict[str, str] | None) -> SecretResult:
    """Compare what was read with the `.env` digests (if any); never name the value."""
    if not fetched.exists:
        return SecretResult(spot.key, spot.location, "MISSING", fetched.problem)
    if fetched.digest is None:
        return SecretResult(spot.key, spot.location, "MISMATCH", fetched.problem)
    if expected is not None and expected[spot.key] != fetched.digest:
        return SecretResult(spot.key, spot.location, "MISMATCH", "value differs from the .env (SHA-256)")
    return SecretResult(spot.key, spot.location, "OK")


def listing(items: Iterable[str]) -> str:
    """`A, B, C` — or the first few and `and N more`, so one row stays readable at 1,000 secrets."""
    names = list(items)
    if len(names) <= LISTED:
        return ", ".join(names)
    return ", ".join(names[:LISTED]) + f" and {len(names) - LISTED} more"


@dataclass
class Findings:
    """What one policy (or role) grants beyond, or short of, what it should. OVER-GRANTED outranks
    DENIED: a grant too wide is the security problem, and the detail names both kinds."""

    over: list[str] = field(default_factory=list)
    denied: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Said in the detail whatever the verdict (e.g. that a second opinion was skipped, and why)."""

    def extend(self, other: "Findings") -> None:
        self.over += other.over
        self.denied += other.denied
        self.notes += other.notes

    def verdict(self, ok_detail: str) -> tuple[GrantStatus, str]:
        status: GrantStatus = "OVER-GRANTED" if self.over else "DENIED" if self.denied else "OK"
        parts = [*self.over, *self.denied] if status != "OK" else [ok_detail]
        return status, "; ".join(p for p in [*parts, *self.notes] if p)


# --- rendering -------------------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [headers, *rows]]
    return "\n".join(lines)


def summary(report: Report) -> str:
    def counts(statuses: list[str], ok_word: str) -> str:
        bad = {s: statuses.count(s) for s in dict.fromkeys(statuses) if s != "OK"}
        text = f"{statuses.count('OK')}/{len(statuses)} {ok_word} OK"
        return text + "".join(f", {n} {s}" for s, n in bad.items())

    parts = [
        counts([r.status for r in report.secrets], "secrets"),
        counts([r.status for r in report.policies], "policies"),
    ]
    if report.roles:
        parts.append(counts([r.status for r in report.roles], "roles"))
    mark, verdict = ("✓", "OK") if report.ok else ("✗", "FAILED")
    return f"{mark} verify {verdict}: {'; '.join(parts)} ({report.backend}, namespace {report.namespace})"


def render(report: Report) -> str:
    blocks = [
        table(
            ["SECRET", "LOCATION", "STATUS", "DETAIL"],
            [[r.key, r.location, r.status, r.detail] for r in report.secrets],
        ),
        table(
            ["SERVICE", "POLICY", "STATUS", "DETAIL"],
            [[r.service, r.policy, r.status, r.detail] for r in report.policies],
        ),
    ]
    if report.roles:
        blocks.append(
            table(
                ["SERVICE", "APPROLE", "STATUS", "DETAIL"],
                [[r.service, r.role, r.status, r.detail] for r in report.roles],
            )
        )
    notes = "".join(f"note: {n}\n" for n in report.notes)
    return "\n\n".join(blocks) + "\n\n" + notes + summary(report)


def as_json(report: Report) -> str:
    return json.dumps(
        {
            "ok": report.ok,
            "backend": report.backend,
            "namespace": report.namespace,
            "secrets": [asdict(r) for r in report.secrets],
            "policies": [asdict(r) for r in report.policies],
            "roles": [asdict(r) for r in report.roles],
            "notes": report.notes,
            "summary": summary(report),
        },
        indent=2,
        ensure_ascii=False,
    )


class CannotCheck(InputError):
    """The backend cannot be checked (unreachable, too slow, sealed, not Vault, permission denied):
    exit 2 with this one line."""
