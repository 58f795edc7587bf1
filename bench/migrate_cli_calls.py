"""How many Pulumi CLI processes the migration starts: the same few for 10 and for 1,000 secrets.

    .venv/bin/python bench/migrate_cli_calls.py [--sizes 10 1000]

A recording fake `pulumi` (a small Python script written to a temporary directory) is put first on PATH.
It answers what the migration asks as the real CLI does for a stack kept in its project folder (`stack select
--create`; `config set`, `set-all`, `rm-all` editing `Pulumi.<stack>.yaml`, a secret stored as `secure:` —
here base64, standing in for the stack's encryption key; `up`), and logs every call: argv, the environment's
keys, the size and SHA-256 of its stdin, and where a value's marker appears in its argv or environment.

Each run migrates a generated `.env` of N secrets (every value starts with `CANARY-`; a few need JSON
escaping) into the `staging` stack of a temporary copy of the project whose stack file already holds a
hand-set `values.KEY` and a `vault:address` (both must go). verify is replaced by a stub: it has its own
bench (bench/verify_throughput.py), and the fake `up` deploys nothing. The migration's own stdout/stderr,
the project copy and the temporary directory are searched for every value afterwards.

Prints the calls and timings; exit 1 if the counts differ between sizes or exceed 10, if a value reached an
argv, an environment, the output or a file, or if the stored map is not exactly the .env's secrets.
"""

import argparse
import base64
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from secrets import token_hex
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a file
    sys.path.insert(0, str(REPO))

from components import migrate  # noqa: E402
from components.derive import env_line  # noqa: E402
from components.environ import environment  # noqa: E402
from components.manifest import Manifest, Secret, dump  # noqa: E402

MARKER = "CANARY-"
MAX_CALLS = 10
STACK = "staging"
VAULT_ADDR = "http://127.0.0.1:1"  # never contacted: the fake `up` deploys nothing and verify is stubbed
TOKEN = "bench-token-5d1c"
SERVICES = ("api", "worker", "billing")
BULK_KEY = "secrets-migration:migratedValues"
SECURE_PREFIX = "fakev1:"
# Values that JSON must escape, and one a shell would expand: the map must still come back exactly.
TRICKY = ['"quoted" and \\back\\slashed', "ünïcødé ✓", "two\nlines", "$NOT_EXPANDED ${ALSO_NOT}", " padded "]

FAKE_PULUMI = r'''#!{python}
"""A recording stand-in for the `pulumi` CLI, written by bench/migrate_cli_calls.py."""
import base64, hashlib, json, os, sys
from pathlib import Path

import yaml

SETUP = json.loads(Path(__file__).with_name("fake-pulumi.json").read_text(encoding="utf-8"))
MARKER, PREFIX = SETUP["marker"], SETUP["secure_prefix"]
argv = sys.argv[1:]
stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
record = {{
    # A value in argv is logged as <VALUE>, so the log itself never holds one.
    "argv": ["<VALUE>" if MARKER in a else a for a in argv],
    "env_keys": sorted(os.environ),
    "leaks": [f"argv[{{i}}]" for i, a in enumerate(argv) if MARKER in a]
    + [f"env {{k}}" for k, v in os.environ.items() if MARKER in k or MARKER in v],
    "stdin_chars": len(stdin),
    "stdin_sha256": hashlib.sha256(stdin.encode()).hexdigest() if stdin else None,
    "cwd": os.getcwd(),
}}


def finish(code, message=None):
    if message:
        print(message, file=sys.stderr)
    record["exit"] = code
    with open(SETUP["log"], "a", encoding="utf-8") as log:
        log.write(json.dumps(record) + "\n")
    sys.exit(code)


words = [a for a in argv if a != "--non-interactive"]
stack = words[words.index("--stack") + 1] if "--stack" in words else None
command = " ".join(w for w in words[:2] if not w.startswith("-"))
if command in os.environ.get("FAKE_PULUMI_FAIL", "").split(","):
    finish(255, "error: the backend refused (FAKE_PULUMI_FAIL)")
if words == ["version"]:
    print("v3.272.0")
    finish(0)

stacks_file = Path(SETUP["stacks"])
stacks = json.loads(stacks_file.read_text(encoding="utf-8")) if stacks_file.exists() else []
if command == "stack select":
    if stack not in stacks:
        if "--create" not in words:
            finish(255, f"error: no stack named '{{stack}}' found")
        stacks_file.write_text(json.dumps([*stacks, stack]), encoding="utf-8")
    finish(0)
if stack not in stacks:
    finish(255, f"error: no stack named '{{stack}}' found")

path = Path(f"Pulumi.{{stack}}.yaml")
data = (yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None) or {{}}
config = data.setdefault("config", {{}})


def save():
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def secure(text):
    return {{"secure": PREFIX + base64.b64encode(text.encode()).decode()}}


rest = [w for w in words[2:] if w not in ("--stack", stack)]
if command == "config set":
    keys = [w for w in rest if not w.startswith("-")]
    if len(keys) != 1:
        finish(2, "fake pulumi: config set takes the value on stdin here")
    value = stdin if "--raw" in rest else stdin.removesuffix("\n")
    config[keys[0]] = secure(value) if "--secret" in rest else value
    save()
    finish(0)
if command == "config set-all":
    for flag, pair in zip(rest[::2], rest[1::2]):
        name, value = pair.split("=", 1)
        config[name] = secure(value) if flag == "--secret" else value
    save()
    finish(0)
if command in ("config rm", "config rm-all"):
    for name in rest:
        config.pop(name, None)
    save()
    finish(0)
if command == "up":
    blob = config.get(SETUP["bulk_key"])
    if not (isinstance(blob, dict) and str(blob.get("secure", "")).startswith(PREFIX)):
        finish(255, "error: no secret migratedValues in the stack")
    values = json.loads(base64.b64decode(blob["secure"][len(PREFIX):]).decode())
    print(f"Updating ({{stack}}):")
    print(f"    +  {{len(values)}} secrets from {{SETUP['bulk_key']}} [secret]")
    print("Resources: (fake: nothing deployed)")
    finish(0)
finish(2, f"fake pulumi: unsupported command {{' '.join(words)}}")
'''


