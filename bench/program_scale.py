"""How the program's cost grows with the manifest: the real `__main__.py` under the SDK's mocks.

    .venv/bin/python bench/program_scale.py [--sizes 100 1000 5000] [--services 10] [--repeat 3]

For each size it writes a manifest with that many secrets (each read by 3 of the services) and a .env
with fake values into a temp folder, then runs the program for both backends, each run in a fresh
Python process (as `pulumi up` does; imports and start-up are not timed), and prints the best of
`--repeat` wall-clock times, the number of read-policy resources and the largest policy document the
program wrote (characters, and for IAM the count its 6,144 limit applies to: whitespace not counted).

Exit 1 when a document, a secret's tags or a role's attachments exceed the backend's limits
(components.policies' checks on what the program registered; the program itself stops first), or
when cost does not grow linearly: the largest size may take at most (largest / 1,000) x 1.2 times the
1,000 figure (5,000 <= 6x).
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from components.manifest import Manifest, Secret, dump  # noqa: E402

BACKENDS = ("vault", "aws")
READERS_PER_SECRET = 3
LINEAR_SLACK = 1.2
POLICY_TYPES = {"vault": "vault:index/policy:Policy", "aws": "aws:iam/policy:Policy"}
AWS_SECRET = "aws:secretsmanager/secret:Secret"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"


@dataclass
class Figures:
    """One program run: what it registered and how long it took (no value: names and sizes only)."""

    seconds: float
    resources: int
    policies: int
    """Read-policy resources (a service's and the namespace's)."""
    largest_chars: int
    """The largest policy document, in characters (Vault: bytes of HCL)."""
    largest_iam: int | None
    """The same document as IAM counts it (whitespace not counted); None for Vault."""
    problems: list[str]
    """Every limit the registered stack exceeds, one line each."""


def write_inputs(folder: Path, secrets: int, services: int) -> tuple[Path, Path]:
    names = tuple(f"service-{i:02d}" for i in range(services))
    keys = [f"GROUP{i % 50:02d}_SECRET_{i:05d}_PASSWORD" for i in range(secrets)]
    manifest = Manifest(
        services=names,
        secrets={
            key: Secret(
                key,
                f"group{i % 50:02d}/secret_{i:05d}_password",
                tuple(names[(i + r) % services] for r in range(READERS_PER_SECRET)),
            )
            for i, key in enumerate(keys)
        },
    )
    manifest_path = folder / "secrets.manifest.yaml"
    manifest_path.write_text(dump(manifest), encoding="utf-8")
    env_path = folder / ".env"
    env_path.write_text("".join(f"{key}=fake-value-{i:05d}\n" for i, key in enumerate(keys)), encoding="utf-8")
    return manifest_path, env_path


def limit_problems(backend: str, registered: list[Any]) -> list[str]:
    """What the backend would refuse in the registered stack (components.policies' limits)."""
    from components.policies import (
        VAULT_POLICY_MAX_BYTES,
        attachments_problem,
        policy_size_problem,
        tags_problem,
    )

    problems: list[str] = []
    for r in registered:
        if r.type == POLICY_TYPES["aws"]:
            problems.append(policy_size_problem(r.inputs["name"], r.inputs["policy"]) or "")
        elif r.type == POLICY_TYPES["vault"] and len(r.inputs["policy"].encode()) > VAULT_POLICY_MAX_BYTES:
            problems.append(f"{r.inputs['name']}: over Vault's {VAULT_POLICY_MAX_BYTES}-byte JSON string limit")
        elif r.type == AWS_SECRET:
            problems.append(tags_problem(r.inputs["name"], r.inputs["tags"]) or "")
    per_role = Counter(r.inputs["role"] for r in registered if r.type == ATTACHMENT)
    problems += [attachments_problem(role, n) or "" for role, n in sorted(per_role.items())]
    return [p for p in problems if p]


def run_once(backend: str, manifest: Path, env_file: Path) -> None:
    """One timed program run in this process; prints its `Figures` as JSON."""
    import pulumi
    import pulumi_aws  # noqa: F401
    import pulumi_vault  # noqa: F401

    from components.policies import iam_policy_size
    from tests.harness import run_program  # pulumi and the providers load here, outside the timing

    started = time.perf_counter()
    try:
        run = run_program(
            "bench",
            {"backend": backend, "manifest": str(manifest), "envFile": str(env_file)},
            use_stack_file=False,
        )
    except pulumi.RunError as stopped:  # the program's own limit check (one line, names only)
        print(json.dumps(Figures(time.perf_counter() - started, 0, 0, 0, None, [str(stopped)]).__dict__))
        return
    seconds = time.perf_counter() - started
    documents = [r.inputs["policy"] for r in run.of_type(POLICY_TYPES[backend])]
    largest = max(documents, key=iam_policy_size if backend == "aws" else lambda d: len(d.encode()))
    figures = Figures(
        seconds,
        len(run.resources),
        len(documents),
        len(largest) if backend == "aws" else len(largest.encode()),
        iam_policy_size(largest) if backend == "aws" else None,
        limit_problems(backend, run.resources),
    )
    print(json.dumps(figures.__dict__))


def time_program(backend: str, manifest: Path, env_file: Path, repeat: int) -> Figures:
    """The best wall-clock seconds over `repeat` fresh-process runs, with that run's figures."""
    best: Figures | None = None
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, __file__, "--one", backend, str(manifest), str(env_file)],
            check=True,
            capture_output=True,
            text=True,
            cwd=REPO,
        ).stdout
        figures = Figures(**json.loads(out))
        best = figures if best is None or figures.seconds < best.seconds else best
    assert best is not None
    return best


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--services", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--one", nargs=3, metavar=("BACKEND", "MANIFEST", "ENV_FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        run_once(args.one[0], Path(args.one[1]), Path(args.one[2]))
        return 0

    figures: dict[tuple[str, int], float] = {}
    problems: list[str] = []
    print(f"program under mocks, {args.services} services, best of {args.repeat} fresh-process runs")
    print("| backend | secrets | resources | policies | largest policy (chars) | IAM count | seconds | ms / secret |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            folder = Path(tmp) / str(size)
            folder.mkdir()
            manifest, env_file = write_inputs(folder, size, args.services)
            for backend in BACKENDS:
                run = time_program(backend, manifest, env_file, args.repeat)
                figures[backend, size] = run.seconds
                problems += [f"{backend}, {size:,} secrets: {p}" for p in run.problems]
                iam = "-" if run.largest_iam is None else f"{run.largest_iam:,}"
                print(
                    f"| {backend} | {size:,} | {run.resources:,} | {run.policies} | {run.largest_chars:,} | {iam} "
                    f"| {run.seconds:.2f} | {run.seconds / size * 1000:.2f} |",
                    flush=True,
                )

    for problem in problems:
        print(f"LIMIT EXCEEDED: {problem}")
    if not problems:
        print("limits: every policy document, secret's tags and role's attachments within the backend's limits")
    largest = max(args.sizes)
    if 1000 not in args.sizes or largest <= 1000:
        print("linear growth: not checked (needs 1000 and a larger size)")
        return 1 if problems else 0
    allowed = largest / 1000 * LINEAR_SLACK
    linear = True
    for backend in BACKENDS:
        ratio = figures[backend, largest] / figures[backend, 1000]
        holds = ratio <= allowed
        linear &= holds
        print(
            f"linear growth ({backend}): {largest:,} took {ratio:.2f}x the 1,000 figure "
            f"(allowed <= {allowed:.1f}x): {'holds' if holds else 'DOES NOT HOLD'}"
        )
    return 0 if linear and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
