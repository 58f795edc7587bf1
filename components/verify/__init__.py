"""`python -m components verify`: the runbook's Validation checklist as one command, and a backstop for
drift — an OK from it must mean OK.

For every manifest secret: it is present and, with an `.env`, its value's SHA-256 equals the `.env`
value's (digests are compared in memory; no value or digest is ever printed). For every service and the
namespace: the read policy grants exactly its secrets — judged on everything the policy says, not on a
sample. For Vault with AppRole: each service's login role carries exactly its read policy.

    report = check(VerifyOptions(backend="vault", namespace="staging", vault_addr=..., vault_token=...))
    print(render(report))

Modules: `options` (what to check, how to connect), `report` (rows, verdict, table, JSON), `deadline`
(the whole run's `--timeout`), `vault` + `vault_rules`, `aws` + `aws_rules`.

Exit codes of `run`: 0 all OK, 1 any MISSING / MISMATCH / DENIED / OVER-GRANTED, 2 cannot check (one
line: bad options, unreachable or too slow a backend, not a Vault server, sealed, permission denied).
"""

import json
import sys
from collections.abc import Callable

from components.envfile import read_env
from components.errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_OK, InputError
from components.layout import Layout, layout
from components.manifest import load
from components.verify.deadline import Deadline, within
from components.verify.options import VerifyOptions
from components.verify.report import CannotCheck, Report, as_json, digest, render

__all__ = ["CannotCheck", "Report", "VerifyOptions", "as_json", "check", "render", "run"]


def expected_digests(options: VerifyOptions, plan: Layout) -> dict[str, str] | None:
    if options.env_file is None:
        return None
    entries = read_env(options.env_file)
    absent = [s.key for s in plan.secrets if s.key not in entries]
    if absent:
        raise InputError(f"{options.env_file}: manifest secrets not in this file: {', '.join(absent)}")
    return {s.key: digest(entries[s.key].value) for s in plan.secrets}


def check(options: VerifyOptions) -> Report:
    """Validate the options, then run the backend's checks within `options.timeout` seconds
    (raises InputError, or CannotCheck when the backend cannot be checked)."""
    problem = options.problem()
    if problem:
        raise InputError(problem)
    plan = layout(load(options.manifest), options.backend, options.namespace, options.vault_mount)
    expected = expected_digests(options, plan)
    if options.backend == "vault":
        from components.verify.vault import ERROR, vault_report

        deadline = Deadline(options.timeout, ERROR, "Vault", options.vault_addr.rstrip("/"))
        return within(deadline, lambda: guarded(deadline, lambda: vault_report(options, plan, expected, deadline)))
    from components.verify.aws import ERROR as AWS_ERROR
    from components.verify.aws import aws_report

    deadline = Deadline(options.timeout, AWS_ERROR, "AWS", "")
    return within(deadline, lambda: guarded(deadline, lambda: aws_report(options, plan, expected, deadline)))


def guarded(deadline: Deadline, work: Callable[[], Report]) -> Report:
    """Any other library error becomes one line naming its kind (hvac/botocore messages may carry
    request details; never a value, but keep the line short and predictable)."""
    try:
        return work()
    except (InputError, CannotCheck):
        raise
    except Exception as e:
        if deadline.expired:
            raise deadline.timed_out() from None
        code = getattr(e, "response", None)
        code = code.get("Error", {}).get("Code", "") if isinstance(code, dict) else ""
        raise CannotCheck(
            f"{deadline.error.replace('ConnectionError', 'Error')}: {e.__class__.__name__} {code}".rstrip()
            + f" talking to {deadline.server} at {deadline.address}"
        ) from None


def run(options: VerifyOptions) -> int:
    """The command: print the report (or one error line) and return the exit code."""
    try:
        report = check(options)
    except InputError as e:  # CannotCheck included: one line, exit 2 (and a JSON verdict for CI)
        if options.json:
            print(json.dumps({"ok": False, "error": str(e)}))
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(as_json(report) if options.json else render(report))
    return EXIT_OK if report.ok else EXIT_CHECK_FAILED
