"""What refusing duplicate keys (and keeping every key's line) costs when loading a large manifest.

    .venv/bin/python bench/manifest_load.py [--secrets 5000] [--runs 7]

Loads one generated manifest (N secrets, 20 services, N/2 config keys) with PyYAML's pure-Python safe
loader, libyaml's safe loader, the project's StrictLoader (libyaml's parser + duplicate check + lines),
and the full `manifest.load` (StrictLoader + validation). Prints the median milliseconds of each.
"""

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from components import manifest, strict_yaml


def generated(secrets: int) -> manifest.Manifest:
    services = tuple(f"service-{i}" for i in range(20))
    return manifest.Manifest(
        services=services,
        secrets={
            f"GROUP{i % 50}_KEY_{i}": manifest.Secret(f"GROUP{i % 50}_KEY_{i}", f"group{i % 50}/key_{i}", services[:3])
            for i in range(secrets)
        },
        config=tuple(f"SETTING_{i}" for i in range(secrets // 2)),
    )


def median_ms(run: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--secrets", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    text = manifest.dump(generated(args.secrets))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "secrets.manifest.yaml"
        path.write_text(text, encoding="utf-8")
        loaders: list[tuple[str, Callable[[], object]]] = [
            ("yaml.SafeLoader (pure Python)", lambda: yaml.load(text, Loader=yaml.SafeLoader)),
        ]
        if yaml.__with_libyaml__:
            loaders.append(("yaml.CSafeLoader (libyaml)", lambda: yaml.load(text, Loader=yaml.CSafeLoader)))
        loaders += [
            ("strict_yaml.StrictLoader (duplicates, lines)", lambda: strict_yaml.load(text)),
            ("manifest.load (StrictLoader + validation)", lambda: manifest.load(path)),
        ]
        print(f"Loading a manifest of {args.secrets} secrets ({len(text) // 1024} KiB), median of {args.runs} runs")
        print("| loader | median ms |\n|---|---:|")
        for name, run in loaders:
            print(f"| {name} | {median_ms(run, args.runs):.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
