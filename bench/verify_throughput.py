"""How fast `verify` reads secrets back, against the runbook's way and a naive loop.

Starts its own OpenBao dev server and moto server on free 127.0.0.1 ports, loads 1,000 secrets (and the
per-service policies, built by the program's own policy builders), then times in one run:

- Vault on loopback: `verify`; the runbook's `bao kv get -field=value` as a shell loop (on a sample of
  50, reported per secret); a sequential hvac loop.
- Vault through a small delaying TCP proxy (127.0.0.1 only) that adds 5 ms to every round trip, as a
  remote Vault would: `verify` against the sequential hvac loop.
- AWS (moto): `verify` (BatchGetSecretValue in chunks of 20) against sequential GetSecretValue.

Prints secrets/second and the ratios against the targets:
    verify >= 50x the CLI loop; on loopback not slower than sequential hvac;
    through the proxy >= 8x sequential hvac; on moto >= 5x sequential GetSecretValue.

    .venv/bin/python bench/verify_throughput.py [--secrets 1000] [--concurrency N]
"""

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import boto3  # noqa: E402
import hvac  # noqa: E402

from components import verify  # noqa: E402
from components.engine.servers import HOST, MOTO_ENV, BaoServer, bao_binary, free_port, start_bao, start_moto  # noqa: E402
from components.layout import layout  # noqa: E402
from components.manifest import Manifest, Secret, dump  # noqa: E402
from components.policies import (  # noqa: E402
    iam_json,
    iam_read_policy,
    iam_service_read_policy,
    secret_arn_pattern,
    secret_tags,
    vault_policy_hcl,
)
from components.verify.options import DEFAULT_CONCURRENCY, VerifyOptions  # noqa: E402

NAMESPACE = "bench"
SERVICES = ("signal-service", "execution-gateway", "orchestrator", "market-data-service", "risk-manager")
CLI_SAMPLE = 50
REPEATS = 3
PROXY_DELAY = 0.005
"""Seconds added to each round trip by the proxy (one delay on the request direction)."""


def build_manifest(count: int) -> Manifest:
    """`count` secrets, each read by two of the five services."""
    secrets = {
        f"BENCH_{i:05d}_PASSWORD": Secret(
            f"BENCH_{i:05d}_PASSWORD", f"group{i % 10}/secret_{i:05d}", (SERVICES[i % 5], SERVICES[(i + 1) % 5])
        )
        for i in range(count)
    }
    return Manifest(services=SERVICES, secrets=secrets)


def value_of(key: str) -> str:
    return f"bench-value-{key.lower()}"


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def best(fn: Callable[[], object]) -> float:
    """The fastest of REPEATS runs (as timeit does): the least disturbed by the rest of the machine."""
    return min(timed(fn) for _ in range(REPEATS))


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


# --- the delaying proxy ----------------------------------------------------------------------------


def serve_proxy(port: int, upstream_port: int, delay: float) -> None:
    """Forward 127.0.0.1:`port` to 127.0.0.1:`upstream_port`, holding each client->server chunk for
    `delay` seconds: every request/response round trip takes `delay` longer. Runs in its own process so
    its work does not compete with the measured client for the GIL."""

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, hold: float) -> None:
        try:
            while chunk := await reader.read(65536):
                if hold:
                    await asyncio.sleep(hold)
                writer.write(chunk)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def serve(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(HOST, upstream_port)
        await asyncio.gather(pump(client_reader, upstream_writer, delay), pump(upstream_reader, client_writer, 0.0))

    async def main() -> None:
        server = await asyncio.start_server(serve, HOST, port)
        await server.serve_forever()

    asyncio.run(main())


class DelayProxy:
    """`serve_proxy` in a child process, for the duration of a `with` block."""

    def __init__(self, upstream_port: int, delay: float) -> None:
        self.port = free_port()
        context = multiprocessing.get_context("spawn")
        self.process = context.Process(target=serve_proxy, args=(self.port, upstream_port, delay), daemon=True)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def __enter__(self) -> "DelayProxy":
        self.process.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), timeout=1):
                return self
            time.sleep(0.05)
        self.process.terminate()
        raise TimeoutError("the delaying proxy did not start")

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.join(10)


# --- loading ---------------------------------------------------------------------------------------------


def load_vault(bao: BaoServer, manifest: Manifest) -> None:
    """The secrets and policies the program writes for this manifest (components.layout + policies)."""
    client = hvac.Client(url=bao.url, token=bao.token)
    plan = layout(manifest, "vault", NAMESPACE)

    def put(spot: Any) -> None:
        client.secrets.kv.v2.create_or_update_secret(
            path=spot.name, secret={"value": value_of(spot.key)}, mount_point=plan.mount
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, plan.secrets))
    for policy in plan.policies:
        client.sys.create_or_update_acl_policy(name=policy.name, policy=vault_policy_hcl(plan, policy))


def aws_client(url: str, service: str) -> Any:
    return boto3.client(
        service, endpoint_url=url, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )


def load_aws(url: str, manifest: Manifest) -> None:
    """Tagged secrets and the attribute-based policies the program writes (components.policies)."""
    sm, iam = aws_client(url, "secretsmanager"), aws_client(url, "iam")
    plan = layout(manifest, "aws", NAMESPACE)

    def put(spot: Any) -> str:
        tags = secret_tags(NAMESPACE, spot.key, spot.readers)
        created = sm.create_secret(
            Name=spot.name,
            SecretString=value_of(spot.key),
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )
        return str(created["ARN"])

    with ThreadPoolExecutor(8) as pool:
        arns = list(pool.map(put, plan.secrets))
    pattern = secret_arn_pattern(arns[0], NAMESPACE)
    for policy in plan.policies:
        document = (
            iam_read_policy([pattern]) if policy.service is None else iam_service_read_policy(pattern, policy.service)
        )
        iam.create_policy(PolicyName=policy.name, PolicyDocument=iam_json(document))


