"""How the program's cost grows with the manifest: the real `__main__.py` under the SDK's mocks.

    .venv/bin/python bench/program_scale.py [--sizes 100 1000 5000] [--services 10] [--repeat 3]

For each size it writes a manifest with that many secrets (each read by 3 of the services) and a .env
with fake values into a temp folder, then runs the program for both backends, each run in a fresh
Python process (as `pulumi up` does; imports and start-up are not timed), and prints the best of
`--repeat` wall-clock times. The cost must grow linearly: the largest size may take at most
(largest / 1,000) x 1.2 times the 1,000 figure (5,000 <= 6x). Exit 1 when it does not.
"""

import argparse
import logging
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from components.manifest import Manifest, Secret, dump  # noqa: E402

BACKENDS = ("vault", "aws")
READERS_PER_SECRET = 3
LINEAR_SLACK = 1.2


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


def run_once(backend: str, manifest: Path, env_file: Path) -> None:
    """One timed program run in this process; prints `<seconds> <resources>`."""
    import pulumi_aws  # noqa: F401
    import pulumi_vault  # noqa: F401

    from tests.harness import run_program  # pulumi and the providers load here, outside the timing

    # Quiet the program's warnings (3 readers of 5,000 secrets overflow IAM's policy size, by design here).
    logging.getLogger().addHandler(logging.NullHandler())
    started = time.perf_counter()
    run = run_program(
        "bench",
        {"backend": backend, "manifest": str(manifest), "envFile": str(env_file)},
        use_stack_file=False,
    )
    print(f"{time.perf_counter() - started:.4f} {len(run.resources)}")


def time_program(backend: str, manifest: Path, env_file: Path, repeat: int) -> tuple[float, int]:
    """Best wall-clock seconds over `repeat` fresh-process runs, and the number of resources."""
    best, count = float("inf"), 0
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, __file__, "--one", backend, str(manifest), str(env_file)],
            check=True,
            capture_output=True,
            text=True,
            cwd=REPO,
        ).stdout.split()
        best, count = min(best, float(out[0])), int(out[1])
    return best, count


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
    print(f"program under mocks, {args.services} services, best of {args.repeat} fresh-process runs")
    print("| backend | secrets | resources | seconds | ms / secret |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            folder = Path(tmp) / str(size)
            folder.mkdir()
            manifest, env_file = write_inputs(folder, size, args.services)
            for backend in BACKENDS:
                seconds, resources = time_program(backend, manifest, env_file, args.repeat)
                figures[backend, size] = seconds
                print(
                    f"| {backend} | {size:,} | {resources:,} | {seconds:.2f} | {seconds / size * 1000:.2f} |",
                    flush=True,
                )

    largest = max(args.sizes)
    if 1000 not in args.sizes or largest <= 1000:
        print("linear growth: not checked (needs 1000 and a larger size)")
        return 0
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
    return 0 if linear else 1


if __name__ == "__main__":
    sys.exit(main())