def install_fake(root: Path) -> Path:
    """Write the fake `pulumi` into `root/bin`; return that directory (to put first on PATH)."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    exe = bin_dir / "pulumi"
    exe.write_text(FAKE_PULUMI.format(python=sys.executable), encoding="utf-8")
    exe.chmod(0o755)
    setup = {
        "log": str(root / "calls.jsonl"),
        "stacks": str(root / "stacks.json"),
        "marker": MARKER,
        "secure_prefix": SECURE_PREFIX,
        "bulk_key": BULK_KEY,
    }
    (bin_dir / "fake-pulumi.json").write_text(json.dumps(setup), encoding="utf-8")
    return bin_dir


def decrypt(stack_file: Path, key: str = BULK_KEY) -> Any:
    """The fake's `secure:` value of `key` in a stack file, decoded (None when absent or not secret)."""
    config = (yaml.safe_load(stack_file.read_text(encoding="utf-8")) or {}).get("config") or {}
    blob = config.get(key)
    if not (isinstance(blob, dict) and str(blob.get("secure", "")).startswith(SECURE_PREFIX)):
        return None
    return json.loads(base64.b64decode(blob["secure"][len(SECURE_PREFIX) :]).decode())


@dataclass
class Project:
    root: Path
    """The temporary directory holding everything below (and TMPDIR of the run)."""
    dir: Path
    """The copy of the Pulumi project (Pulumi.yaml, Pulumi.staging.yaml)."""
    env_file: Path
    manifest: Path
    token_file: Path
    values: dict[str, str] = field(repr=False)
    """The .env's secrets: what the stack must end up holding."""

    @property
    def stack_file(self) -> Path:
        return self.dir / f"Pulumi.{STACK}.yaml"


def make_project(root: Path, secrets: int) -> Project:
    """A project copy with a generated .env of `secrets` secrets (+1 config key) and its manifest."""
    project = root / "project"
    project.mkdir(parents=True)
    shutil.copy(REPO / "Pulumi.yaml", project)
    stack = yaml.safe_load((REPO / f"Pulumi.{STACK}.yaml").read_text(encoding="utf-8"))
    # Left by a hand edit and by the old script: the migration must clear both.
    stack["config"]["secrets-migration:values"] = {"SVC0000_TOKEN": {"secure": SECURE_PREFIX + "b2xk"}}
    stack["config"]["vault:address"] = "http://127.0.0.1:8200"
    (project / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump(stack, sort_keys=False), encoding="utf-8")

    values: dict[str, str] = {}
    manifest = Manifest(services=SERVICES, config=("LOG_LEVEL",))
    for i in range(secrets):
        key = f"SVC{i:04d}_TOKEN"
        values[key] = f"{MARKER}{i:04d}-{token_hex(8)}{' ' + TRICKY[i] if i < len(TRICKY) else ''}"
        readers = SERVICES if i % 2 else SERVICES[i % 3 : i % 3 + 1]
        manifest.secrets[key] = Secret(key, f"svc{i:04d}/token", readers)
    env_file = root / "migrate.env"
    lines = ["LOG_LEVEL=info", *(env_line(k, v) for k, v in values.items())]
    env_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    manifest_file = project / "secrets.manifest.yaml"
    manifest_file.write_text(dump(manifest), encoding="utf-8")
    token_file = root / "vault-token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")
    return Project(root, project, env_file, manifest_file, token_file, values)