# --- the contenders ------------------------------------------------------------------------------------------


def run_verify(backend: str, manifest_path: Path, concurrency: int, env: dict[str, str]) -> None:
    options = VerifyOptions(
        backend="vault" if backend == "vault" else "aws",
        namespace=NAMESPACE,
        manifest=manifest_path,
        vault_addr=env.get("VAULT_ADDR", ""),
        vault_token=env.get("VAULT_TOKEN", ""),
        aws_region=env.get("AWS_REGION"),
        concurrency=concurrency,
    )
    with environment(env):  # AWS: boto3's chain reads the credentials and AWS_ENDPOINT_URL
        report = verify.check(options)
    if not report.ok:
        raise SystemExit(f"verify found problems in the benchmark data:\n{verify.render(report)}")


def cli_loop(bao: BaoServer, manifest: Manifest) -> None:
    """The runbook's way: one `bao kv get -field=value` process per secret, in a shell loop."""
    paths = " ".join(s.location for s in layout(manifest, "vault", NAMESPACE).secrets[:CLI_SAMPLE])
    script = f'for p in {paths}; do "{bao_binary()}" kv get -field=value "$p" >/dev/null || exit 1; done'
    subprocess.run(["bash", "-c", script], env=bao.env, check=True)


def hvac_loop(addr: str, token: str, manifest: Manifest) -> None:
    client = hvac.Client(url=addr, token=token)
    plan = layout(manifest, "vault", NAMESPACE)
    for s in plan.secrets:
        client.secrets.kv.v2.read_secret_version(path=s.name, mount_point=plan.mount, raise_on_deleted_version=True)


def get_loop(url: str, manifest: Manifest) -> None:
    sm = aws_client(url, "secretsmanager")
    for s in layout(manifest, "aws", NAMESPACE).secrets:
        sm.get_secret_value(SecretId=s.name)


# --- main ------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--secrets", type=int, default=1000)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help="verify's --concurrency (default: as the CLI's, %(default)s)",
    )
    opts = parser.parse_args()
    n, workers = opts.secrets, opts.concurrency
    manifest = build_manifest(n)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        manifest_path = work / "secrets.manifest.yaml"
        manifest_path.write_text(dump(manifest), encoding="utf-8")
        bao, moto = start_bao(work), start_moto(work)
        try:
            load_vault(bao, manifest)
            load_aws(moto.url, manifest)
            vault_env = {"VAULT_ADDR": bao.url, "VAULT_TOKEN": bao.token}
            run_verify("vault", manifest_path, workers, vault_env)  # warm-up: imports, connections

            t_verify = best(lambda: run_verify("vault", manifest_path, workers, vault_env))
            t_cli = timed(lambda: cli_loop(bao, manifest)) / CLI_SAMPLE * n
            t_hvac = best(lambda: hvac_loop(bao.url, bao.token, manifest))

            with DelayProxy(int(bao.url.rsplit(":", 1)[1]), PROXY_DELAY) as proxy:
                proxied_env = {"VAULT_ADDR": proxy.url, "VAULT_TOKEN": bao.token}
                run_verify("vault", manifest_path, workers, proxied_env)  # warm-up: connections
                t_verify_proxy = best(lambda: run_verify("vault", manifest_path, workers, proxied_env))
                t_hvac_proxy = best(lambda: hvac_loop(proxy.url, bao.token, manifest))

            aws_env = {**MOTO_ENV, "AWS_ENDPOINT_URL": moto.url}
            run_verify("aws", manifest_path, workers, aws_env)  # warm-up
            t_verify_aws = best(lambda: run_verify("aws", manifest_path, workers, aws_env))
            t_get = best(lambda: get_loop(moto.url, manifest))
        finally:
            bao.stop()
            moto.stop()

    def rate(seconds: float) -> str:
        return f"{n / seconds:,.0f}"

    rows = [
        ("Vault, loopback", f"`bao kv get` shell loop ({CLI_SAMPLE} sampled)", t_cli, t_verify, 50.0),
        ("Vault, loopback", "sequential hvac", t_hvac, t_verify, 1.0),
        ("Vault, +5 ms per round trip", "sequential hvac", t_hvac_proxy, t_verify_proxy, 8.0),
        ("AWS (moto)", "sequential GetSecretValue", t_get, t_verify_aws, 5.0),
    ]
    print(f"verify throughput: {n} secrets, {len(SERVICES)} services, --concurrency {workers}, {os.cpu_count()} CPUs")
    print()
    print("| backend | baseline | baseline secrets/s | verify secrets/s | ratio | target | met |")
    print("|---|---|---:|---:|---:|---:|---|")
    failed = 0
    for backend, baseline, t_base, t_mine, target in rows:
        ratio = t_base / t_mine
        met = ratio >= target
        failed += not met
        print(
            f"| {backend} | {baseline} | {rate(t_base)} | {rate(t_mine)} | {ratio:.1f}x | >= {target:g}x | "
            f"{'yes' if met else 'NO'} |"
        )
    print()
    print(json.dumps({"verify_seconds": {"vault": t_verify, "vault_proxy": t_verify_proxy, "aws": t_verify_aws}}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
