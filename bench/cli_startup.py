"""How fast `python -m components` starts: the CLI must answer `--help` well under 0.5 s.

    .venv/bin/python bench/cli_startup.py [--runs 20]

Times `--help` of the CLI and of each command in fresh processes (as a user or pre-commit hook runs
them) next to a bare `python -c pass`, and prints the median and worst wall-clock milliseconds.
Exit 1 when a median reaches 500 ms.
"""

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LIMIT_MS = 500.0
COMMANDS = [["-c", "pass"], ["-m", "components", "--help"]] + [
    ["-m", "components", command, "--help"]
    for command in ("derive", "check", "template", "verify", "run", "gate", "demo", "adopt")
]


def timings(argv: list[str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, check=True)
        out.append((time.perf_counter() - started) * 1000)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    print(f"CLI start-up, {runs} fresh processes each")
    print("| command | median ms | worst ms |\n|---|---:|---:|")
    slow = False
    for argv in COMMANDS:
        ms = timings(argv, runs)
        median = statistics.median(ms)
        slow |= argv[0] == "-m" and median >= LIMIT_MS
        print(f"| `python {' '.join(argv)}` | {median:.0f} | {max(ms):.0f} |")
    print(f"limit: median under {LIMIT_MS:.0f} ms: {'MISSED' if slow else 'holds'}")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