@dataclass
class Outcome:
    code: int
    seconds: float
    calls: list[dict[str, Any]]
    output: str
    """The migration's stdout and stderr, the `pulumi up` child's included."""
    migrated: Any = field(repr=False)
    """The map the stack ends up holding in migratedValues (decoded from the fake's stack file)."""
    leaks: list[str]
    """Where a value was found: a call's argv or environment, the output, a file. Empty is the goal."""


@contextmanager
def redirected_output(path: Path) -> Iterator[None]:
    """Send our stdout/stderr and every child's (fd 1 and 2) to `path`, appending, for the block."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with path.open("ab") as sink, path.open("a", encoding="utf-8", buffering=1) as text:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            with redirect_stdout(text), redirect_stderr(text):
                yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def verified(plan: migrate.Plan) -> int:
    print(f"(verify skipped by the bench: {len(plan.layout.secrets)} secrets)")
    return 0


def files_holding(root: Path, values: dict[str, str]) -> list[str]:
    """Every file under `root` that contains one of `values` (as UTF-8 bytes)."""
    needles = [v.encode() for v in values.values()]
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if any(n in data for n in needles):
            found.append(str(path.relative_to(root)))
    return found


def migrate_with_fake(
    project: Project,
    *,
    backend: str = "vault",
    stack: str = STACK,
    manifest: Path | None = None,
    fail: str = "",
    verify: migrate.Verify = verified,
) -> Outcome:
    """Run the migration (in-process, as the script does) with the fake `pulumi` first on PATH.

    `fail`: commands the fake refuses (`up`, `stack select`, ...). Vault runs get an address and a token file.
    """
    fake_root = project.root / "fake"
    bin_dir = install_fake(fake_root)
    tmp = project.root / "tmp"
    tmp.mkdir(exist_ok=True)
    output_file = project.root / "output.txt"
    argv = ["--env-file", str(project.env_file), "--backend", backend, "--namespace", stack]
    argv += ["--manifest", str(manifest or project.manifest)]
    if backend == "vault":
        argv += ["--vault-addr", VAULT_ADDR, "--vault-token-file", str(project.token_file)]
    path = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    tempfile.tempdir = None  # recomputed from TMPDIR below, then restored
    started = time.perf_counter()
    with environment({"PATH": path, "TMPDIR": str(tmp), "FAKE_PULUMI_FAIL": fail}), redirected_output(output_file):
        code = migrate.main(argv, project_dir=project.dir, verify=verify)
    seconds = time.perf_counter() - started
    tempfile.tempdir = None

    log = fake_root / "calls.jsonl"
    calls = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()] if log.exists() else []
    output = output_file.read_text(encoding="utf-8")
    output_file.unlink()  # the bench's capture, not the migration's; searched below
    leaks = [f"call {i} ({' '.join(c['argv'][:3])}): {where}" for i, c in enumerate(calls) for where in c["leaks"]]
    if MARKER in output or any(v in output for v in project.values.values()):
        leaks.append("the migration's stdout/stderr")
    # The .env is where the values are meant to be; every other file must hold none.
    leaks += [f"file {f}" for f in files_holding(project.root, project.values) if f != project.env_file.name]
    stack_file = project.dir / f"Pulumi.{stack}.yaml"
    migrated = decrypt(stack_file) if stack_file.exists() else None
    return Outcome(code, seconds, calls, output, migrated, leaks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 1000], metavar="N")
    sizes = parser.parse_args().sizes

    print("Migration: Pulumi CLI calls per run (fake `pulumi` first on PATH; verify stubbed)")
    print("| secrets | CLI calls | seconds | stdin chars | calls |")
    print("|---:|---:|---:|---:|---|")
    counts: list[int] = []
    failed: list[str] = []
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="migrate-bench-") as tmp:
            project = make_project(Path(tmp), size)
            outcome = migrate_with_fake(project)
        counts.append(len(outcome.calls))
        stdin = sum(c["stdin_chars"] for c in outcome.calls)
        names = ", ".join(" ".join(w for w in c["argv"][1:3] if not w.startswith("-")) for c in outcome.calls)
        print(f"| {size:,} | {len(outcome.calls)} | {outcome.seconds:.2f} | {stdin:,} | {names} |")
        if outcome.code != 0:
            failed.append(f"{size} secrets: the migration exited {outcome.code}:\n{outcome.output}")
        if outcome.migrated != project.values:
            failed.append(f"{size} secrets: migratedValues is not exactly the .env's secrets")
        failed += [f"{size} secrets: a value reached {where}" for where in outcome.leaks]
    if len(set(counts)) > 1:
        failed.append(f"the call count depends on the number of secrets: {counts}")
    if max(counts) > MAX_CALLS:
        failed.append(f"more than {MAX_CALLS} CLI calls: {max(counts)}")
    print(f"target: the same count for every size, at most {MAX_CALLS}: {'MISSED' if failed else 'holds'}")
    for line in failed:
        print(f"FAIL: {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
